/**
 * The ladder's operator events from the wired service (`createService` on serve flags, real x264
 * ladder, real HLS) to a real webhook receiver on loopback. An encoder that fails once mid-stream:
 * `rung_failed` and then `rung_recovered` for its rung, and no rung event for the others. Encoders
 * too slow for the source: the overload policy sheds and then pauses the lowest rung, and once
 * they are fast again it resumes, each step an `overload` event. Every one of them arrives signed
 * (HMAC-SHA256 of the exact body bytes, checked with node:crypto), with `x-lvqr-event` equal to its
 * type, and with exactly the fields the README's Events section lists.
 */

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/core/bytes.ts';
import { consoleLogger } from '../../src/core/log.ts';
import { loopPieces, planPieces } from '../../src/runtime/publish.ts';
import { parseServe } from '../../src/server/config.ts';
import { createService, type Service, type ServiceDeps } from '../../src/server/service.ts';
import type { VideoCodecs } from '../../src/transcode/codecs.ts';
import { createRendition } from '../../src/transcode/index.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { type Received, type Receiver, startReceiver, validSignature } from '../events/receiver.ts';
import { encoderFailingOnce, publish, realCodecs, slowEncoders, wrapCodecs } from '../support/ladder.ts';
import { waitFor } from '../support/wait.ts';

const SECRET = 'rung-hook-secret-8e2f';
const NODE = 'node-rungs';
/** 640x360, 3 s, a keyframe (and a fragment) every second. */
const CLIP = '360p30.mp4';
/**
 * 1280x720, 3 s, a fragment per frame: frames reach the rungs steadily, so slow encoders fall
 * further behind in every sampling interval (with one-second fragments a rung that dropped a GOP
 * idles until the next one, and the idle intervals read as calm).
 */
const PER_FRAME_CLIP = '720p30-frag-every-frame.mp4';
/**
 * Small rungs, all below the source (none is source-sized, so none waits for the bypass rule),
 * most important first: `108p` is the one the overload policy sheds first.
 */
const LADDER = [
  createRendition('180p', 320, 180, 300, 64),
  createRendition('144p', 256, 144, 200, 64),
  createRendition('108p', 192, 108, 100, 64),
];

/** The overload policy's moves of one rung: `<state> <action>` to the state it leads to. */
const MOVES: Readonly<Record<string, string>> = {
  'running shed': 'shedding',
  'shedding pause': 'paused',
  'shedding restore': 'running',
  'paused resume': 'running',
};

let receiver: Receiver;

beforeEach(async () => {
  receiver = await startReceiver();
});

afterEach(async () => {
  await receiver?.close();
});

/**
 * A service wired by `createService` (as `main` wires it) from the webhook flags and `flags`, on
 * `codecs`, with the small ladder and the ladder tunables in `ladder`.
 */
function startService(codecs: VideoCodecs, flags: readonly string[], ladder: ServiceDeps['ladder'] = {}) {
  const served = parseServe(
    [
      '--test-pattern',
      'off',
      '--transcode-audio',
      'passthrough',
      '--ingest-grace',
      '0',
      '--webhook-url',
      receiver.url,
      '--webhook-secret',
      SECRET,
      '--node-name',
      NODE,
      ...flags,
    ],
    {},
    () => '',
  );
  const config = { ...served, ladder: LADDER };
  return createService({ config, codecs, logger: consoleLogger('error'), graceMs: config.ingestGraceMs, ladder });
}

/** Whether the service's webhook sender has nothing waiting or in flight. */
function allDelivered(service: Service): boolean {
  const sent = service.events!.sender.stats();
  return sent.queued === 0 && sent.inFlight === 0;
}

/** What every delivery must be: signed over its exact bytes, typed in its header, stamped by this node. */
function expectDelivered(r: Received): void {
  const what = `${r.event.type} ${r.body}`;
  expect(validSignature(SECRET, r.bytes, r.signature), what).toBe(true);
  expect(validSignature('another-secret', r.bytes, r.signature), what).toBe(false);
  expect(r.eventHeader, what).toBe(r.event.type);
  expect(r.event.node, what).toBe(NODE);
  expect(new Date(r.event.time).toISOString(), what).toBe(r.event.time);
  expect(Math.abs(Date.now() - Date.parse(r.event.time)), what).toBeLessThan(60_000);
  expect(r.event.id, what).toMatch(/^\S+$/);
}

