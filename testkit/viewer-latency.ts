/**
 * Viewer latency in a real browser: plays a broadcast of a running server with hls.js, either with
 * hls.js's own low-latency defaults (`new Hls({ lowLatencyMode: true })` on a bare page) or in the
 * dashboard's player, and samples every 250 ms how far behind the wall clock the picture is:
 * `Date.now() - hls.playingDate`, where hls.js derives the playing date from the playlist's
 * EXT-X-PROGRAM-DATE-TIME (stamped by the server from the same machine clock). Samples start at
 * the first `playing` event; a stall keeps counting (the picture stands while the clock runs on).
 * Shared by test/browser/latency.test.ts and bench/viewer-latency.ts.
 */

import type { Page } from 'playwright-core';
import { percentile } from '../src/core/percentile.ts';
import { showPage } from './browser.ts';

/** Which player to measure. */
export type LatencyPlayer = 'hls.js defaults' | 'dashboard';

/** What one playback measured. */
export type LatencyRun = {
  readonly player: LatencyPlayer;
  /** One sample per 250 ms of playback, milliseconds. */
  readonly samplesMs: readonly number[];
  /** hls.js's own latency at the same instants (behind its estimate of the playlist's live edge), milliseconds. */
  readonly edgeMs: readonly number[];
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly maxMs: number;
  /** hls.js BUFFER_STALLED_ERROR events during the run. */
  readonly stalls: number;
  /** hls.js's own target latency at the end, seconds (PART-HOLD-BACK, raised by a second per stall). */
  readonly targetLatencyS: number | undefined;
  /** Height of the level playing at the end. */
  readonly height: number | undefined;
  /** Where the start-up went, from the page's resource timing; undefined when the page missed its first `playing`. */
  readonly startup: StartupBreakdown | undefined;
};

/**
 * The player's start-up, from its first HLS request (the master) to its first `playing` event:
 * hls.js's defaults never speed up, so this time stays in their latency for good.
 */
export type StartupBreakdown = {
  /** First HLS request to `playing`, ms. */
  readonly playingAfterMs: number;
  /** HLS requests started before `playing` (playlists, inits, parts). */
  readonly requests: number;
  /** Of those, the ones for media (inits, parts, segments). */
  readonly mediaRequests: number;
  /** Median time the server took to start answering a request it did not hold (all but blocking reloads), ms. */
  readonly serverP50Ms: number;
  /** Median time between the page asking for a resource and the browser sending the request, ms. */
  readonly queuedP50Ms: number;
};

/** Sampling period, milliseconds. */
export const SAMPLE_MS = 250;

/**
 * Waits until the master of `broadcast` lists `variants` variants and each of their playlists holds
 * a complete segment (hls.js stops with a fatal levelEmptyError on a variant without one).
 */
