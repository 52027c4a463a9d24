import { afterEach, describe, expect, it } from 'vitest';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { HlsBridge, type HlsBridgeOptions, type HlsResponse } from '../../src/hls/index.ts';
import { createMetrics, type LvqrMetrics } from '../../src/metrics/index.ts';
import { waitFor } from '../support/wait.ts';
import { appended, describeFake, FakeTrack, get, parse, text } from './harness.ts';

const bridges: HlsBridge[] = [];

function setup(options: Partial<HlsBridgeOptions> = {}): {
  registry: FragmentBroadcasterRegistry;
  bridge: HlsBridge;
  metrics: LvqrMetrics;
} {
  const registry = new FragmentBroadcasterRegistry();
  const metrics = createMetrics();
  const bridge = new HlsBridge({ registry, describeInit: describeFake, metrics, ...options });
  bridge.start();
  bridges.push(bridge);
  return { registry, bridge, metrics };
}

afterEach(() => {
  for (const b of bridges.splice(0)) b.close();
});

/** Tracks whether a pending response has settled. */
function track(promise: Promise<HlsResponse>): { settled: () => boolean; response: Promise<HlsResponse> } {
  let done = false;
  const response = promise.finally(() => {
    done = true;
  });
  return { settled: () => done, response };
}

async function heldRequests(metrics: LvqrMetrics): Promise<number> {
  const value = (await metrics.hlsHeldRequests.get()).values[0]?.value;
  return value ?? 0;
}

/** A video source with segment 0 open and parts 0..2 published (frames 0..17 of a 30 fps stream). */
async function live(options: Partial<HlsBridgeOptions> = {}) {
  const ctx = setup(options);
  const video = new FakeTrack(ctx.registry, 'live/block', 'video');
  video.frames(18, 60);
  await appended(ctx.bridge, 'live/block', 'video', 18);
  return { ...ctx, video };
}

