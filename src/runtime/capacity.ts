/**
 * `lvqr-transcode bench`: the capacity self-test. Encodes a short synthetic 720p30 or 1080p30 clip
 * once (capacity-clip.ts), then for 1, 2, 3, ... live sources starts the real service (default
 * settings, overload policy on) on a free loopback port and publishes the clip to it as a real
 * publisher would: one streamed HTTP POST per source, the init segment, then one `moof`+`mdat` per
 * frame, each frame sent at its time (`ffmpeg -re ... -movflags +frag_every_frame`). The service's
 * own figures (`/api/v1/transcode`, `/metrics`) decide each step: sustained with no dropped frame
 * in any rung, no overload action, every rung's latency p99 (arrival at ingest to rung fragment,
 * over every frame of the step) at most 250 ms, and every rung's frames out 0.5 s after the last
 * one sent, but for those of the last half second. The test stops at the first step not sustained.
 *
 * Each step is also judged without the first GOP (latency counted from 2.5 s on: start-up left
 * out, everything else the same), as a second figure; the test runs on while either holds.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { silentLogger } from '../core/log.ts';
import { parseServe, type ScalerMode, type TranscodeBackend } from '../server/config.ts';
import { type RuntimeHost, startService } from '../server/main.ts';
import type { RenditionSpec } from '../transcode/rendition.ts';
import { napiProvider } from '../webcodecs/index.ts';
import {
  type CapacityClip,
  type CapacitySource,
  CLIP_FPS,
  CLIP_GOP,
  clipFragment,
  describeClip,
  makeClip,
} from './capacity-clip.ts';
import { streamedPostInit } from './publish.ts';

/** Latency p99 a sustained step stays within, ms. */
export const CAPACITY_LATENCY_P99_MS = 250;
/**
 * How long after the last frame sent a rung has to put out its frames, ms, and what it may still
 * hold then: the frames of the last half second (a live pipeline holds a frame or two until the
 * next arrives).
 */
const IN_FLIGHT_MS = 500;
const IN_FLIGHT_FRAMES = CLIP_FPS / 2;
const POLL_MS = 25;
/** Frames after which latency counts for the second figure: the first GOP and half a second. */
export const WARM_FRAMES = CLIP_GOP + CLIP_FPS / 2;

/** One concurrency level's outcome. */
export type CapacityStep = {
  sources: number;
  sustained: boolean;
  /** Source frames the rungs did not encode (queue overflow, shed or paused GOPs, lost or skipped fragments). */
  droppedFrames: number;
  /** Overload policy steps that took load off (shed, pause). */
  overloadActions: number;
  /** Worst rung's latency p99 over its last 600 frames (the whole step up to 20 s), ms. */
  latencyP99Ms: number;
  /** That rung's rendition. */
  latencyRung: string;
  /** Worst rung's share of frames later than `CAPACITY_LATENCY_P99_MS` over the whole step. */
  lateShare: number;
  /** Sustained when latency counts from 2.5 s on (undefined for steps that short). */
  sustainedAfterFirstGop: boolean | undefined;
  /** Frames out of every rung / frames sent times rungs, up to 0.5 s after the last frame sent. */
  realtimeFactor: number;
  /** `moof`+`mdat` fragments the service's ingest counted, all sources. */
  fragmentsIngested: number;
  /** CPU of this process (service and publishers) over the step, % of one core. */
  cpuPercent: number;
  /**
   * The server thread's event-loop delay p99 while the sources were sent, ms: how long an HTTP
   * request (a playlist, a part, an ingest chunk) waited behind other work. Undefined where the
   * runtime cannot measure it.
   */
  loopDelayP99Ms: number | undefined;
  /** Why a publisher's POST failed, if one did. */
  error?: string;
};

/** The self-test's result. */
export type CapacityResult = {
  maxSources: number;
  /** Sources sustained when latency counts from 2.5 s on (each source's first GOP left out). */
  maxSourcesAfterFirstGop: number;
  steps: CapacityStep[];
  ladder: string;
  /** `1920x1080 30 fps, 7 Mb/s` */
  clipLabel: string;
  clip: CapacityClip;
};

/** Options of `measureCapacity`. */
export type CapacityOptions = {
  /** The runtime whose HTTP server and codecs the service runs on. */
  host: RuntimeHost;
  ladder: RenditionSpec[];
  source: CapacitySource;
  maxSources: number;
  seconds: number;
  /** Who scales the rungs (the service's `--transcode-scaler`; default its default, `encoder`). */
  scaler?: ScalerMode;
  /** The codec backend (the service's `--transcode-backend`; default its default, `auto`). */
  backend?: TranscodeBackend;
  onProgress?: (fraction: number, label: string) => void;
};

