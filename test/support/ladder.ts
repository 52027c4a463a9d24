/**
 * A harness for the software-ladder acceptance tests: real registry, runner, ladder, ingest and
 * WebCodecs (`@napi-rs/webcodecs`), with the codecs optionally wrapped to inject faults or slowness.
 * Every rung output (`<source>/<rendition>` track `0.mp4`) is collected from the moment it is
 * created until it ends, one session per init segment, so tests can judge it with ffprobe/ffmpeg.
 */

import type { Fragment, FragmentBroadcaster } from '../../src/fragment/index.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { IngestManager } from '../../src/ingest/index.ts';
import { createMetrics, type LvqrMetrics } from '../../src/metrics/index.ts';
import type { DecoderLike, EncodedChunk, EncoderConfig, EncoderLike, VideoCodecs } from '../../src/transcode/codecs.ts';
import {
  defaultLadder,
  type RenditionSpec,
  TranscodeRunner,
  type TranscodeRunnerHandle,
} from '../../src/transcode/index.ts';
import {
  SoftwareLadder,
  type SoftwareLadderOptions,
  SoftwareTranscoderFactory,
  type SourceLadderStatus,
} from '../../src/transcode/ladder/index.ts';
import { bindWebCodecs } from '../../src/transcode/webcodecs-binding.ts';
import { napiProvider } from '../../src/webcodecs/index.ts';
import { concat } from '../../testkit/fmp4.ts';
import {
  decodeErrors,
  type ProbedFrame,
  type ProbedPacket,
  probeFrames,
  probePackets,
  probeStreams,
} from './ffprobe.ts';
import { waitFor } from './wait.ts';

let base: Promise<VideoCodecs> | undefined;

/** The real codecs (software x264 through @napi-rs/webcodecs), loaded once per test file. */
export function realCodecs(): Promise<VideoCodecs> {
  base ??= napiProvider().then((p) => bindWebCodecs(p.codecs, { backend: 'software' }));
  return base;
}

/** One init segment of a rung output and the fragments published under it. */
export type OutputSession = {
  init: Uint8Array;
  codec: string;
  timescale: number;
  metaVersion: number;
  fragments: Fragment[];
  /** Wall-clock ms at which each fragment reached the collector. */
  receivedAtMs: number[];
};

/** Everything one rung output published, from creation to its end. */
export type CollectedOutput = {
  broadcast: string;
  rendition: string;
  broadcaster: FragmentBroadcaster;
  sessions: OutputSession[];
  lagged: number;
  ended: boolean;
  done: Promise<void>;
};

/** The file of one session: init + every fragment payload. */
export function sessionFile(session: OutputSession): Uint8Array {
  return concat([session.init, ...session.fragments.map((f) => f.payload)]);
}

/** Every fragment of an output, across sessions. */
export function allFragments(output: CollectedOutput): Fragment[] {
  return output.sessions.flatMap((s) => s.fragments);
}

/** Options of a harness. */
export type HarnessOptions = {
  /** The codecs under test (default: `realCodecs()`). */
  codecs?: VideoCodecs;
  /** Wraps the real codecs (fault injection, slow encoders). */
  wrap?: (codecs: VideoCodecs) => VideoCodecs;
  renditions?: RenditionSpec[];
  ladder?: Partial<Omit<SoftwareLadderOptions, 'registry' | 'codecs' | 'metrics'>>;
  /** Grace period of the ingest manager (default 50 ms). */
  graceMs?: number;
};