export async function waitForPlayable(
  serverUrl: string,
  broadcast: string,
  variants: number,
  timeoutMs = 60_000,
): Promise<void> {
  const base = `${serverUrl}/hls/${broadcast}/`;
  const text = async (uri: string) => {
    const res = await fetch(base + uri);
    return res.ok ? res.text() : '';
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const uris = (await text('master.m3u8')).split('\n').filter((l) => l.endsWith('.m3u8'));
    const ready = uris.length >= variants && (await Promise.all(uris.map(text))).every((p) => p.includes('#EXTINF'));
    if (ready) return;
    if (Date.now() > deadline)
      throw new Error(`${broadcast}: ${variants} playable variants did not come within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The page that plays `src` with hls.js's low-latency defaults, nothing else configured. */
function defaultsPage(src: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>hls.js defaults</title></head><body>
<video id="video" muted autoplay playsinline></video>
<script src="/assets/hls.min.js"></script>
<script>
  const hls = new Hls({ lowLatencyMode: true });
  window.__hls = hls;
  hls.on(Hls.Events.ERROR, (_e, data) => { if (data.fatal) window.__hlsFatal = data.details; });
  hls.on(Hls.Events.MANIFEST_PARSED, () => document.getElementById('video').play().catch(() => {}));
  hls.loadSource(${JSON.stringify(src)});
  hls.attachMedia(document.getElementById('video'));
</script></body></html>`;
}

/** Installs the sampler in the page: it waits for `window.__hls` and the first `playing` event. */
async function installSampler(page: Page): Promise<void> {
  await page.evaluate((periodMs) => {
    type Hls = {
      playingDate: Date | null;
      latency: number;
      targetLatency: number | null;
      on(event: string, fn: (e: unknown, data: { details?: string }) => void): void;
    };
    const w = window as unknown as {
      __hls?: Hls;
      __lat?: {
        samples: number[];
        edge: number[];
        stalls: number;
        started: boolean;
        playingAt?: number;
        hooked?: Hls;
      };
    };
    const state = {
      samples: [] as number[],
      edge: [] as number[],
      stalls: 0,
      started: false,
      playingAt: undefined as number | undefined,
      hooked: undefined as Hls | undefined,
    };
    w.__lat = state;
    const video = document.getElementById('video') as HTMLVideoElement;
    video.addEventListener('playing', () => {
      state.started = true;
      state.playingAt ??= performance.now();
    });
    if (!video.paused && video.readyState >= 3) state.started = true;
    setInterval(() => {
      const hls = w.__hls;
      if (hls === undefined) return;
      if (state.hooked !== hls) {
        state.hooked = hls;
        hls.on('hlsError', (_e, data) => {
          if (data.details === 'bufferStalledError') state.stalls += 1;
        });
      }
      const date = hls.playingDate;
      if (!state.started || date === null) return;
      state.samples.push(Date.now() - date.getTime());
      state.edge.push(Math.round(hls.latency * 1000));
    }, periodMs);
  }, SAMPLE_MS);
}

/**
 * Opens `player` on `serverUrl` for `broadcast`, waits for playback, samples the latency for
 * `seconds` of wall time and returns the figures. Throws on a fatal hls.js error or when playback
 * does not start within `startTimeoutMs`.
 */
export async function measureViewerLatency(
  page: Page,
  serverUrl: string,
  broadcast: string,
  player: LatencyPlayer,
  seconds: number,
  options: { startTimeoutMs?: number; log?: readonly string[] } = {},
): Promise<LatencyRun> {
  if (player === 'dashboard') {
    await page.goto(`${serverUrl}/`);
  } else {
    await showPage(page, serverUrl, defaultsPage(`/hls/${broadcast}/master.m3u8`));
  }
  await installSampler(page);
  const wanted = Math.round((seconds * 1000) / SAMPLE_MS);
  const startBy = Date.now() + (options.startTimeoutMs ?? 30_000);
  let deadline: number | undefined;
  for (;;) {
    const s = await page.evaluate(() => {
      const w = window as unknown as { __lat: { samples: number[]; started: boolean }; __hlsFatal?: string };
      return { count: w.__lat.samples.length, started: w.__lat.started, fatal: w.__hlsFatal };
    });
    if (s.fatal !== undefined) throw new Error(`${player}: hls.js fatal error ${s.fatal}`);
    if (s.count >= wanted) break;
    const now = Date.now();
    if (s.count > 0) deadline ??= now + seconds * 1000 * 2 + 5000;
    if (deadline === undefined && now > startBy) {
      throw new Error(`${player}: playback did not start (browser log:\n${(options.log ?? []).slice(-20).join('\n')})`);
    }
    if (deadline !== undefined && now > deadline) {
      throw new Error(`${player}: only ${s.count} of ${wanted} latency samples before the deadline`);
    }
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  const end = await page.evaluate(() => {
    const w = window as unknown as {
      __lat: { samples: number[]; edge: number[]; stalls: number; playingAt?: number };
      __hls: { targetLatency: number | null; currentLevel: number; levels: Array<{ height: number }> };
    };
    return {
      samples: w.__lat.samples.slice(),
      edge: w.__lat.edge.slice(),
      stalls: w.__lat.stalls,
      target: w.__hls.targetLatency,
      height: w.__hls.levels[w.__hls.currentLevel]?.height,
      playingAt: w.__lat.playingAt,
      resources: performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/hls/'))
        .map((e) => {
          const r = e as PerformanceResourceTiming;
          return { name: r.name, start: r.startTime, request: r.requestStart, response: r.responseStart };
        }),
    };
  });
  const samplesMs = end.samples.slice(0, wanted);
  return {
    player,
    samplesMs,
    edgeMs: end.edge.slice(0, wanted),
    p50Ms: percentile(samplesMs, 50) ?? Number.NaN,
    p95Ms: percentile(samplesMs, 95) ?? Number.NaN,
    maxMs: Math.max(...samplesMs),
    stalls: end.stalls,
    targetLatencyS: end.target ?? undefined,
    height: end.height,
    startup: startupBreakdown(end.playingAt, end.resources),
  };
}

/** The start-up figures from the page's resource timing (`performance.now()` times). */
function startupBreakdown(
  playingAt: number | undefined,
  resources: ReadonlyArray<{ name: string; start: number; request: number; response: number }>,
): StartupBreakdown | undefined {
  const first = resources.find((r) => r.name.includes('master.m3u8'));
  if (playingAt === undefined || first === undefined) return undefined;
  const before = resources.filter((r) => r.start >= first.start && r.start < playingAt);
  // requestStart is 0 where the browser withholds timing (never for same-origin); leave those out.
  const timed = before.filter((r) => r.request > 0 && r.response >= r.request);
  const answered = timed.filter((r) => !/[?&]_HLS_(msn|part)=/.test(r.name));
  return {
    playingAfterMs: Math.round(playingAt - first.start),
    requests: before.length,
    mediaRequests: before.filter((r) => !/\.m3u8(\?|$)/.test(r.name)).length,
    serverP50Ms: Math.round(
      percentile(
        answered.map((r) => r.response - r.request),
        50,
      ) ?? Number.NaN,
    ),
    queuedP50Ms: Math.round(
      percentile(
        timed.map((r) => r.request - r.start),
        50,
      ) ?? Number.NaN,
    ),
  };
}

/** One line per run: `player: p50 / p95 / max ms, stalls, target latency, level`. */
export function describeRun(run: LatencyRun): string {
  const target = run.targetLatencyS === undefined ? '-' : `${run.targetLatencyS.toFixed(2)} s`;
  return `${run.player}: p50 ${run.p50Ms} ms, p95 ${run.p95Ms} ms, max ${run.maxMs} ms over ${run.samplesMs.length} samples (hls.js's own, behind the playlist edge: p50 ${percentile(run.edgeMs, 50)} ms); ${run.stalls} stalls; hls.js target latency ${target}; playing ${run.height ?? '?'}p${run.startup === undefined ? '' : `; ${describeStartup(run.startup)}`}`;
}

/** `playing 720 ms after the master; 14 requests (9 media) before it; server p50 2 ms, browser queue p50 31 ms`. */
function describeStartup(s: StartupBreakdown): string {
  return `playing ${s.playingAfterMs} ms after the master request; ${s.requests} requests (${s.mediaRequests} media) before it; server answer p50 ${s.serverP50Ms} ms, browser queue p50 ${s.queuedP50Ms} ms`;
}
