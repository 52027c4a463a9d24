/**
 * Fault injection in the wired service (real x264 ladder, real HLS, the Hono app without a socket):
 * an encoder error mid-stream, a decoder error, a transcoder that throws on every call and one that
 * never resolves. Each stays in its rung or task, is counted, retried with back-off, and shows up
 * in /api/v1/transcode and /metrics while the other rungs carry on. A second, healthy broadcast
 * publishes through the same service at the same time: its source and every rung of its ladder
 * must hold every frame of its clip (counted with ffprobe on the HLS playlists), with no restart,
 * drop, lag or failure anywhere.
 */

import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/core/bytes.ts';
import { consoleLogger } from '../../src/core/log.ts';
import { loopPieces, planPieces } from '../../src/runtime/publish.ts';
import { parseServe } from '../../src/server/config.ts';
import { createService, type Service } from '../../src/server/service.ts';
import type { TranscoderFactory } from '../../src/transcode/index.ts';
import { PRESET_240P } from '../../src/transcode/index.ts';
import { fixtureInfo, readFixture } from '../../testkit/fixtures.ts';
import { concat } from '../../testkit/fmp4.ts';
import { probeFrames, probeStreams } from '../support/ffprobe.ts';
import { encoderFailingOnce, publish, realCodecs, wrapCodecs } from '../support/ladder.ts';
import { waitFor } from '../support/wait.ts';
import { parseM3u8 } from './helpers.ts';

type Rung = { rendition: string; restarts: number; lastError?: string; framesOut: number; state: string };
type Source = { broadcast: string; decoderRestarts: number; lastError?: string; rungs: Rung[] };
type Task = {
  transcoder: string;
  state: string;
  panics: number;
  timeouts: number;
  skipped: number;
  consecutiveFailures: number;
  lastError?: string;
};
type TranscodeApi = { sources: Source[]; transcoders: Task[] };

/** The broadcast the faults are injected into: 1280x720, one fragment per frame, a 1 s GOP. */
const FAULTY = 'live/faulty';
const FAULTY_FIXTURE = '720p30-frag-every-frame.mp4';
/**
 * Its clip played on for this long (seconds): `hangs` hangs on its third fragment, times out after
 * `CALL_TIMEOUT_MS`, backs off and must meet a keyframe (one a second) to run again.
 */
const FAULTY_S = 8;
/**
 * The broadcast published beside it. Its source is 720x1280, so the faults (keyed on the faulty
 * source's 1280-wide decoder and its 480-line rung) cannot reach it by configuration: only a leak
 * between broadcasts can.
 */
const HEALTHY = 'live/healthy';
const HEALTHY_FIXTURE = 'portrait-720x1280.mp4';
/** Media duration of the healthy clip, seconds. */
const HEALTHY_S = 3;
/**
 * The runner's hook timeout. A rung's `onFragment` lasts as long as its fragment takes to decode:
 * the healthy clip comes in 1 s fragments, which on a loaded 2-core machine take up to about 2 s.
 */
const CALL_TIMEOUT_MS = 5000;
/**
 * The rungs' frame-queue bound: the faulty stream's frame count. No rung can reach it and drop a GOP
 * because the machine encodes slowly, and the healthy clip (90 frames) stays under its half, where a
 * rung holds its hook. Only the injected faults may cost frames here (load shedding is
 * overload.test.ts's).
 */
const MAX_QUEUED_FRAMES = 30 * FAULTY_S;

/** The faulty clip played on as one live stream (the loop's timestamps run on) for `FAULTY_S`. */
function faultyStream(): Uint8Array {
  const pieces: Uint8Array[] = [];
  for (const piece of loopPieces(planPieces(readFixture(FAULTY_FIXTURE)))) {
    if (piece.timeS >= FAULTY_S) break;
    pieces.push(piece.bytes);
  }
  return concatBytes(pieces);
}