/** A running pipeline: ingest -> registry -> runner (software ladder) -> registry -> collectors. */
export type LadderHarness = {
  registry: FragmentBroadcasterRegistry;
  metrics: LvqrMetrics;
  ladder: SoftwareLadder;
  handle: TranscodeRunnerHandle;
  ingest: IngestManager;
  /** Outputs keyed `<source>/<rendition>`. */
  outputs: Map<string, CollectedOutput>;
  /** Names of every rendition output ever created (in creation order). */
  created: string[];
  /** Names of every rendition output removed (in removal order). */
  removed: string[];
  /** Every registry entry removed, any origin, in order (`<broadcast>:<track>`). */
  removedAll: string[];
  /** The last `ladder.sources()` status seen per source (sampled every few ms while running). */
  lastStatus: Map<string, SourceLadderStatus>;
  /** Every distinct `ladder.sources()` status seen per source, in order. */
  statusHistory: Map<string, SourceLadderStatus[]>;
  /** Largest rung queue (`queuedFrames`) seen per `<source>/<rendition>`. */
  maxQueued: Map<string, number>;
  /** Decoders created and closed (through the codecs the ladder uses). */
  decoders: { created: number; closed: number };
  /**
   * `decoders` less the renewals (`lvqr_transcode_decoder_renewals_total`): one per source session
   * and restart. A loaded machine can leave a rung 16 frames behind, and the decoder renewed after
   * that is a second decoder of the same session.
   */
  decoderSessions(): Promise<{ created: number; closed: number }>;
  /** Waits until every task of `broadcast` ended and every output of it was fully read. */
  settled(broadcast: string, timeoutMs?: number): Promise<void>;
  /** Value of a metric sample (summed over matching label sets). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
};

/** Builds a harness on the real codecs. */
export async function createHarness(options: HarnessOptions = {}): Promise<LadderHarness> {
  const real = options.codecs ?? (await realCodecs());
  const wrapped = options.wrap === undefined ? real : options.wrap(real);
  const decoders = { created: 0, closed: 0 };
  const codecs = wrapCodecs(wrapped, {
    decoder: (_config, make) => {
      const decoder = make();
      decoders.created += 1;
      let closed = false;
      return {
        decode: (sample) => decoder.decode(sample),
        flush: () => decoder.flush(),
        close() {
          if (!closed) decoders.closed += 1;
          closed = true;
          decoder.close();
        },
      };
    },
  });
  const registry = new FragmentBroadcasterRegistry();
  const metrics = createMetrics();
  const metric = (name: string, labels: Record<string, string> = {}): Promise<number> =>
    sumOf(metrics.registry, name, labels);
  const gc = (globalThis as { gc?: (o?: unknown) => void }).gc;
  const ladder = new SoftwareLadder({
    registry,
    codecs,
    metrics,
    ...(gc === undefined ? {} : { gc: () => gc({ type: 'minor' }) }),
    retryBaseMs: 50,
    // These tests judge every frame: overload shedding (tested on its own) stays off unless asked for.
    overload: false,
    ...options.ladder,
  });
  const handle = new TranscodeRunner({ metrics })
    .withLadder(options.renditions ?? defaultLadder(), (spec) => new SoftwareTranscoderFactory(spec, ladder))
    .install(registry);
  const outputs = new Map<string, CollectedOutput>();
  const created: string[] = [];
  const removed: string[] = [];
  const removedAll: string[] = [];
  registry.onEntryRemoved((broadcast, track, bc) => {
    removedAll.push(`${broadcast}:${track}`);
    if (bc.origin.kind === 'rendition' && track === '0.mp4') removed.push(broadcast);
  });
  const lastStatus = new Map<string, SourceLadderStatus>();
  const statusHistory = new Map<string, SourceLadderStatus[]>();
  const maxQueued = new Map<string, number>();
  const sample = (): void => {
    for (const s of ladder.sources()) {
      const { decodedFrames: _frames, ...rest } = s;
      const { decodedFrames: _last, ...previous } = lastStatus.get(s.broadcast) ?? { decodedFrames: 0 };
      if (JSON.stringify(rest) !== JSON.stringify(previous)) {
        statusHistory.set(s.broadcast, [...(statusHistory.get(s.broadcast) ?? []), s]);
      }
      lastStatus.set(s.broadcast, s);
    }
    for (const t of handle.stats()) {
      const key = `${t.broadcast}/${t.rendition}`;
      const queued = Number(t.transcoderStats?.['queuedFrames'] ?? 0);
      maxQueued.set(key, Math.max(maxQueued.get(key) ?? 0, queued));
    }
  };
  const sampler = setInterval(sample, 5);
  registry.onEntryCreated((broadcast, track, bc) => {
    if (bc.origin.kind !== 'rendition' || track !== '0.mp4') return;
    created.push(broadcast);
    const sub = bc.subscribe({ capacity: 1_000_000, maxBytes: 2 ** 31 });
    const output: CollectedOutput = {
      broadcast,
      rendition: bc.origin.rendition,
      broadcaster: bc,
      sessions: [],
      lagged: 0,
      ended: false,
      done: Promise.resolve(),
    };
    output.done = (async () => {
      let version = -1;
      for (;;) {
        const f = await sub.next();
        if (f === undefined) break;
        if (sub.metaVersion !== version || output.sessions.length === 0) {
          version = sub.metaVersion;
          const meta = sub.meta;
          if (meta.initSegment === undefined) throw new Error(`${broadcast}: fragment before an init segment`);
          output.sessions.push({
            init: meta.initSegment,
            codec: meta.codec,
            timescale: meta.timescale,
            metaVersion: version,
            fragments: [],
            receivedAtMs: [],
          });
        }
        const session = output.sessions.at(-1)!;
        session.fragments.push(f);
        session.receivedAtMs.push(Date.now());
      }
      output.lagged = sub.lagged;
      output.ended = true;
    })();
    // A previous output of the same name (a re-planned rung) keeps its own entry under a suffix.
    const key = outputs.has(broadcast) ? `${broadcast}#${created.filter((c) => c === broadcast).length}` : broadcast;
    outputs.set(key, output);
  });
  const ingest = new IngestManager({ registry, graceMs: options.graceMs ?? 50, idleTimeoutMs: 0 });
  return {
    registry,
    metrics,
    ladder,
    handle,
    ingest,
    outputs,
    created,
    removed,
    removedAll,
    lastStatus,
    statusHistory,
    maxQueued,
    decoders,
    async settled(broadcast, timeoutMs = 30_000) {
      await waitFor(
        () => {
          const tasks = handle.stats().filter((t) => t.broadcast === broadcast);
          return tasks.length > 0 && tasks.every((t) => t.endedAtMs !== undefined) && ingestGone(ingest, broadcast);
        },
        `every transcode task of ${broadcast} to end`,
        { timeoutMs, intervalMs: 10 },
      );
      const mine = [...outputs.values()].filter((o) => o.broadcast.startsWith(`${broadcast}/`));
      await Promise.all(mine.map((o) => o.done));
    },
    async decoderSessions() {
      const renewals = await metric('lvqr_transcode_decoder_renewals_total');
      return { created: decoders.created - renewals, closed: decoders.closed - renewals };
    },
    metric,
    async close() {
      clearInterval(sampler);
      ingest.close();
      await handle.close();
    },
  };
}

/** Sum of a metric's samples whose labels include `labels`. */
async function sumOf(registry: LvqrMetrics['registry'], name: string, labels: Record<string, string>): Promise<number> {
  const json = await registry.getMetricsAsJSON();
  const m = json.find((x) => x.name === name);
  if (m === undefined) return 0;
  let sum = 0;
  for (const v of m.values as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
  }
  return sum;
}

function ingestGone(ingest: IngestManager, broadcast: string): boolean {
  return !ingest.list().some((i) => i.broadcast === broadcast);
}

/** Options of `publish`. */
export type PublishOptions = {
  /** Media duration of the bytes, seconds (pacing); 0 = as fast as possible. */
  durationS: number;
  /** Playback speed relative to real time (default 1). */
  speed?: number;
  /** Number of chunks the bytes are cut into (default 120, as ffmpeg's chunked POST). */
  chunks?: number;
  /** How the connection ends afterwards (default `eof`; `none` leaves it open). */
  end?: 'eof' | 'disconnect' | 'none';
  /** Stops publishing once aborted: the rest of the bytes are not sent, the connection ends as `end` says. */
  until?: AbortSignal;
};

/**
 * Publishes `files` one after the other on ONE connection (a new init mid-stream when more than
 * one), paced so the bytes of each file arrive over its media duration (as `ffmpeg -re`).
 */
export async function publish(
  ingest: IngestManager,
  broadcast: string,
  files: Array<{ bytes: Uint8Array; durationS: number }>,
  options: Omit<PublishOptions, 'durationS'> = {},
): Promise<void> {
  const connection = ingest.open(broadcast, 'http');
  const speed = options.speed ?? 1;
  const chunks = options.chunks ?? 120;
  const started = Date.now();
  let mediaOffsetS = 0;
  for (const file of files) {
    const size = Math.ceil(file.bytes.length / chunks);
    for (let i = 0, at = 0; at < file.bytes.length; i++, at += size) {
      const dueMs = started + ((mediaOffsetS + (file.durationS * i) / chunks) * 1000) / speed;
      const waitMs = dueMs - Date.now();
      if (file.durationS > 0 && waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      // A harness closed under a failing test ends the connection: stop publishing, quietly.
      if (connection.ended) return;
      if (options.until?.aborted) break;
      connection.push(file.bytes.subarray(at, Math.min(file.bytes.length, at + size)));
    }
    mediaOffsetS += file.durationS;
    if (options.until?.aborted) break;
  }
  const tailMs = started + (mediaOffsetS * 1000) / speed - Date.now();
  if (tailMs > 0 && options.until?.aborted !== true) await new Promise((resolve) => setTimeout(resolve, tailMs));
  const end = options.end ?? 'eof';
  if (end !== 'none') connection.end(end);
}

/** What ffprobe/ffmpeg say about one rung file. */
export type JudgedOutput = {
  width: number | undefined;
  height: number | undefined;
  codecName: string;
  codecTag: string;
  profile: string | undefined;
  level: number | undefined;
  timescale: number;
  frames: ProbedFrame[];
  packets: ProbedPacket[];
  decodeErrors: string[];
};

/** Probes a rung file with ffprobe/ffmpeg. */
export async function judge(file: Uint8Array): Promise<JudgedOutput> {
  const [streams, frames, packets, errors] = await Promise.all([
    probeStreams(file),
    probeFrames(file),
    probePackets(file),
    decodeErrors(file),
  ]);
  const v = streams.find((s) => s.codecType === 'video');
  if (v === undefined) throw new Error('no video stream in the rung output');
  return {
    width: v.width,
    height: v.height,
    codecName: v.codecName,
    codecTag: v.codecTag,
    profile: v.profile,
    level: v.level,
    timescale: v.timescale,
    frames,
    packets,
    decodeErrors: errors,
  };
}

/** H.264 profile names as ffprobe prints them -> profile_idc. */
export const PROFILE_IDC: Record<string, number> = {
  Baseline: 66,
  'Constrained Baseline': 66,
  Main: 77,
  Extended: 88,
  High: 100,
  'High 10': 110,
  'High 4:2:2': 122,
  'High 4:4:4 Predictive': 244,
};

/** The `avc1.PPCCLL` string's profile and level as numbers. */
export function parseAvcCodec(codec: string): { profileIdc: number; constraints: number; levelIdc: number } {
  const m = /^avc[13]\.([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})$/.exec(codec);
  if (m === null) throw new Error(`not an avc1 codec string: ${codec}`);
  return { profileIdc: parseInt(m[1]!, 16), constraints: parseInt(m[2]!, 16), levelIdc: parseInt(m[3]!, 16) };
}

/** Video elementary-stream bitrate (sum of sample sizes) over [fromPts, end), bits per second. */
export function esBitrate(packets: readonly ProbedPacket[], timescale: number, fromPts = -Infinity): number {
  const sorted = [...packets].filter((p) => p.pts >= fromPts).sort((a, b) => a.pts - b.pts);
  if (sorted.length < 2) return 0;
  const last = sorted.at(-1)!;
  const lastDuration = last.duration ?? last.pts - sorted.at(-2)!.pts;
  const spanS = (last.pts + lastDuration - sorted[0]!.pts) / timescale;
  const bytes = sorted.reduce((a, p) => a + p.size, 0);
  return (bytes * 8) / spanS;
}

/** A `VideoCodecs` that forwards to `inner` except where `overrides` says otherwise. */
export function wrapCodecs(
  inner: VideoCodecs,
  overrides: {
    decoder?: (
      config: Parameters<VideoCodecs['createDecoder']>[0],
      make: () => DecoderLike,
      onError: (error: unknown) => void,
    ) => DecoderLike;
    encoder?: (config: EncoderConfig, make: () => EncoderLike, onError: (error: unknown) => void) => EncoderLike;
  },
): VideoCodecs {
  return {
    backend: inner.backend,
    // The frame scaler (when the inner codecs have one) scales for every rung, as in the service.
    ...(inner.createScaler === undefined ? {} : { createScaler: inner.createScaler }),
    createDecoder(config, onFrame, onError) {
      const make = (): DecoderLike => inner.createDecoder(config, onFrame, onError);
      return overrides.decoder === undefined ? make() : overrides.decoder(config, make, onError);
    },
    createEncoder(config, onChunk: (chunk: EncodedChunk) => void, onError) {
      const make = (): EncoderLike => inner.createEncoder(config, onChunk, onError);
      return overrides.encoder === undefined ? make() : overrides.encoder(config, make, onError);
    },
  };
}

/**
 * Codecs whose encoders wait `delayMs(frame)` ms before encoding (`frame` counts each encoder
 * session's frames from 0; 0 ms: no wait): slow encoders for the overload tests.
 */
export function slowEncoders(inner: VideoCodecs, delayMs: (frame: number) => number): VideoCodecs {
  return wrapCodecs(inner, {
    encoder: (_config, make) => {
      const encoder = make();
      let frames = 0;
      return {
        encode: async (frame, options) => {
          const ms = delayMs(frames);
          frames += 1;
          if (ms > 0) await new Promise<void>((resolve) => setTimeout(resolve, ms));
          return encoder.encode(frame, options);
        },
        flush: () => encoder.flush(),
        close: () => encoder.close(),
      };
    },
  });
}

/** Codecs of `encoderFailingOnce` and the count of frames given to the failing rung's encoders. */
export type FailingOnceCodecs = { codecs: VideoCodecs; encodes(): number };

/**
 * Codecs whose encoders of `height`-line rungs throw `injected encoder fault` once, at the `at`-th
 * frame given to them (counted over every encoder session of that height).
 */
export function encoderFailingOnce(inner: VideoCodecs, height: number, at: number): FailingOnceCodecs {
  let encodes = 0;
  const codecs = wrapCodecs(inner, {
    encoder: (config, make) => {
      const encoder = make();
      if (config.height !== height) return encoder;
      return {
        encode(frame, options) {
          encodes += 1;
          if (encodes === at) throw new Error('injected encoder fault');
          return encoder.encode(frame, options);
        },
        flush: () => encoder.flush(),
        close: () => encoder.close(),
      };
    },
  });
  return { codecs, encodes: () => encodes };
}
