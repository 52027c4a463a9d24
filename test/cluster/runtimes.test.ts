/**
 * The cluster on Bun and Deno with the same NATS client: a Bun node and a Deno node (each ingest
 * and edge) join one nats-server; a broadcast published to either is served whole by the other.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureInfo, fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getText, type RunningServer } from '../../testkit/server.ts';
import { ffmpegPublish, type Proc } from '../e2e/helpers.ts';
import { probeFrames } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { clusterHealth, startNode } from './nodes.ts';

const FIXTURE = '360p30.mp4';

let nats: RunningNats;
let bun: RunningServer;
let deno: RunningServer;
const procs: Proc[] = [];

beforeAll(async () => {
  nats = await startNats();
  [bun, deno] = await Promise.all([
    startNode('bun-1', 'ingest,edge', nats.url, ['--ingest-grace', '1', '--transcode-rendition', 'none'], 'bun'),
    startNode('deno-1', 'ingest,edge', nats.url, ['--ingest-grace', '1', '--transcode-rendition', 'none'], 'deno'),
  ]);
}, 120_000);

afterAll(async () => {
  for (const p of procs) p.kill();
  await Promise.all([bun, deno].map((n) => n?.stop()));
  await nats?.stop();
});

describe('cluster nodes on Bun and Deno', () => {
  it.each([
    ['Bun', 'Deno'],
    ['Deno', 'Bun'],
  ])('a broadcast published to the %s node is served by the %s node with every frame', async (from, to) => {
    const [source, edge] = from === 'Bun' ? [bun, deno] : [deno, bun];
    const name = `live/${from.toLowerCase()}`;
    const url = `${edge.url}/hls/${name}/playlist.m3u8`;
    // Asked before it starts, the edge mirrors the broadcast from its first keyframe.
    expect((await fetch(url)).status).toBe(404);
    // ffmpeg, which closes its socket right after its last chunk.
    const publisher = ffmpegPublish(fixturePath(FIXTURE), `${source.url}/ingest/${name}`);
    procs.push(publisher);
    // The edge mirrors the broadcast from the other node while it is live.
    await waitFor(
      async () =>
        (await clusterHealth(edge))?.mirrored.some((m) => m.broadcast === name && m.from === `${from.toLowerCase()}-1`),
      `the ${to} node to mirror ${name}`,
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    expect(await publisher.exited, publisher.output()).toBe(0);
    await waitFor(async () => (await getText(url))?.includes('#EXT-X-ENDLIST'), `${url} to end`, {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect((await probeFrames(url)).length).toBe(fixtureInfo(FIXTURE).video.frameCount);
    // The edge ran on the runtime named.
    const health = (await (await fetch(`${edge.url}/healthz`)).json()) as { runtime: string };
    expect(health.runtime).toBe(to.toLowerCase());
  });
});