/** Sum of the samples of `name` whose labels include `labels`. */
function metric(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

/**
 * The video frames of an ended HLS media playlist (`/hls/<path>playlist.m3u8`), decoded by ffprobe
 * from its init segment and every segment it lists, as presentation times in seconds.
 */
async function hlsFrameTimes(service: Service, path: string): Promise<number[]> {
  const get = async (file: string) => service.app.request(`/hls/${path}${file}`);
  const manifest = parseM3u8(await (await get('playlist.m3u8')).text());
  const segments: Array<{ uri: string; map?: { uri: string } }> = manifest.segments;
  expect(manifest.endList, `${path} ended`).toBe(true);
  expect(new Set(segments.map((s) => s.map?.uri)).size, `${path}: one init`).toBe(1);
  const bytes = async (file: string) => new Uint8Array(await (await get(file)).arrayBuffer());
  const file = concat([await bytes(segments[0]!.map!.uri), ...(await Promise.all(segments.map((s) => bytes(s.uri))))]);
  const [streams, frames] = await Promise.all([probeStreams(file), probeFrames(file)]);
  const timescale = streams.find((s) => s.codecType === 'video')!.timescale;
  return frames.map((f) => f.pts / timescale);
}

describe('fault injection in the running service', () => {
  it('encoder and decoder errors, a transcoder that always throws and one that hangs are isolated, counted, retried, and reported by the API and metrics; a healthy broadcast beside them loses no frame', async () => {
    const real = await realCodecs();
    let decodes = 0;
    const withDecoderFault = wrapCodecs(real, {
      decoder: (config, make) => {
        const decoder = make();
        if (config.codedWidth !== 1280) return decoder;
        return {
          decode(sample) {
            decodes += 1;
            if (decodes === 45) throw new Error('injected decoder fault');
            return decoder.decode(sample);
          },
          flush: () => decoder.flush(),
          close: () => decoder.close(),
        };
      },
    });
    // The faulty source's 854x480 rung (the healthy source's 480p rung is 480x854) fails at its 20th frame.
    const { codecs } = encoderFailingOnce(withDecoderFault, 480, 20);
    const throwing: TranscoderFactory = {
      name: 'always-throws',
      rendition: PRESET_240P,
      build: (ctx) =>
        ctx.broadcast === FAULTY && ctx.track === '0.mp4'
          ? { onFragment: () => Promise.reject(new Error('always broken')) }
          : undefined,
    };
    let calls = 0;
    const hanging: TranscoderFactory = {
      name: 'hangs',
      rendition: PRESET_240P,
      build: (ctx) =>
        ctx.broadcast === FAULTY && ctx.track === '0.mp4'
          ? {
              onFragment: () => {
                calls += 1;
                if (calls === 3) return new Promise<void>(() => {});
              },
            }
          : undefined,
    };
    const config = parseServe(['--test-pattern', 'off', '--transcode-overload', 'off'], {}, () => '');
    const service = createService({
      config,
      codecs,
      logger: consoleLogger('error'),
      factories: [throwing, hanging],
      runner: { callTimeoutMs: CALL_TIMEOUT_MS, retryBaseMs: 100, retryMaxMs: 400 },
      ladder: { retryBaseMs: 50, maxQueuedFrames: MAX_QUEUED_FRAMES },
      // The healthy publisher ends its stream: its broadcast ends soon after.
      graceMs: 100,
    });
    const api = async (): Promise<TranscodeApi> =>
      (await (await service.app.request('/api/v1/transcode')).json()) as TranscodeApi;
    const metrics = async (): Promise<string> => (await service.app.request('/metrics')).text();
    // The healthy source's decoder restarts, sampled while it is live (the API lists live sources only).
    let healthyListed = false;
    let healthyDecoderRestarts = 0;
    const sampler = setInterval(() => {
      const source = (service.transcodeStatus() as TranscodeApi).sources.find((s) => s.broadcast === HEALTHY);
      if (source === undefined) return;
      healthyListed = true;
      healthyDecoderRestarts = Math.max(healthyDecoderRestarts, source.decoderRestarts);
    }, 20);
    try {
      // Watch the API while the source plays: the rungs are live only until it ends.
      let live: TranscodeApi | undefined;
      const faultyBytes = faultyStream();
      const healthyBytes = readFixture(HEALTHY_FIXTURE);
      const publishing = Promise.all([
        publish(service.ingest, FAULTY, [{ bytes: faultyBytes, durationS: FAULTY_S }], { end: 'none' }),
        publish(service.ingest, HEALTHY, [{ bytes: healthyBytes, durationS: HEALTHY_S }]),
      ]);
      await waitFor(
        async () => {
          const now = await api();
          const source = now.sources.find((s) => s.broadcast === FAULTY);
          const rung = (r: string) => source?.rungs.find((x) => x.rendition === r);
          const ready =
            source !== undefined &&
            source.decoderRestarts >= 1 &&
            (rung('480p')?.restarts ?? 0) >= 1 &&
            (rung('480p')?.framesOut ?? 0) > 20 &&
            now.transcoders.some((t) => t.transcoder === 'hangs' && t.timeouts === 1);
          if (ready) live = now;
          return ready;
        },
        'every injected fault to show up in /api/v1/transcode',
        { timeoutMs: 20_000, intervalMs: 50 },
      );
      await publishing;
      const source = live!.sources.find((s) => s.broadcast === FAULTY)!;
      expect(source.lastError).toContain('injected decoder fault');
      const rung = (r: string) => source.rungs.find((x) => x.rendition === r)!;
      expect(rung('480p').lastError).toContain('injected encoder fault');
      expect(rung('480p').state).toBe('running');
      expect(rung('720p').restarts).toBe(0);
      expect(rung('240p').restarts).toBe(0);
      expect(rung('720p').framesOut).toBeGreaterThan(0);

      // The faulty stream is all in: once its tasks took every fragment, the API and /metrics agree.
      const { after, text } = await waitFor(
        async () => {
          const now = { after: await api(), text: await metrics() };
          const t = now.after.transcoders.find((x) => x.transcoder === 'always-throws');
          const labels = { transcoder: 'always-throws', rendition: '240p' };
          const settled =
            t !== undefined &&
            metric(now.text, 'lvqr_transcode_panics_total', { ...labels, phase: 'fragment' }) === t.panics &&
            metric(now.text, 'lvqr_transcode_dropped_fragments_total', labels) === t.skipped;
          return settled ? now : undefined;
        },
        'the API and /metrics to agree on the faulty transcoders',
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      const thrower = after.transcoders.find((t) => t.transcoder === 'always-throws')!;
      expect(thrower.state).toBe('backoff');
      expect(thrower.panics).toBeGreaterThanOrEqual(1);
      expect(thrower.consecutiveFailures).toBe(thrower.panics);
      expect(thrower.skipped).toBeGreaterThan(0);
      expect(thrower.lastError).toBe('always broken');
      const hang = after.transcoders.find((t) => t.transcoder === 'hangs')!;
      expect(hang.state).toBe('running');
      expect(hang.lastError).toContain(`timed out after ${CALL_TIMEOUT_MS} ms`);

      expect(
        metric(text, 'lvqr_transcode_restarts_total', { transcoder: 'software', rendition: '480p' }),
      ).toBeGreaterThan(0);
      expect(metric(text, 'lvqr_transcode_restarts_total', { transcoder: 'software', rendition: '720p' })).toBe(0);
      expect(
        metric(text, 'lvqr_transcode_panics_total', {
          transcoder: 'always-throws',
          rendition: '240p',
          phase: 'fragment',
        }),
      ).toBe(thrower.panics);
      expect(
        metric(text, 'lvqr_transcode_dropped_fragments_total', { transcoder: 'always-throws', rendition: '240p' }),
      ).toBe(thrower.skipped);
      expect(
        metric(text, 'lvqr_transcode_panics_total', { transcoder: 'hangs', rendition: '240p', phase: 'fragment' }),
      ).toBe(1);
      // The ladder kept producing: every rung published, and the HLS master lists them all.
      // Next to the healthy ladder the faulty one may trail its source: wait for it.
      await waitFor(
        async () => {
          const master = await (await service.app.request(`/hls/${FAULTY}/master.m3u8`)).text();
          return ['720p', '480p', '240p'].every((r) => master.includes(`${r}/playlist.m3u8`));
        },
        'every rung of the faulty broadcast in its HLS master',
        { timeoutMs: 20_000, intervalMs: 50 },
      );
      expect(fixtureInfo(FAULTY_FIXTURE).video.frameCount).toBeGreaterThan(45);

      await expectHealthyIntact(service);
      expect(healthyListed).toBe(true);
      expect(healthyDecoderRestarts).toBe(0);
    } finally {
      clearInterval(sampler);
      await service.close();
    }
  }, 60_000);
});

/**
 * The healthy broadcast, once ended: each of its tasks ran without a failure, restart, drop or lag
 * and got every frame out; its source playlist and every rung playlist hold every frame of the clip,
 * at the source's presentation times.
 */
async function expectHealthyIntact(service: Service): Promise<void> {
  const frames = fixtureInfo(HEALTHY_FIXTURE).video.frameCount;
  const tasks = await waitFor(
    () => {
      const mine = service.runner.stats().filter((t) => t.broadcast === HEALTHY);
      return mine.length > 0 && mine.every((t) => t.endedAtMs !== undefined) ? mine : undefined;
    },
    'every task of the healthy broadcast to end',
    { timeoutMs: 20_000, intervalMs: 50 },
  );
  for (const t of tasks) {
    const what = `${t.transcoder} ${t.rendition} ${t.track}`;
    expect({ what, panics: t.panics, timeouts: t.timeouts, skipped: t.skipped, lagged: t.lagged }).toEqual({
      what,
      panics: 0,
      timeouts: 0,
      skipped: 0,
      lagged: 0,
    });
  }
  const rungs = tasks.filter((t) => t.transcoder === 'software');
  expect(rungs.map((t) => t.rendition).sort()).toEqual(['240p', '480p', '720p']);
  for (const t of rungs) {
    expect({ rendition: t.rendition, ...t.transcoderStats }).toMatchObject({
      rendition: t.rendition,
      state: 'ended',
      framesIn: frames,
      framesOut: frames,
      droppedFrames: 0,
      restarts: 0,
    });
  }
  const source = await hlsFrameTimes(service, `${HEALTHY}/`);
  expect(source).toHaveLength(frames);
  for (const t of rungs) {
    const rung = await hlsFrameTimes(service, `${HEALTHY}/${t.rendition}/`);
    expect(rung, t.rendition).toEqual(source);
  }
}
