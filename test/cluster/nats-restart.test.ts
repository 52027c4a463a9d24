/**
 * NATS restarted under a running cluster (real processes: nats-server, ingest A, transcode B, edge
 * C, ffmpeg publishing): the memory streams and buckets are gone; every node reconnects by itself,
 * nothing crashes, and the edge's source and rung playlists go on with rising numbers.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getText, type RunningServer } from '../../testkit/server.ts';
import { ffmpegPublish, type Proc, waitForMasterListing } from '../e2e/helpers.ts';
import { waitFor } from '../support/wait.ts';
import { playlistSummary, startNode } from './nodes.ts';

const FIXTURE = '360p30.mp4';
const BROADCAST = 'live/nr';

let nats: RunningNats;
let nodes: RunningServer[];
let edge: RunningServer;
let publisher: Proc;

beforeAll(async () => {
  nats = await startNats();
  nodes = await Promise.all([
    startNode('A', 'ingest', nats.url),
    startNode('B', 'transcode', nats.url, ['--transcode-rendition', '240p', '--transcode-overload', 'off']),
    startNode('C', 'edge', nats.url),
  ]);
  edge = nodes[2]!;
  publisher = ffmpegPublish(fixturePath(FIXTURE), `${nodes[0]!.url}/ingest/${BROADCAST}`, { loops: 12 });
}, 120_000);

afterAll(async () => {
  publisher?.kill();
  await Promise.all((nodes ?? []).map((n) => n.stop()));
  await nats?.stop();
});

describe('NATS restarts under a running cluster', () => {
  it('every node reconnects by itself, none exits, and the source and rung playlists on the edge go on', async () => {
    await waitForMasterListing(`${edge.url}/hls/${BROADCAST}`, ['240p'], 40_000);
    const urls = [`${edge.url}/hls/${BROADCAST}/playlist.m3u8`, `${edge.url}/hls/${BROADCAST}/240p/playlist.m3u8`];
    const state = async (url: string) => playlistSummary((await getText(url)) ?? '#EXTM3U\n');
    await waitFor(async () => (await state(urls[1]!)).lastMsn >= 1, 'two rung segments', {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const before = await Promise.all(urls.map(state));
    await nats.restart();
    for (const [i, url] of urls.entries()) {
      const after = await waitFor(
        async () => {
          const s = await state(url);
          return s.lastMsn >= before[i]!.lastMsn + 3 ? s : undefined;
        },
        `${url} to go on after the restart`,
        { timeoutMs: 40_000, intervalMs: 200 },
      );
      expect(after.ended, `${url} ended:\n${(await getText(url))?.slice(-600)}`).toBe(false);
      expect(after.sequence, url).toBeGreaterThanOrEqual(before[i]!.sequence);
    }
    for (const n of nodes) expect(n.stdout(), 'a node exited').not.toMatch(/exited|Uncaught|unhandled/i);
    const exits = await Promise.race([
      Promise.any(nodes.map((n) => n.exited.then(() => 'exited'))),
      new Promise((resolve) => setTimeout(() => resolve('running'), 100)),
    ]);
    expect(exits).toBe('running');
  });
});