type RungFigures = {
  rendition?: string;
  framesOut?: number;
  droppedFrames?: number;
  /** Source fragments (here one a frame) the rung's task lost behind the registry, or skipped while backing off. */
  lagged?: number;
  skipped?: number;
  latencyMsP99?: number;
};
type TranscodeJson = { sources?: Array<{ broadcast: string; plan?: unknown[]; rungs?: RungFigures[] }> };

/** Runs the self-test. */
export async function measureCapacity(options: CapacityOptions): Promise<CapacityResult> {
  const provider = await napiProvider();
  // Two GOPs, looped: enough not to repeat within a GOP, quick to encode.
  const clip = await makeClip(provider.codecs, options.source, Math.min(2 * CLIP_GOP, options.seconds * CLIP_FPS));
  const steps: CapacityStep[] = [];
  let maxSources = 0;
  let maxSourcesAfterFirstGop = 0;
  for (let n = 1; n <= options.maxSources; n++) {
    const step = await runStep(n, clip, options);
    steps.push(step);
    if (step.sustained && maxSources === n - 1) maxSources = n;
    if (step.sustainedAfterFirstGop === true && maxSourcesAfterFirstGop === n - 1) maxSourcesAfterFirstGop = n;
    if (maxSources < n && maxSourcesAfterFirstGop < n) break;
  }
  options.onProgress?.(1, 'done');
  return {
    maxSources,
    maxSourcesAfterFirstGop,
    steps,
    ladder: options.ladder.map((r) => r.name).join(','),
    clipLabel: describeClip(clip),
    clip,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One step: a fresh service, `n` paced publishers, the service's figures at the end. */
async function runStep(n: number, clip: CapacityClip, options: CapacityOptions): Promise<CapacityStep> {
  const { host } = options;
  const parsed = parseServe(
    ['--port', '0', '--host', '127.0.0.1', '--test-pattern', 'off', '--log-level', 'error'],
    {},
    host.readFile,
  );
  const config = {
    ...parsed,
    ladder: options.ladder,
    ...(options.scaler === undefined ? {} : { scaler: options.scaler }),
    ...(options.backend === undefined ? {} : { transcodeBackend: options.backend }),
    maxPublishersPerClient: Math.max(parsed.maxPublishersPerClient, n),
  };
  const started = await startService(host, config, silentLogger);
  const base = `http://127.0.0.1:${started.listener.port}`;
  try {
    const total = Math.round(options.seconds * CLIP_FPS);
    const controllers: Array<ReadableStreamDefaultController<Uint8Array>> = [];
    const answers = Array.from({ length: n }, (_, i) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controllers.push(controller);
          controller.enqueue(clip.init);
        },
      });
      return fetch(`${base}/ingest/capacity/${i}`, streamedPostInit(body)).then(async (response) => {
        const text = await response.text();
        if (!response.ok) throw new Error(`source ${i}: ${response.status} ${text}`);
        return Number((JSON.parse(text) as { fragments?: number }).fragments ?? 0);
      });
    });
    // A publisher refused early must not leave the others' answers unobserved.
    const settled = Promise.allSettled(answers);
    const label = `${n} source${n > 1 ? 's' : ''}`;
    const cpuStart = process.cpuUsage();
    const loopDelay = monitorLoopDelay();
    const t0 = performance.now();
    let warm: Promise<string> | undefined;
    for (let i = 0; i < total; i++) {
      const wait = t0 + (i * 1000) / CLIP_FPS - performance.now();
      if (wait > 0) await sleep(wait);
      if (i === WARM_FRAMES) warm = fetch(`${base}/metrics`).then((r) => r.text());
      const fragment = clipFragment(clip, i);
      for (const c of controllers) quietly(() => c.enqueue(fragment));
      if (i % 15 === 0) options.onProgress?.((n - 1 + i / total) / options.maxSources, label);
    }
    const lastSentMs = performance.now();
    const loopDelayP99Ms = loopDelay?.();
    let transcode = await getJson<TranscodeJson>(`${base}/api/v1/transcode`);
    while (!allOut(transcode, n, options.ladder.length, total) && performance.now() - lastSentMs < IN_FLIGHT_MS) {
      await sleep(POLL_MS);
      transcode = await getJson<TranscodeJson>(`${base}/api/v1/transcode`);
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const complete = allOut(transcode, n, options.ladder.length, total - IN_FLIGHT_FRAMES);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const c of controllers) quietly(() => c.close());
    const results = await settled;
    const failed = results.find((r) => r.status === 'rejected');
    const rungs = (transcode.sources ?? []).flatMap((s) => s.rungs ?? []);
    const droppedFrames = rungs.reduce((a, r) => a + (r.droppedFrames ?? 0) + (r.lagged ?? 0) + (r.skipped ?? 0), 0);
    const framesOut = rungs.reduce((a, r) => a + Math.min(total, r.framesOut ?? 0), 0);
    const worst = rungs.reduce<RungFigures | undefined>(
      (a, r) => ((r.latencyMsP99 ?? 0) > (a?.latencyMsP99 ?? -1) ? r : a),
      undefined,
    );
    const overloadActions = overloadSteps(metrics);
    const lateShare = lateShareOf(metrics);
    const warmMetrics = await warm;
    const lateAfterFirstGop = warmMetrics === undefined ? undefined : lateShareOf(metrics, warmMetrics);
    const step: CapacityStep = {
      sources: n,
      sustained: false,
      droppedFrames,
      overloadActions,
      latencyP99Ms: worst?.latencyMsP99 ?? 0,
      latencyRung: worst?.rendition ?? '-',
      lateShare,
      sustainedAfterFirstGop: undefined,
      realtimeFactor: Math.floor((framesOut / Math.max(1, total * n * options.ladder.length)) * 100) / 100,
      fragmentsIngested: results.reduce((a, r) => a + (r.status === 'fulfilled' ? r.value : 0), 0),
      cpuPercent: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 100),
      loopDelayP99Ms,
      ...(failed?.status === 'rejected' ? { error: String(failed.reason) } : {}),
    };
    const rest = failed === undefined && complete && droppedFrames === 0 && overloadActions === 0;
    step.sustained = rest && lateShare <= 0.01;
    step.sustainedAfterFirstGop = lateAfterFirstGop === undefined ? undefined : rest && lateAfterFirstGop <= 0.01;
    return step;
  } finally {
    await started.stop();
  }
}