describe('HLS blocking playlist reload', () => {
  it('holds a request for a future part until that part is published, then answers at once with it', async () => {
    const { bridge, video } = await live();
    const pending = track(get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=0&_HLS_part=3'));
    await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.heldRequests === 1, 'the request to be held');
    video.frames(5, 60);
    await appended(bridge, 'live/block', 'video', 23);
    expect(pending.settled()).toBe(false); // five frames of six: part 3 is not complete yet
    const sentAt = performance.now();
    video.frames(1, 60);
    const response = await pending.response;
    const elapsedMs = performance.now() - sentAt;
    expect(elapsedMs).toBeLessThan(250);
    expect(response.status).toBe(200);
    const body = text(response);
    expect(body).toContain('URI="part-0-3.m4s"');
    expect(body).toContain('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-0-4.m4s"');
    // An already satisfied request is answered immediately.
    expect(text(await get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=0&_HLS_part=1'))).toBe(body);
  });

  it('with _HLS_msn alone waits for the whole segment, and treats a part past the last one as part 0 of the next segment', async () => {
    const { bridge, video } = await live();
    const whole = track(get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=0'));
    video.frames(42, 60); // frames 18..59: every part of segment 0, but no keyframe to close it
    await appended(bridge, 'live/block', 'video', 60);
    expect(whole.settled()).toBe(false);
    video.frames(1, 60); // frame 60: the keyframe that closes segment 0
    expect(parse(text(await whole.response)).segments.map((s) => s.uri)).toEqual(['seg-0.m4s']);

    // Segment 0 has parts 0..9; part 10 of it means part 0 of segment 1.
    const next = track(get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=0&_HLS_part=10'));
    await appended(bridge, 'live/block', 'video', 61);
    expect(next.settled()).toBe(false);
    video.frames(5, 60);
    expect(text(await next.response)).toContain('URI="part-1-0.m4s"');
  });

  it('answers 503 when the playlist is not ready after blockingTimeoutMs, and the held-requests gauge returns to zero', async () => {
    const { bridge, metrics } = await live({ blockingTimeoutMs: 120 });
    const started = performance.now();
    const pending = get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=1&_HLS_part=0');
    await waitFor(async () => (await heldRequests(metrics)) === 1, 'gauge up');
    const response = await pending;
    const elapsedMs = performance.now() - started;
    expect(response.status).toBe(503);
    expect(JSON.parse(text(response)).error.code).toBe('hls.unavailable');
    expect(response.headers['Access-Control-Allow-Origin']).toBe('*');
    expect(elapsedMs).toBeGreaterThanOrEqual(100);
    expect(elapsedMs).toBeLessThan(2000);
    expect(await heldRequests(metrics)).toBe(0);
    expect(bridge.broadcasts()[0]?.tracks[0]?.heldRequests).toBe(0);
  });

  it('refuses malformed or far-ahead directives with 400 hls.bad_request', async () => {
    const { bridge } = await live();
    const bad = [
      '_HLS_part=1', // part without msn
      '_HLS_msn=-1',
      '_HLS_msn=1.5',
      '_HLS_msn=abc',
      '_HLS_msn=01',
      '_HLS_msn=0&_HLS_part=x',
      '_HLS_msn=2', // last complete segment is none (-1): more than two ahead
      '_HLS_msn=0&_HLS_part=18', // more than 3 / 0.2 = 15 parts past part 2
      '_HLS_msn=1&_HLS_part=15',
      '_HLS_skip=yes',
    ];
    for (const query of bad) {
      const response = await get(bridge, '/hls/live/block/playlist.m3u8', query);
      expect([query, response.status]).toEqual([query, 400]);
      expect(JSON.parse(text(response)).error.code).toBe('hls.bad_request');
    }
    // The limits themselves are accepted (and held: they time out later, so abort them).
    const abort = new AbortController();
    const ok = ['_HLS_msn=1', '_HLS_msn=0&_HLS_part=17', '_HLS_msn=1&_HLS_part=14'].map((q) =>
      get(bridge, '/hls/live/block/playlist.m3u8', q, abort.signal),
    );
    await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.heldRequests === 3, 'three held');
    abort.abort();
    expect((await Promise.all(ok)).map((r) => r.status)).toEqual([499, 499, 499]);
  });

  it('drops a held request when its signal aborts', async () => {
    const { bridge, metrics } = await live();
    const abort = new AbortController();
    const pending = get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=0&_HLS_part=5', abort.signal);
    await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.heldRequests === 1, 'held');
    abort.abort();
    const response = await pending;
    expect(response.status).toBe(499);
    expect(JSON.parse(text(response)).error.code).toBe('hls.aborted');
    expect(bridge.broadcasts()[0]?.tracks[0]?.heldRequests).toBe(0);
    expect(await heldRequests(metrics)).toBe(0);
  });

  it('holds a request for the preload-hinted part until it exists, and refuses parts that never will', async () => {
    const { bridge, video } = await live();
    const hinted = track(get(bridge, '/hls/live/block/part-0-3.m4s'));
    await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.heldRequests === 1, 'held');
    video.frames(6, 60);
    const response = await hinted.response;
    expect(response.status).toBe(200);
    expect((response.body as Uint8Array).byteLength).toBe(6 * 200);
    expect(response.headers['Cache-Control']).toBe('public, max-age=31536000, immutable');
    expect((await get(bridge, '/hls/live/block/part-0-40.m4s')).status).toBe(404);
    expect((await get(bridge, '/hls/live/block/part-5-0.m4s')).status).toBe(404);
    expect((await get(bridge, '/hls/live/block/seg-0.m4s')).status).toBe(404);
  });

  it('answers held requests at once with EXT-X-ENDLIST when the broadcast ends, and with 503 when the bridge closes', async () => {
    const { registry, bridge } = await live();
    const pending = get(bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=1&_HLS_part=0');
    const part = get(bridge, '/hls/live/block/part-0-3.m4s');
    await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.heldRequests === 2, 'held');
    registry.remove('live/block', '0.mp4');
    const response = await pending;
    expect(response.status).toBe(200);
    expect(text(response)).toContain('#EXT-X-ENDLIST');
    expect((await part).status).toBe(404);

    const other = await live();
    const closing = get(other.bridge, '/hls/live/block/playlist.m3u8', '_HLS_msn=0&_HLS_part=3');
    await waitFor(() => other.bridge.broadcasts()[0]?.tracks[0]?.heldRequests === 1, 'held');
    other.bridge.close();
    expect((await closing).status).toBe(503);
  });

  it('wakes 1,000 held requests with one published part (timing printed: a cold round, then a warm one)', async () => {
    const { bridge, video, metrics } = await live({ blockingTimeoutMs: 5000 });
    const count = 1000;
    for (const [round, part] of [
      ['cold', 3],
      ['warm', 4],
    ] as const) {
      const resolvedAt: number[] = [];
      const requests = Array.from({ length: count }, () =>
        get(bridge, '/hls/live/block/playlist.m3u8', `_HLS_msn=0&_HLS_part=${part}`).then((r) => {
          resolvedAt.push(performance.now());
          return r;
        }),
      );
      await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.heldRequests === count, 'all held');
      await waitFor(async () => (await heldRequests(metrics)) === count, 'gauge up');
      const sentAt = performance.now();
      video.frames(6, 60);
      const responses = await Promise.all(requests);
      const latencies = resolvedAt.map((t) => t - sentAt).sort((a, b) => a - b);
      const p = (q: number): number => latencies[Math.min(count - 1, Math.floor(q * count))]!;
      console.log(
        `${count} held requests woken (${round}): p50 ${p(0.5).toFixed(2)} ms, p99 ${p(0.99).toFixed(2)} ms, max ${p(1).toFixed(2)} ms`,
      );
      expect(responses.every((r) => r.status === 200 && text(r).includes(`part-0-${part}.m4s`))).toBe(true);
      expect(new Set(responses.map((r) => r.body)).size).toBe(1); // rendered once, shared
      expect(p(0.99)).toBeLessThan(1000);
      await waitFor(async () => (await heldRequests(metrics)) === 0, 'gauge down');
    }
  });
});