/** The deliveries of `types` for `broadcast`, in the order their events happened. */
function deliveries(broadcast: string, types: readonly string[]): Received[] {
  return receiver.received
    .filter((r) => r.event.broadcast === broadcast && types.includes(r.event.type))
    .sort((a, b) => Date.parse(a.event.time) - Date.parse(b.event.time));
}

/** The fixture `name` played on as one live stream (the loop's timestamps run on) for `seconds`. */
function liveStream(name: string, seconds: number): { bytes: Uint8Array; durationS: number } {
  const pieces: Uint8Array[] = [];
  for (const piece of loopPieces(planPieces(readFixture(name)))) {
    if (piece.timeS >= seconds) break;
    pieces.push(piece.bytes);
  }
  return { bytes: concatBytes(pieces), durationS: seconds };
}

describe('rung and overload events', () => {
  it('an encoder that fails once mid-stream: signed rung_failed then rung_recovered for its rung, nothing for the others', async () => {
    // Mid-GOP: the rung is rebuilt at the next source keyframe (frame 30).
    const failing = encoderFailingOnce(await realCodecs(), 144, 15);
    // No overload policy: only the injected fault may cost the rung frames.
    const service = startService(failing.codecs, ['--transcode-overload', 'off']);
    const broadcast = 'live/rung-fault';
    try {
      await publish(service.ingest, broadcast, [{ bytes: readFixture(CLIP), durationS: 3 }]);
      await waitFor(() => receiver.events('rung_recovered', broadcast).length > 0, 'rung_recovered', {
        timeoutMs: 15_000,
        intervalMs: 20,
      });
      // Everything the ladder had to say about this broadcast was said and delivered.
      await waitFor(
        () => {
          const tasks = service.runner.stats().filter((t) => t.broadcast === broadcast);
          return (
            tasks.length > 0 &&
            tasks.every((t) => t.endedAtMs !== undefined) &&
            receiver.events('unpublish', broadcast).length === 1 &&
            allDelivered(service)
          );
        },
        'the broadcast to end and every event to be delivered',
        { timeoutMs: 15_000, intervalMs: 20 },
      );
      expect(failing.encodes()).toBeGreaterThan(15);
      const rungEvents = deliveries(broadcast, ['rung_failed', 'rung_recovered']);
      expect(rungEvents.map((r) => r.event)).toEqual([
        {
          type: 'rung_failed',
          id: expect.any(String),
          broadcast,
          node: NODE,
          time: expect.any(String),
          rendition: '144p',
          error: expect.stringContaining('injected encoder fault'),
        },
        {
          type: 'rung_recovered',
          id: expect.any(String),
          broadcast,
          node: NODE,
          time: expect.any(String),
          rendition: '144p',
        },
      ]);
      expect(Date.parse(rungEvents[0]!.event.time)).toBeLessThan(Date.parse(rungEvents[1]!.event.time));
      expect(rungEvents[0]!.event.id).not.toBe(rungEvents[1]!.event.id);
      for (const r of rungEvents) expectDelivered(r);
      // Every rung is in the master: the other two ran throughout and said nothing.
      const master = await (await service.app.request(`/hls/${broadcast}/master.m3u8`)).text();
      for (const r of LADDER) expect(master).toContain(`${r.name}/playlist.m3u8`);
    } finally {
      await service.close();
    }
  }, 40_000);

  it('an encoder that keeps failing: its rung leaves the master while it fails and comes back once it recovers; the others stay', async () => {
    let failing = false;
    const codecs = wrapCodecs(await realCodecs(), {
      encoder: (config, make) => {
        const encoder = make();
        if (config.height !== 144) return encoder;
        return {
          encode(frame, options) {
            if (failing) throw new Error('injected encoder fault');
            return encoder.encode(frame, options);
          },
          flush: () => encoder.flush(),
          close: () => encoder.close(),
        };
      },
    });
    const service = startService(codecs, ['--transcode-overload', 'off']);
    const broadcast = 'live/rung-failing';
    const master = async (): Promise<string> => (await service.app.request(`/hls/${broadcast}/master.m3u8`)).text();
    // The video variants in the master, in its order.
    const listed = async (): Promise<string[]> =>
      [...(await master()).matchAll(/^(\w+)\/playlist\.m3u8$/gm)].map((m) => m[1]!);
    const until = new AbortController();
    try {
      // Longer than the test needs: stopped once the rung has recovered.
      const publishing = publish(service.ingest, broadcast, [liveStream(CLIP, 40)], {
        end: 'none',
        until: until.signal,
      });
      const opts = { timeoutMs: 15_000, intervalMs: 50 };
      await waitFor(async () => (await listed()).length === 3, 'every rung in the master', opts);
      failing = true;
      await waitFor(async () => !(await listed()).includes('144p'), '144p to leave the master', opts);
      await waitFor(() => receiver.events('rung_failed', broadcast).length > 0, 'rung_failed', opts);
      expect(receiver.events('rung_failed', broadcast).map((e) => e.rendition)).toEqual(['144p']);
      expect(await listed()).toEqual(['180p', '108p']);
      // Still failing a keyframe later (the rebuilt encoder fails too): still out.
      const restarts = (): number =>
        Number(
          service.runner.stats().find((t) => t.broadcast === broadcast && t.rendition === '144p')?.transcoderStats?.[
            'restarts'
          ] ?? 0,
        );
      await waitFor(() => restarts() >= 2, 'a second failed session', opts);
      expect(await listed()).toEqual(['180p', '108p']);
      failing = false;
      await waitFor(async () => (await listed()).includes('144p'), '144p back in the master', opts);
      await waitFor(() => receiver.events('rung_recovered', broadcast).length > 0, 'rung_recovered', opts);
      expect(receiver.events('rung_recovered', broadcast).map((e) => e.rendition)).toEqual(['144p']);
      expect(receiver.events('rung_failed', broadcast)).toHaveLength(1);
      expect(await listed()).toEqual(['180p', '144p', '108p']);
      until.abort();
      await publishing;
    } finally {
      until.abort();
      await service.close();
    }
  }, 60_000);

  it('encoders too slow for the source: signed overload events shed and pause the lowest rung, and resume it once they are fast again', async () => {
    let slow = true;
    // About 20 frames a second while slow: every rung falls behind the 30 fps source.
    const codecs = slowEncoders(await realCodecs(), () => (slow ? 50 : 0));
    // The policy's short tunables (the library options; the defaults take seconds per step), and a
    // queue bound the slow rungs do not reach here: a GOP dropped at the bound would let a rung's
    // lag fall, which reads as catching up and interrupts the overload.
    const service = startService(codecs, ['--transcode-overload', 'on'], {
      maxQueuedFrames: 90,
      overload: { intervalMs: 200, behindLagMs: 400, sustainMs: 1200, resumeAfterMs: 1500 },
    });
    const broadcast = 'live/rung-overload';
    const actions = (): string[] => receiver.events('overload', broadcast).map((e) => `${e.rendition} ${e.action}`);
    try {
      // Longer than the test needs: the service is closed once the rung has resumed.
      const publishing = publish(service.ingest, broadcast, [liveStream(PER_FRAME_CLIP, 20)], { end: 'none' });
      await waitFor(() => service.ladder!.isRungPaused(broadcast, '108p'), '108p to be paused', {
        timeoutMs: 15_000,
        intervalMs: 10,
      });
      slow = false;
      await waitFor(() => actions().includes('108p resume'), 'the overload event resuming 108p', {
        timeoutMs: 15_000,
        intervalMs: 20,
      });
      // Every step before it was delivered too.
      await waitFor(() => allDelivered(service), 'every event to be delivered', { timeoutMs: 10_000, intervalMs: 20 });
      const overload = deliveries(broadcast, ['overload']);
      // 108p's steps, in the order they happened, are moves of the policy's state machine from
      // `running`; the resume can only follow a pause, which can only follow a shed (a busy machine
      // may add a restore and a shed again before the pause, or steps after the resume).
      const steps = overload.filter((r) => r.event.rendition === '108p').map((r) => String(r.event.action));
      let state = 'running';
      for (const action of steps) {
        const next = MOVES[`${state} ${action}`];
        expect(next, `${action} from ${state} in ${steps.join(', ')}`).toBeDefined();
        state = next!;
      }
      expect(steps).toContain('resume');
      for (const r of overload) {
        expect(r.event).toEqual({
          type: 'overload',
          id: expect.any(String),
          broadcast,
          node: NODE,
          time: expect.any(String),
          rendition: expect.stringMatching(/^(180p|144p|108p)$/),
          action: expect.stringMatching(/^(shed|pause|restore|resume)$/),
        });
        expectDelivered(r);
      }
      expect(new Set(overload.map((r) => r.event.id)).size).toBe(overload.length);
      await service.close();
      await publishing;
    } finally {
      await service.close();
    }
  }, 40_000);
});
