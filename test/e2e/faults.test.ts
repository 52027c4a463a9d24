/**
 * Fault injection in the wired service (real x264 ladder, real HLS, the Hono app without a socket):
 * an encoder error mid-stream, a decoder error, a transcoder that throws on every call and one that
 * never resolves. Each stays in its rung or task, is counted, retried with back-off, and shows up
 * in /api/v1/transcode and /metrics while the other rungs carry on.
 */

import { describe, expect, it } from 'vitest';
import { consoleLogger } from '../../src/core/log.ts';
import { parseServe } from '../../src/server/config.ts';
import { createService } from '../../src/server/service.ts';
import type { TranscoderFactory } from '../../src/transcode/index.ts';
import { PRESET_240P } from '../../src/transcode/index.ts';
import { fixtureInfo, readFixture } from '../../testkit/fixtures.ts';
import { publish, realCodecs, wrapCodecs } from '../support/ladder.ts';
import { waitFor } from '../support/wait.ts';

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

describe('fault injection in the running service', () => {
  it('encoder and decoder errors, a transcoder that always throws and one that hangs are isolated, counted, retried, and reported by the API and metrics', async () => {
    const real = await realCodecs();
    let encodes480 = 0;
    let decodes = 0;
    const codecs = wrapCodecs(real, {
      encoder: (config, make) => {
        const encoder = make();
        if (config.height !== 480) return encoder;
        return {
          encode(frame, options) {
            encodes480 += 1;
            if (encodes480 === 20) throw new Error('injected encoder fault');
            return encoder.encode(frame, options);
          },
          flush: () => encoder.flush(),
          close: () => encoder.close(),
        };
      },
      decoder: (_config, make) => {
        const decoder = make();
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
    const throwing: TranscoderFactory = {
      name: 'always-throws',
      rendition: PRESET_240P,
      build: (ctx) =>
        ctx.track === '0.mp4' ? { onFragment: () => Promise.reject(new Error('always broken')) } : undefined,
    };
    let calls = 0;
    const hanging: TranscoderFactory = {
      name: 'hangs',
      rendition: PRESET_240P,
      build: (ctx) =>
        ctx.track === '0.mp4'
          ? {
              onFragment: () => {
                calls += 1;
                if (calls === 3) return new Promise<void>(() => {});
              },
            }
          : undefined,
    };
    const config = parseServe(['--test-pattern', 'off'], {}, () => '');
    const service = createService({
      config,
      codecs,
      logger: consoleLogger('error'),
      factories: [throwing, hanging],
      runner: { callTimeoutMs: 300, retryBaseMs: 100, retryMaxMs: 400 },
      ladder: { retryBaseMs: 50 },
    });
    const api = async (): Promise<TranscodeApi> =>
      (await (await service.app.request('/api/v1/transcode')).json()) as TranscodeApi;
    const metrics = async (): Promise<string> => (await service.app.request('/metrics')).text();
    try {
      const fixture = '720p30-frag-every-frame.mp4'; // one fragment per frame
      const broadcast = 'live/faulty';
      // Watch the API while the source plays: the rungs are live only until it ends.
      let live: TranscodeApi | undefined;
      const publishing = publish(service.ingest, broadcast, [{ bytes: readFixture(fixture), durationS: 3 }], {
        end: 'none',
      });
      await waitFor(
        async () => {
          const now = await api();
          const source = now.sources.find((s) => s.broadcast === broadcast);
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
      const source = live!.sources.find((s) => s.broadcast === broadcast)!;
      expect(source.lastError).toContain('injected decoder fault');
      const rung = (r: string) => source.rungs.find((x) => x.rendition === r)!;
      expect(rung('480p').lastError).toContain('injected encoder fault');
      expect(rung('480p').state).toBe('running');
      expect(rung('720p').restarts).toBe(0);
      expect(rung('240p').restarts).toBe(0);
      expect(rung('720p').framesOut).toBeGreaterThan(0);

      const after = await api();
      const thrower = after.transcoders.find((t) => t.transcoder === 'always-throws')!;
      expect(thrower.state).toBe('backoff');
      expect(thrower.panics).toBeGreaterThanOrEqual(1);
      expect(thrower.consecutiveFailures).toBe(thrower.panics);
      expect(thrower.skipped).toBeGreaterThan(0);
      expect(thrower.lastError).toBe('always broken');
      const hang = after.transcoders.find((t) => t.transcoder === 'hangs')!;
      expect(hang.state).toBe('running');
      expect(hang.lastError).toMatch(/timed out after 300 ms/);

      const text = await metrics();
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
      const master = await (await service.app.request(`/hls/${broadcast}/master.m3u8`)).text();
      for (const r of ['720p', '480p', '240p']) expect(master).toContain(`${r}/playlist.m3u8`);
      expect(fixtureInfo(fixture).video.frameCount).toBeGreaterThan(45);
    } finally {
      await service.close();
    }
  }, 60_000);
});
