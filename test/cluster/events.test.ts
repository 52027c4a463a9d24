/**
 * Events in a cluster come from the node that did the thing: ingest node A, transcode node B and
 * edge C all post to one receiver; a broadcast published to A, transcoded on B and served by C
 * gives one `publish`, one `ready` and one `unpublish`, each from A (B and C hold mirrors of the
 * source and say nothing of it), all signed.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getText, type RunningServer } from '../../testkit/server.ts';
import { ffmpegPublish } from '../e2e/helpers.ts';
import { type Receiver, startReceiver, validSignature } from '../events/receiver.ts';
import { waitFor } from '../support/wait.ts';
import { startNode } from './nodes.ts';

const SECRET = 'cluster-hook-secret';

let nats: RunningNats;
let receiver: Receiver;
let nodes: RunningServer[] = [];

beforeAll(async () => {
  nats = await startNats();
  receiver = await startReceiver();
  const hook = (name: string) => ['--webhook-url', receiver.url, '--webhook-secret', SECRET, '--node-name', name];
  nodes = await Promise.all([
    startNode('A', 'ingest', nats.url, ['--ingest-grace', '0', ...hook('node-a')]),
    startNode('B', 'transcode', nats.url, ['--transcode-rendition', '240p', ...hook('node-b')]),
    startNode('C', 'edge', nats.url, hook('node-c')),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await receiver?.close();
  await nats?.stop();
});

describe('events in a cluster', () => {
  it('publish, ready and unpublish once each, from the ingest node, while a worker and an edge hold mirrors', async () => {
    const [ingest, , edge] = nodes as [RunningServer, RunningServer, RunningServer];
    const base = `${edge.url}/hls/live/ev`;
    // Asked before it starts: the edge mirrors the broadcast from its first keyframe.
    expect((await fetch(`${base}/master.m3u8`)).status).toBe(404);
    // 12 s of media (the clip is 3 s): time for a worker that takes the ladder late on a busy machine.
    const publisher = ffmpegPublish(fixturePath('360p30.mp4'), `${ingest.url}/ingest/live/ev`, { loops: 3 });
    // The edge serves the rung the worker makes: every node took part.
    await waitFor(async () => (await getText(`${base}/240p/playlist.m3u8`))?.includes('seg-') === true, 'the rung', {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    expect(await publisher.exited, publisher.output()).toBe(0);
    await waitFor(() => receiver.events('unpublish', 'live/ev').length > 0, 'the unpublish event', {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    // The mirrors on B and C end a moment later: give their (wrong) events the time to arrive.
    await waitFor(
      async () => (await getText(`${base}/playlist.m3u8`))?.includes('#EXT-X-ENDLIST') === true,
      'ENDLIST',
      {
        timeoutMs: 20_000,
        intervalMs: 100,
      },
    );
    const mine = receiver.received.filter((r) => r.event.broadcast === 'live/ev');
    expect(mine.map((r) => `${r.event.type}@${r.event.node}`).sort()).toEqual([
      'publish@node-a',
      'ready@node-a',
      'unpublish@node-a',
    ]);
    for (const r of mine) expect(validSignature(SECRET, r.body, r.signature)).toBe(true);
  }, 90_000);
});
