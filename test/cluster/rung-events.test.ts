/**
 * Rung events in a cluster come from the transcode node that runs the ladder. Ingest node A and
 * edge C are CLI processes; transcode node B runs in this process (`startService` on the Node host,
 * its codec loader wrapping the real napi codecs so that one encoder of the `240p` rung throws once
 * mid-stream). All three post to one receiver. A broadcast published to A with ffmpeg, transcoded
 * on B and served by C gives `rung_failed` then `rung_recovered` for `240p`, once each, from B and
 * signed, and nothing of the rungs from A or C; `publish`, `ready` and `unpublish` come from A.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleLogger } from '../../src/core/log.ts';
import { nodeHost } from '../../src/runtime/node.ts';
import { parseServe } from '../../src/server/config.ts';
import type { RuntimeHost, StartedService } from '../../src/server/main.ts';
import { startService } from '../../src/server/main.ts';
import { fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getText, type RunningServer } from '../../testkit/server.ts';
import { ffmpegPublish } from '../e2e/helpers.ts';
import { type Receiver, startReceiver, validSignature } from '../events/receiver.ts';
import { encoderFailingOnce, type FailingOnceCodecs } from '../support/ladder.ts';
import { waitFor } from '../support/wait.ts';
import { startNode } from './nodes.ts';

const SECRET = 'cluster-rung-hook-secret';
const BROADCAST = 'live/rung-ev';
/** A rung below `240p` that runs beside the faulty one and must say nothing. */
const SMALL_RUNG = 'name = "144p"\nwidth = 256\nheight = 144\nvideo_bitrate_kbps = 200\naudio_bitrate_kbps = 64\n';

/** Frames given to the `240p` encoders, the 15th of which (mid-GOP: the clip's GOP is 30 frames) throws. */
let failing: FailingOnceCodecs | undefined;

/** The Node host, its codec loader giving the faulty codecs. */
const faultyHost: RuntimeHost = {
  ...nodeHost,
  async loadCodecs(config, logger) {
    const loaded = await nodeHost.loadCodecs(config, logger);
    if (loaded.codecs === undefined) return loaded;
    failing = encoderFailingOnce(loaded.codecs, 240, 15);
    return { ...loaded, codecs: failing.codecs };
  },
};

let nats: RunningNats;
let receiver: Receiver;
let nodes: RunningServer[] = [];
let transcoder: StartedService | undefined;

beforeAll(async () => {
  nats = await startNats();
  receiver = await startReceiver();
  const hook = (name: string) => ['--webhook-url', receiver.url, '--webhook-secret', SECRET, '--node-name', name];
  const config = parseServe(
    [
      '--role',
      'transcode',
      '--nats',
      nats.url,
      '--node-id',
      'B',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--test-pattern',
      'off',
      '--transcode-rendition',
      '240p,small.toml',
      '--transcode-audio',
      'passthrough',
      // No overload policy: only the injected fault may cost a rung frames.
      '--transcode-overload',
      'off',
      ...hook('node-b'),
    ],
    {},
    (path) => {
      if (path !== 'small.toml') throw new Error(`ENOENT ${path}`);
      return SMALL_RUNG;
    },
  );
  const started = await Promise.all([
    startNode('A', 'ingest', nats.url, ['--ingest-grace', '0', ...hook('node-a')]),
    startNode('C', 'edge', nats.url, hook('node-c')),
    startService(faultyHost, config, consoleLogger('error')),
  ]);
  nodes = [started[0], started[1]];
  transcoder = started[2];
}, 120_000);

afterAll(async () => {
  await Promise.all([...nodes.map((n) => n.stop()), transcoder?.stop()]);
  await receiver?.close();
  await nats?.stop();
});

describe('rung events in a cluster', () => {
  it('an encoder on the transcode node that fails once: rung_failed then rung_recovered from that node only', async () => {
    const [ingest, edge] = nodes as [RunningServer, RunningServer];
    const worker = transcoder!;
    const base = `${edge.url}/hls/${BROADCAST}`;
    // Asked before it starts: the edge mirrors the broadcast from its first keyframe.
    expect((await fetch(`${base}/master.m3u8`)).status).toBe(404);
    // 12 s of media (the clip is 3 s): a worker that takes the ladder late on a busy machine still
    // sees keyframes after the fault, so the rung can recover while the source lives.
    const publisher = ffmpegPublish(fixturePath('360p30.mp4'), `${ingest.url}/ingest/${BROADCAST}`, { loops: 3 });
    // The edge serves the recovered rung the worker makes: every node took part.
    await waitFor(
      async () => (await getText(`${base}/240p/playlist.m3u8`))?.includes('seg-') === true,
      'the 240p rung at the edge',
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(await publisher.exited, publisher.output()).toBe(0);
    await waitFor(() => receiver.events('rung_recovered', BROADCAST).length > 0, 'rung_recovered', {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    // The source ended everywhere and everything each node had to say was delivered.
    await waitFor(
      async () => {
        const tasks = worker.service.runner.stats().filter((t) => t.broadcast === BROADCAST);
        const sent = worker.service.events!.sender.stats();
        return (
          receiver.events('unpublish', BROADCAST).length > 0 &&
          tasks.length > 0 &&
          tasks.every((t) => t.endedAtMs !== undefined) &&
          sent.queued === 0 &&
          sent.inFlight === 0 &&
          (await getText(`${base}/playlist.m3u8`))?.includes('#EXT-X-ENDLIST') === true
        );
      },
      'the broadcast to end on every node',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(failing?.encodes()).toBeGreaterThan(15);
    const mine = receiver.received
      .filter((r) => r.event.broadcast === BROADCAST)
      .sort((a, b) => Date.parse(a.event.time) - Date.parse(b.event.time));
    expect(mine.map((r) => `${r.event.type}@${r.event.node}`).sort()).toEqual([
      'publish@node-a',
      'ready@node-a',
      'rung_failed@node-b',
      'rung_recovered@node-b',
      'unpublish@node-a',
    ]);
    const rungEvents = mine.filter((r) => r.event.type.startsWith('rung_'));
    expect(rungEvents.map((r) => r.event)).toEqual([
      {
        type: 'rung_failed',
        id: expect.any(String),
        broadcast: BROADCAST,
        node: 'node-b',
        time: expect.any(String),
        rendition: '240p',
        error: expect.stringContaining('injected encoder fault'),
      },
      {
        type: 'rung_recovered',
        id: expect.any(String),
        broadcast: BROADCAST,
        node: 'node-b',
        time: expect.any(String),
        rendition: '240p',
      },
    ]);
    expect(Date.parse(rungEvents[0]!.event.time)).toBeLessThan(Date.parse(rungEvents[1]!.event.time));
    for (const r of mine) {
      expect(validSignature(SECRET, r.bytes, r.signature), r.body).toBe(true);
      expect(r.eventHeader, r.body).toBe(r.event.type);
    }
  }, 60_000);
});