/** Starts sampling this thread's event-loop delay; the returned function stops and gives its p99, ms. */
function monitorLoopDelay(): (() => number) | undefined {
  try {
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    histogram.enable();
    return () => {
      histogram.disable();
      return Math.round(histogram.percentile(99) / 1e5) / 10;
    };
  } catch {
    return undefined;
  }
}

/** Runs `f`; a body the server already refused (its stream cancelled) throws, and its answer says why. */
function quietly(f: () => void): void {
  try {
    f();
  } catch {}
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  return (await response.json()) as T;
}

/** Whether each of the `n` sources has its `rungs` rungs, each with at least `total` frames out. */
function allOut(json: TranscodeJson, n: number, rungs: number, total: number): boolean {
  const sources = json.sources ?? [];
  return (
    sources.length === n &&
    sources.every((s) => (s.rungs ?? []).length === rungs && (s.rungs ?? []).every((r) => (r.framesOut ?? 0) >= total))
  );
}

/** Prometheus samples of `name`: labels and value. */
function samples(metrics: string, name: string): Array<{ labels: string; value: number }> {
  const out: Array<{ labels: string; value: number }> = [];
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const end = line.lastIndexOf('}');
    out.push({ labels: line.slice(name.length + 1, end), value: Number(line.slice(end + 1).trim()) });
  }
  return out;
}

/** Overload policy steps that took load off a rung (`shed`, `pause`). */
function overloadSteps(metrics: string): number {
  return samples(metrics, 'lvqr_transcode_overload_actions_total')
    .filter((s) => /action="(shed|pause)"/.test(s.labels))
    .reduce((a, s) => a + s.value, 0);
}

/** Per rendition: frames within `CAPACITY_LATENCY_P99_MS`, and all frames (the latency histogram). */
function latencyCounts(metrics: string): Map<string, { inTime: number; all: number }> {
  const bound = `le="${CAPACITY_LATENCY_P99_MS / 1000}"`;
  const rendition = (labels: string) => /rendition="([^"]*)"/.exec(labels)?.[1] ?? '';
  const counts = new Map<string, { inTime: number; all: number }>();
  const entry = (name: string) => {
    const e = counts.get(name) ?? { inTime: 0, all: 0 };
    counts.set(name, e);
    return e;
  };
  for (const s of samples(metrics, 'lvqr_transcode_latency_seconds_bucket')) {
    if (s.labels.includes(bound)) entry(rendition(s.labels)).inTime = s.value;
  }
  for (const s of samples(metrics, 'lvqr_transcode_latency_seconds_count')) entry(rendition(s.labels)).all = s.value;
  return counts;
}

/**
 * The worst rendition's share of frames later than `CAPACITY_LATENCY_P99_MS` in `metrics` (every
 * frame since the service started; 0.25 s is one of the histogram's bucket bounds), or of those
 * since the earlier scrape `since`.
 */
function lateShareOf(metrics: string, since?: string): number {
  const before = since === undefined ? new Map() : latencyCounts(since);
  let worst = 0;
  for (const [name, now] of latencyCounts(metrics)) {
    const then = before.get(name) ?? { inTime: 0, all: 0 };
    const all = now.all - then.all;
    if (all > 0) worst = Math.max(worst, 1 - (now.inTime - then.inTime) / all);
  }
  return worst;
}
