/**
 * `SoftwareTranscoderFactory`: the H.264 ladder. All rungs of one source share ONE decoder
 * (reference-counted: created by the first rung, closed by the last); each rung owns one encoder.
 *
 * Pipeline per source: every rung's drain task submits the source fragments it reads; the first
 * submission of a fragment decodes it (later ones are no-ops), and each decoded frame is handed to
 * every rung (a cheap clone). Each rung encodes its frames in order and publishes one CMAF
 * fragment per encoded frame to `<source>/<rendition>` track `0.mp4`.
 *
 * Output rules: rung keyframes are forced exactly at the source keyframes, plus a fixed cadence of
 * the source timeline when the source GOP is longer than the segment target (decided once per
 * frame, so identical in every rung); timestamps are the source's, in the source timescale.
 * Encoder frame rate: the init's, else the median source sample duration (rate control budgets
 * bits per frame from it, so a wrong rate misses the bitrate by the same factor).
 *
 * Source format changes: the decoder puts a switch marker into every rung queue exactly between
 * the last frame of the old init and the first of the new one; at the marker a rung finishes its
 * encoder session (publishing its tail under the old plan), re-plans, and starts a new session
 * with a new init (a discontinuity downstream), or ends its output when the new source is too
 * small for it.
 *
 * Back-pressure: a rung's `onFragment` waits while its frame queue is above half its bound; a rung
 * whose queue reaches the bound drops whole GOPs (resumes at the next forced keyframe) and counts
 * them. A failing encoder is closed and rebuilt with exponential backoff; other rungs never notice.
 */

import {
  avcCodecString,
  buildMediaSegment,
  buildVideoInitSegment,
  describeInit,
  readSamples,
} from '../container/index.ts';
import { errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import { type Fragment, FragmentFlags, type FragmentMeta, VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import type { DecoderLike, EncodedChunk, EncoderLike, VideoCodecs, VideoFrameLike } from './codecs.ts';
import { type PlannedRung, planRung, type SourceVideo } from './ladder.ts';
import { OverloadGovernor, type OverloadOptions, type RungLoadState } from './overload.ts';
import type { RenditionSpec } from './rendition.ts';
import type { Transcoder, TranscoderContext, TranscoderFactory, TranscoderStats } from './transcoder.ts';

const NAME = 'software';
const DECODABLE = /^(avc1|avc3)\./;

/** Options shared by every rung of a software ladder. */
export type SoftwareLadderOptions = {
  /** Where outputs are published (the registry the runner is installed on). */
  registry: FragmentBroadcasterRegistry;
  /** Decoder and encoder factory. */
  codecs: VideoCodecs;
  metrics?: LvqrMetrics;
  logger?: Logger;
  /** Called every `gcEveryFrames` decoded frames: native frame memory is freed only on GC. */
  gc?: () => void;
  gcEveryFrames?: number;
  /**
   * A full collection, run when a source's decoder closes: the addon's frame and codec memory
   * survives minor collections, and a finished session is the moment to give it back.
   */
  gcFull?: () => void;
  /** Segment target: forced-keyframe cadence when the source GOP is longer (default 2000 ms). */
  segmentTargetMs?: number;
  /** A rung's frame-queue bound; at the bound it drops whole GOPs (default 60 frames). */
  maxQueuedFrames?: number;
  /**
   * `drop` (live, default): a rung that falls behind drops whole GOPs and the others go on.
   * `wait` (offline, benchmarks): the shared decoder waits for the slowest rung; nothing is dropped.
   */
  overflow?: 'drop' | 'wait';
  /**
   * The overload policy (see overload.ts): tunables, or `false` to turn it off. On by default in
   * `drop` mode; never active in `wait` mode (nothing is dropped there).
   */
  overload?: Partial<OverloadOptions> | false;
  /** First retry delay after an encoder or decoder failure (doubles up to `retryMaxMs`). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  now?: () => number;
};

/** Per-source ladder status for the API. */
export type SourceLadderStatus = {
  broadcast: string;
  codec: string;
  width: number | undefined;
  height: number | undefined;
  frameRate: number | undefined;
  decoderState: 'running' | 'failed' | 'unsupported';
  reason: string | undefined;
  decodedFrames: number;
  restarts: number;
  lastError: string | undefined;
  rungs: string[];
  /** Rungs left out for this source, and why (e.g. no upscaling). */
  skipped: Array<{ rendition: string; reason: string }>;
};

type FrameMeta = {
  /** Ticks of `timescale` (the source's, at the time the frame was decoded). */
  pts: number;
  duration: number;
  timescale: number;
  ingestTimeMs: number;
  /**
   * When a realtime pipeline would reach this frame: its arrival plus its offset inside its source
   * fragment (a fragment holding a whole GOP brings seconds of frames at once). 0 when unknown.
   */
  dueMs: number;
  sourceKey: boolean;
  forceKey: boolean;
};

/** What a rung needs to re-plan at a source format change. */
type SourceFormat = { generation: number; video: SourceVideo };

/** Sample durations needed before the median is trusted as the source frame rate. */
const FRAME_RATE_SAMPLES = 3;
/** Longest a new encoder session waits for that many samples, ms. */
const FRAME_RATE_WAIT_MS = 250;

function ticksToUs(ticks: number, timescale: number): number {
  return Math.round((ticks * 1_000_000) / timescale);
}

function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Shared state of one ladder: the per-source decoders and their status. */
export class SoftwareLadder {
  readonly options: Required<Omit<SoftwareLadderOptions, 'metrics' | 'gc' | 'gcFull'>> &
    Pick<SoftwareLadderOptions, 'metrics' | 'gc' | 'gcFull'>;
  /** The current decoder per source name, with the session token of the entry it serves. */
  readonly #sources = new Map<string, { token: object; source: SourceDecoder }>();
  /** Every decoder not yet closed (a restarted source may overlap its predecessor briefly). */
  readonly #live = new Set<SourceDecoder>();
  readonly #sessions = new Map<string, { meta: FragmentMeta; token: object }>();
  readonly #unsupported = new Map<string, SourceLadderStatus>();
  /** Rendition names in the order their factories were built: the overload policy's priority. */
  readonly #ranks: string[] = [];

  /** Creates the shared state; build one `SoftwareTranscoderFactory` per rung on it. */
  constructor(options: SoftwareLadderOptions) {
    this.options = {
      logger: silentLogger,
      gcEveryFrames: 30,
      segmentTargetMs: 2000,
      maxQueuedFrames: 60,
      overflow: 'drop',
      overload: {},
      retryBaseMs: 250,
      retryMaxMs: 8000,
      now: Date.now,
      ...options,
    };
  }

  /** @internal Registers a rung's rendition; earlier ones rank higher (shed last). */
  _rank(rendition: string): void {
    if (!this.#ranks.includes(rendition)) this.#ranks.push(rendition);
  }

  /** @internal Priority of a rendition: 0 is the most important. */
  _priority(rendition: string): number {
    const at = this.#ranks.indexOf(rendition);
    return at === -1 ? this.#ranks.length : at;
  }

  /** Whether the overload policy paused `rendition` of `source` (such a rung is left out of the master). */
  isRungPaused(source: string, rendition: string): boolean {
    return this.#sources.get(source)?.source.loadState(rendition) === 'paused';
  }

  /** Status of every source being decoded (or refused). */
  sources(): SourceLadderStatus[] {
    return [...[...this.#live].map((s) => s.status()), ...this.#unsupported.values()];
  }

  /**
   * @internal The session token of a source entry. Every factory builds its transcoder for a new
   * registry entry in one synchronous pass with the same `meta` object, so equal meta = same entry;
   * a restarted source (a new entry under the same name) gets a new token, hence its own decoder.
   */
  _session(broadcast: string, meta: FragmentMeta): object {
    const last = this.#sessions.get(broadcast);
    if (last !== undefined && last.meta === meta) return last.token;
    const token = {};
    this.#sessions.delete(broadcast);
    this.#sessions.set(broadcast, { meta, token });
    while (this.#sessions.size > 1024) this.#sessions.delete(this.#sessions.keys().next().value!);
    return token;
  }

  /** @internal The decoder of `broadcast` for session `token`, created on first use. */
  _acquire(broadcast: string, token: object, meta: FragmentMeta, rung: SoftwareTranscoder): SourceDecoder {
    let entry = this.#sources.get(broadcast);
    if (entry === undefined || entry.token !== token) {
      // A new session never shares a decoder with the (possibly still finishing) previous one.
      entry = { token, source: new SourceDecoder(this, broadcast, meta) };
      this.#sources.set(broadcast, entry);
      this.#live.add(entry.source);
    }
    entry.source.attach(rung);
    return entry.source;
  }

  /** @internal Drops a rung; the last one closes the decoder. */
  _release(broadcast: string, source: SourceDecoder, rung: SoftwareTranscoder): void {
    if (source.detach(rung) > 0) return;
    const entry = this.#sources.get(broadcast);
    if (entry?.source === source) {
      this.#sources.delete(broadcast);
      if (this.#sessions.get(broadcast)?.token === entry.token) this.#sessions.delete(broadcast);
    }
    this.#live.delete(source);
    source.close();
    this.options.gcFull?.();
  }

  /** @internal Records a source that cannot be decoded, so the API can say why it has no rungs. */
  _refuse(broadcast: string, codec: string, reason: string): void {
    this.#unsupported.set(broadcast, {
      broadcast,
      codec,
      width: undefined,
      height: undefined,
      frameRate: undefined,
      decoderState: 'unsupported',
      reason,
      decodedFrames: 0,
      restarts: 0,
      lastError: undefined,
      rungs: [],
      skipped: [],
    });
    while (this.#unsupported.size > 64) this.#unsupported.delete(this.#unsupported.keys().next().value!);
  }

  /** @internal */
  _clearRefusal(broadcast: string): void {
    this.#unsupported.delete(broadcast);
  }
}

/** The one decoder of a source, shared by its rungs. */
class SourceDecoder {
  readonly broadcast: string;
  readonly #ladder: SoftwareLadder;
  readonly #rungs = new Set<SoftwareTranscoder>();
  #init: Uint8Array | undefined;
  #timescale = 90_000;
  #codec = '';
  #video: SourceVideo = { width: 0, height: 0 };
  #description: Uint8Array | undefined;
  #decoder: DecoderLike | undefined;
  #chain: Promise<void> = Promise.resolve();
  #lastSubmittedDts = -Infinity;
  #expectedDts: number | undefined;
  #needKeyframe = true;
  #decodedSinceFlush = false;
  #pending = new Map<number, FrameMeta>();
  #lastForcedPts: number | undefined;
  #decodedFrames = 0;
  #restarts = 0;
  #failures = 0;
  #retryAtMs = 0;
  #lastError: string | undefined;
  #state: 'running' | 'failed' = 'running';
  #finishing: Promise<void> | undefined;
  #closed = false;
  #generation = 0;
  /** Recent sample durations (ticks) of the current init, for the frame-rate estimate. */
  #durations: number[] = [];
  #frameRateWaiters: Array<() => void> = [];
  /** The overload policy of this source's ladder (undefined when off). */
  readonly #governor: OverloadGovernor | undefined;
  #nextLoadCheckMs = 0;

  constructor(ladder: SoftwareLadder, broadcast: string, meta: FragmentMeta) {
    this.#ladder = ladder;
    this.broadcast = broadcast;
    const { overflow, overload } = ladder.options;
    this.#governor = overflow === 'drop' && overload !== false ? new OverloadGovernor(overload) : undefined;
    this.#configure(meta);
  }

  /** Load state of the rung `rendition` under the overload policy. */
  loadState(rendition: string): RungLoadState {
    return this.#governor?.state(rendition) ?? 'running';
  }

  /** Whether the overload policy paused every rung (then nothing needs decoding). */
  #allPaused(): boolean {
    if (this.#governor === undefined || this.#rungs.size === 0) return false;
    for (const rung of this.#rungs) if (rung.loadState !== 'paused') return false;
    return true;
  }

  /** Samples every rung once per interval and applies the overload policy's next step, if any. */
  #checkLoad(): void {
    const governor = this.#governor;
    if (governor === undefined || this.#rungs.size === 0) return;
    const { now, logger, metrics } = this.#ladder.options;
    const nowMs = now();
    if (nowMs < this.#nextLoadCheckMs) return;
    this.#nextLoadCheckMs = nowMs + governor.options.intervalMs;
    const rungs = [...this.#rungs].sort(
      (a, b) => this.#ladder._priority(a.rendition.name) - this.#ladder._priority(b.rendition.name),
    );
    const samples = rungs.map((r) => r.takeLoadSample(nowMs, governor.options.behindLagMs));
    for (const t of governor.evaluate(nowMs, samples)) {
      const rung = rungs.find((r) => r.rendition.name === t.rung);
      rung?.setLoadState(t.to);
      const labels = { transcoder: NAME, rendition: t.rung };
      metrics?.overloadActions.inc({ ...labels, action: t.action });
      if (t.to === 'paused') metrics?.pausedRungs.inc(labels);
      if (t.from === 'paused') metrics?.pausedRungs.dec(labels);
      const fields = {
        broadcast: this.broadcast,
        rendition: t.rung,
        action: t.action,
        behind: samples.filter((x) => x.behind).map((x) => x.name),
        nextHoldMs: governor.holdMs,
      };
      if (t.action === 'shed' || t.action === 'pause') logger.warn('ladder overloaded: shedding a rung', fields);
      else logger.info('ladder has headroom: rung back', fields);
    }
  }

  /** Source picture size and frame rate. */
  get video(): SourceVideo {
    return this.#video;
  }

  /** The current format (bumps at every new init). */
  get format(): SourceFormat {
    return { generation: this.#generation, video: this.#video };
  }

  /** The frame rate the init states, else the one the median sample duration gives (once known). */
  frameRate(): number | undefined {
    if (this.#video.frameRate !== undefined) return this.#video.frameRate;
    if (this.#durations.length === 0) return undefined;
    const sorted = [...this.#durations].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    return Math.round((this.#timescale / median) * 1000) / 1000;
  }

  /**
   * Resolves once the frame rate is trustworthy: stated by the init, or measured over a few
   * samples (the first sample of a stream is often longer), or the source ends, or `maxMs` passes.
   */
  frameRateSettled(maxMs = FRAME_RATE_WAIT_MS): Promise<void> {
    if (this.#frameRateKnown() || this.#closed || this.#finishing !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, maxMs);
      const waiters = this.#frameRateWaiters;
      function done(): void {
        clearTimeout(timer);
        const at = waiters.indexOf(done);
        if (at !== -1) waiters.splice(at, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  #frameRateKnown(): boolean {
    return this.#video.frameRate !== undefined || this.#durations.length >= FRAME_RATE_SAMPLES;
  }

  #wakeFrameRateWaiters(): void {
    for (const wake of this.#frameRateWaiters.splice(0)) wake();
  }

  /** Timescale of source (and rung) timestamps. */
  get timescale(): number {
    return this.#timescale;
  }

  /** The init segment the decoder is configured for. */
  get init(): Uint8Array | undefined {
    return this.#init;
  }

  attach(rung: SoftwareTranscoder): void {
    this.#rungs.add(rung);
  }

  detach(rung: SoftwareTranscoder): number {
    this.#rungs.delete(rung);
    const name = rung.rendition.name;
    if (this.#governor?.state(name) === 'paused') {
      this.#ladder.options.metrics?.pausedRungs.dec({ transcoder: NAME, rendition: name });
    }
    this.#governor?.forget(name);
    return this.#rungs.size;
  }

  status(): SourceLadderStatus {
    return {
      broadcast: this.broadcast,
      codec: this.#codec,
      width: this.#video.width,
      height: this.#video.height,
      frameRate: this.#video.frameRate,
      decoderState: this.#state,
      reason: undefined,
      decodedFrames: this.#decodedFrames,
      restarts: this.#restarts,
      lastError: this.#lastError,
      rungs: [...this.#rungs].map((r) => r.rendition.name),
      skipped: [...this.#rungs].flatMap((r) => {
        const planned = planRung(this.#video, r.rendition);
        return typeof planned === 'string' ? [{ rendition: r.rendition.name, reason: planned }] : [];
      }),
    };
  }

  /**
   * Decodes `fragment` unless another rung already submitted it. `init` is the init segment the
   * submitting rung believes in; fragments of a superseded init are ignored.
   */
  submit(fragment: Fragment, init: Uint8Array | undefined): Promise<void> {
    this.#checkLoad();
    if (this.#closed || init !== this.#init) return this.#chain;
    if (fragment.dts <= this.#lastSubmittedDts) return this.#chain;
    this.#lastSubmittedDts = fragment.dts;
    return this.#step(() => this.#decodeFragment(fragment));
  }

  /** Switches to a new init segment once (flushing the old stream first); later calls for it are no-ops. */
  reconfigure(meta: FragmentMeta): Promise<void> {
    if (meta.initSegment === this.#init || this.#closed) return this.#chain;
    const previousInit = this.#init;
    this.#init = meta.initSegment;
    // Fragments of the new init restart their timestamps: never dedupe them against the old stream.
    this.#lastSubmittedDts = -Infinity;
    return this.#step(async () => {
      if (previousInit !== undefined) await this.#flushDecoder();
      this.#closeDecoder();
      this.#configure(meta);
      // Every frame of the old init is in the rung queues now: mark the boundary in each of them.
      const format = this.format;
      for (const rung of this.#rungs) rung.enqueueFormat(format);
    });
  }

  /** Flushes the decoder once at the end of the source; every rung awaits the same promise. */
  finish(): Promise<void> {
    if (this.#finishing === undefined) {
      this.#finishing = this.#step(() => this.#flushDecoder());
      this.#wakeFrameRateWaiters();
    }
    return this.#finishing;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeDecoder();
    this.#pending.clear();
    this.#wakeFrameRateWaiters();
  }

  /** Chains `task` after every earlier one; a failing task is recorded and never poisons the chain. */
  #step(task: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(task).catch((error: unknown) => {
      if (!this.#closed) this.#fail(error, this.#decoder);
    });
    return this.#chain;
  }

  #configure(meta: FragmentMeta): void {
    this.#generation += 1;
    this.#init = meta.initSegment;
    this.#timescale = meta.timescale;
    this.#codec = meta.codec;
    this.#description = undefined;
    this.#lastSubmittedDts = -Infinity;
    this.#expectedDts = undefined;
    this.#needKeyframe = true;
    this.#lastForcedPts = undefined;
    this.#pending.clear();
    this.#durations = [];
    if (meta.initSegment === undefined) return;
    const track = describeInit(meta.initSegment).find((t) => t.kind === 'video');
    if (track === undefined) return;
    this.#codec = track.codec;
    this.#timescale = track.timescale;
    this.#description = track.description;
    this.#video = { width: track.width ?? 0, height: track.height ?? 0, frameRate: track.frameRate };
  }

  #ensureDecoder(): DecoderLike | undefined {
    if (this.#decoder !== undefined) return this.#decoder;
    if (this.#description === undefined) return undefined;
    if (this.#ladder.options.now() < this.#retryAtMs) return undefined;
    let created: DecoderLike | undefined;
    try {
      created = this.#ladder.options.codecs.createDecoder(
        {
          codec: this.#codec,
          description: this.#description,
          codedWidth: this.#video.width,
          codedHeight: this.#video.height,
        },
        (frame) => this.#onFrame(frame),
        (error) => this.#fail(error, created),
      );
      this.#decoder = created;
      this.#state = 'running';
    } catch (error) {
      this.#fail(error, undefined);
      return undefined;
    }
    return this.#decoder;
  }

  async #decodeFragment(fragment: Fragment): Promise<void> {
    if (this.#closed) return;
    const samples = readSamples(fragment.payload);
    if (samples.length === 0) return;
    for (const sample of samples) {
      if (sample.duration > 0) this.#durations.push(sample.duration);
    }
    if (this.#durations.length > 64) this.#durations.splice(0, this.#durations.length - 64);
    if (this.#frameRateKnown()) this.#wakeFrameRateWaiters();
    const first = samples[0]!;
    const gap = this.#expectedDts !== undefined && fragment.dts !== this.#expectedDts;
    this.#expectedDts = fragment.dts + fragment.duration;
    if (gap) this.#needKeyframe = true;
    if (this.#allPaused()) {
      // Every rung is paused: decoding would feed no one. Resume at a keyframe.
      this.#needKeyframe = true;
      for (const rung of this.#rungs) rung.countDropped(samples.length);
      return;
    }
    if (this.#needKeyframe && !first.keyframe) {
      for (const rung of this.#rungs) rung.countDropped(samples.length);
      return;
    }
    const decoder = this.#ensureDecoder();
    if (decoder === undefined) {
      this.#needKeyframe = true;
      for (const rung of this.#rungs) rung.countDropped(samples.length);
      return;
    }
    // The decoder holds reordered frames until more input comes: flushing before a keyframe
    // releases the end of the previous GOP at once (after a flush the next sample must be a key).
    if (first.keyframe && this.#decodedSinceFlush) await this.#flushDecoder();
    this.#needKeyframe = false;
    const timescale = this.#timescale;
    for (const [index, sample] of samples.entries()) {
      if (this.#ladder.options.overflow === 'wait') await this.#roomInRungs();
      if (this.#decoder !== decoder) {
        // The decoder failed meanwhile: the rest of this fragment is lost until the next keyframe.
        for (const rung of this.#rungs) rung.countDropped(samples.length - index);
        return;
      }
      const timestampUs = ticksToUs(sample.pts, timescale);
      this.#pending.set(timestampUs, {
        pts: sample.pts,
        duration: sample.duration,
        timescale,
        ingestTimeMs: fragment.ingestTimeMs,
        dueMs: fragment.ingestTimeMs > 0 ? fragment.ingestTimeMs + ((sample.dts - first.dts) * 1000) / timescale : 0,
        sourceKey: sample.keyframe,
        forceKey: false,
      });
      try {
        await decoder.decode({
          data: sample.data,
          timestampUs,
          durationUs: ticksToUs(sample.duration, timescale),
          keyframe: sample.keyframe,
        });
        this.#decodedSinceFlush = true;
      } catch (error) {
        // This sample is lost (unless the failure already counted it), and so is the rest of the fragment.
        const lost = this.#pending.delete(timestampUs) ? 1 : 0;
        this.#fail(error, decoder);
        for (const rung of this.#rungs) rung.countDropped(lost + samples.length - index - 1);
        return;
      }
    }
  }

  /** In `wait` mode: holds decoding while any rung's queue is three quarters full. */
  async #roomInRungs(): Promise<void> {
    const limit = Math.max(1, Math.floor((this.#ladder.options.maxQueuedFrames * 3) / 4));
    for (const rung of this.#rungs) await rung.waitForRoom(limit);
  }

  async #flushDecoder(): Promise<void> {
    const decoder = this.#decoder;
    if (decoder === undefined || !this.#decodedSinceFlush) return;
    this.#decodedSinceFlush = false;
    try {
      await decoder.flush();
    } catch (error) {
      this.#fail(error, decoder);
    }
  }

  #onFrame(frame: VideoFrameLike): void {
    try {
      const meta = this.#pending.get(frame.timestamp);
      if (meta === undefined || this.#closed) return;
      this.#pending.delete(frame.timestamp);
      this.#decodedFrames += 1;
      this.#failures = 0;
      const cadence = Math.round((this.#ladder.options.segmentTargetMs * this.#timescale) / 1000);
      if (meta.sourceKey || this.#lastForcedPts === undefined || meta.pts - this.#lastForcedPts >= cadence) {
        meta.forceKey = true;
        this.#lastForcedPts = meta.pts;
      }
      for (const rung of this.#rungs) {
        if (rung.loadState === 'paused') rung.countDropped(1);
        else rung.enqueue(frame.clone(), meta);
      }
      const gc = this.#ladder.options.gc;
      if (gc !== undefined && this.#decodedFrames % this.#ladder.options.gcEveryFrames === 0) gc();
    } finally {
      frame.close();
    }
  }

  /** A failure of `decoder` (ignored when that decoder was already replaced: one fault, one restart). */
  #fail(error: unknown, decoder: DecoderLike | undefined): void {
    if (decoder !== undefined && decoder !== this.#decoder) return;
    this.#lastError = errorMessage(error);
    this.#state = 'failed';
    this.#restarts += 1;
    this.#failures += 1;
    const { retryBaseMs, retryMaxMs, now, logger } = this.#ladder.options;
    const delay = Math.min(retryMaxMs, retryBaseMs * 2 ** (this.#failures - 1));
    this.#retryAtMs = now() + delay;
    this.#needKeyframe = true;
    // Samples the decoder took but never returned are lost for every rung.
    const lost = this.#pending.size;
    for (const rung of this.#rungs) rung.countDropped(lost);
    this.#closeDecoder();
    logger.warn('source decoder failed; retrying', {
      broadcast: this.broadcast,
      error: this.#lastError,
      retryMs: delay,
    });
  }

  #closeDecoder(): void {
    const decoder = this.#decoder;
    this.#decoder = undefined;
    this.#decodedSinceFlush = false;
    this.#pending.clear();
    try {
      decoder?.close();
    } catch {
      // Closing a failed decoder may throw; it is gone either way.
    }
  }
}

type QueuedFrame = { frame: VideoFrameLike; meta: FrameMeta };
/**
 * A frame to encode, the boundary where the source switched to a new init, or the point where the
 * overload policy paused the rung (its encoder is closed there).
 */
type QueueItem = QueuedFrame | { format: SourceFormat } | { suspend: true };

function isFrame(item: QueueItem): item is QueuedFrame {
  return (item as QueuedFrame).frame !== undefined;
}

/** One rung of one source: encoder, CMAF packaging, publication. */
export class SoftwareTranscoder implements Transcoder {
  readonly rendition: RenditionSpec;
  readonly #ladder: SoftwareLadder;
  readonly #session: object;
  #ctx: TranscoderContext | undefined;
  #source: SourceDecoder | undefined;
  #init: Uint8Array | undefined;
  /** Plan of the encoder session (the format of the frames being encoded). */
  #plan: PlannedRung | undefined;
  #skipReason: string | undefined;
  /** Plan of the newest format enqueued (decides which incoming frames are kept). */
  #queuedPlan: PlannedRung | undefined;
  #encoder: EncoderLike | undefined;
  #encoderConfigKey = '';
  #queue: QueueItem[] = [];
  #draining = false;
  #drained: Array<() => void> = [];
  #waitingForKey = false;
  #needKey = true;
  #inFlight = new Map<number, FrameMeta>();
  #avcC: Uint8Array | undefined;
  #output: FragmentBroadcaster | undefined;
  #outputName = '';
  #sequence = 0;
  #groupId = -1;
  #objectId = 0;
  #lastPts = -Infinity;
  #state: 'starting' | 'running' | 'failed' | 'skipped' | 'ended' = 'starting';
  #framesIn = 0;
  #framesOut = 0;
  #bytesOut = 0;
  #dropped = 0;
  #restarts = 0;
  #failures = 0;
  #retryAtMs = 0;
  #lastError: string | undefined;
  #latencies: number[] = [];
  #window: Array<{ wallMs: number; mediaMs: number; bytes: number }> = [];
  #gaugeAtMs = 0;
  #stopping = false;
  #loadState: RungLoadState = 'running';
  /** Longest arrival-to-encoder wait this sampling interval, ms. */
  #maxLagMs = 0;
  /** The queue overflowed this sampling interval. */
  #overflowed = false;
  /** Shedding: the current GOP is being dropped (every other one is). */
  #shedSkip = false;

  /** @internal Use `SoftwareTranscoderFactory.build`. */
  constructor(ladder: SoftwareLadder, rendition: RenditionSpec, session: object = {}) {
    this.#ladder = ladder;
    this.rendition = rendition;
    this.#session = session;
  }

  onStart(ctx: TranscoderContext): void {
    this.#ctx = ctx;
    this.#outputName = `${ctx.broadcast}/${this.rendition.name}`;
    this.#source = this.#ladder._acquire(ctx.broadcast, this.#session, ctx.meta, this);
    this.#init = ctx.meta.initSegment;
    this.#replan(this.#source.video);
    this.#queuedPlan = this.#plan;
  }

  async onFragment(fragment: Fragment): Promise<void> {
    const source = this.#source;
    if (source === undefined) return;
    await source.submit(fragment, this.#init);
    // Back-pressure: hold the drain loop while this rung's queue is above half its bound.
    const soft = Math.max(1, Math.floor(this.#ladder.options.maxQueuedFrames / 2));
    while (this.#queue.length > soft && !this.#stopping) {
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  async onMetaChange(meta: FragmentMeta): Promise<void> {
    const source = this.#source;
    if (source === undefined) return;
    // The decoder marks the format boundary in this rung's queue; the switch happens there, in order.
    await source.reconfigure(meta);
    this.#init = meta.initSegment;
  }

  async onStop(): Promise<void> {
    const source = this.#source;
    if (source === undefined) return;
    await source.finish();
    await this.#waitDrained();
    this.#stopping = true;
    await this.#closeEncoder(true);
    this.#ladder._release(this.#ctx!.broadcast, source, this);
    this.#source = undefined;
    this.#endOutput();
    if (this.#state !== 'skipped') this.#state = 'ended';
    for (const resolve of this.#drained.splice(0)) resolve();
  }

  /** Load state under the overload policy. */
  get loadState(): RungLoadState {
    return this.#loadState;
  }

  /** @internal This interval's overload sample (whether the rung fell behind); starts the next interval. */
  takeLoadSample(nowMs: number, behindLagMs: number): { name: string; behind: boolean } {
    const oldest = this.#queue.find(isFrame);
    const waitingMs = oldest !== undefined && oldest.meta.dueMs > 0 ? nowMs - oldest.meta.dueMs : 0;
    const behind = this.#overflowed || Math.max(this.#maxLagMs, waitingMs) > behindLagMs;
    this.#overflowed = false;
    this.#maxLagMs = 0;
    return { name: this.rendition.name, behind };
  }

  /** @internal Applies an overload-policy step. */
  setLoadState(state: RungLoadState): void {
    if (state === this.#loadState) return;
    this.#loadState = state;
    this.#shedSkip = false;
    if (state !== 'paused' || this.#stopping) return;
    this.#dropQueuedFrames();
    this.#queue.push({ suspend: true });
    this.#pump();
  }

  /** @internal Called by the source decoder with a frame clone this rung now owns. */
  enqueue(frame: VideoFrameLike, meta: FrameMeta): void {
    if (this.#queuedPlan === undefined || this.#stopping) {
      frame.close();
      return;
    }
    this.#framesIn += 1;
    if (this.#loadState !== 'running') {
      // Shedding drops every other GOP; a paused rung drops everything.
      if (this.#loadState === 'shedding' && meta.forceKey) this.#shedSkip = !this.#shedSkip;
      if (this.#loadState === 'paused' || this.#shedSkip) {
        frame.close();
        this.countDropped(1);
        return;
      }
    }
    if (this.#waitingForKey) {
      if (!meta.forceKey) {
        frame.close();
        this.countDropped(1);
        return;
      }
      this.#waitingForKey = false;
    }
    if (this.#queue.length >= this.#ladder.options.maxQueuedFrames) {
      // Cannot keep up: drop the queued frames and everything up to the next forced keyframe
      // (format boundaries stay: they are not media).
      const dropped = this.#dropQueuedFrames();
      this.#overflowed = true;
      this.#ladder.options.logger.warn('rung behind; dropping to the next keyframe', {
        broadcast: this.#ctx?.broadcast,
        rendition: this.rendition.name,
        dropped,
      });
      if (!meta.forceKey) {
        this.#waitingForKey = true;
        frame.close();
        this.countDropped(1);
        return;
      }
    }
    this.#queue.push({ frame, meta });
    this.#pump();
  }

  /** Drops (and counts) every queued frame; format and suspend markers stay, they are not media. */
  #dropQueuedFrames(): number {
    const dropped = this.#queue.filter(isFrame);
    this.#queue = this.#queue.filter((item) => !isFrame(item));
    for (const q of dropped) q.frame.close();
    this.countDropped(dropped.length);
    return dropped.length;
  }

  /** @internal Called by the source decoder between the last frame of an init and the first of the next. */
  enqueueFormat(format: SourceFormat): void {
    if (this.#stopping) return;
    const planned = planRung(format.video, this.rendition);
    this.#queuedPlan = typeof planned === 'string' ? undefined : planned;
    // The first frame of the new format is a forced keyframe: no GOP of the old one to wait out.
    this.#waitingForKey = false;
    this.#queue.push({ format });
    this.#pump();
  }

  /** @internal Resolves once this rung's frame queue is below `limit` (or the rung stops). */
  async waitForRoom(limit: number): Promise<void> {
    while (this.#queue.length >= limit && !this.#stopping) {
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  /** @internal Counts source frames this rung did not encode. */
  countDropped(frames: number): void {
    if (frames <= 0) return;
    this.#dropped += frames;
    this.#ladder.options.metrics?.droppedFragments.inc({ transcoder: NAME, rendition: this.rendition.name }, frames);
  }

  /** Output over the last 5 s: wall time spanned, media time and bytes produced, frames. */
  #recent(now: number): { wallMs: number; mediaMs: number; bytes: number; frames: number } {
    const recent = this.#window.filter((w) => now - w.wallMs <= 5000);
    const first = recent[0];
    const last = recent.at(-1);
    return {
      wallMs: first !== undefined && last !== undefined ? last.wallMs - first.wallMs : 0,
      mediaMs: recent.reduce((a, w) => a + w.mediaMs, 0) - (first?.mediaMs ?? 0),
      bytes: recent.reduce((a, w) => a + w.bytes, 0) - (first?.bytes ?? 0),
      frames: recent.length,
    };
  }

  stats(): TranscoderStats {
    const { wallMs, mediaMs, bytes, frames } = this.#recent(this.#ladder.options.now());
    return {
      state: this.#state === 'running' && this.#loadState === 'paused' ? 'paused' : this.#state,
      load: this.#loadState,
      output: this.#outputName,
      width: this.#plan?.width,
      height: this.#plan?.height,
      frameRate: this.#plan?.frameRate ?? this.#source?.frameRate(),
      backend: this.#ladder.options.codecs.backend,
      skippedReason: this.#skipReason,
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      bytesOut: this.#bytesOut,
      droppedFrames: this.#dropped,
      queuedFrames: this.#queue.length,
      restarts: this.#restarts,
      lastError: this.#lastError,
      outputBitrateBps: mediaMs > 0 ? Math.round((bytes * 8 * 1000) / mediaMs) : undefined,
      encodeFps: wallMs > 0 ? Math.round(((frames - 1) * 1000 * 100) / wallMs) / 100 : undefined,
      realtimeFactor: wallMs > 0 ? Math.round((mediaMs / wallMs) * 100) / 100 : undefined,
      latencyMsP50: percentile(this.#latencies, 50),
      latencyMsP99: percentile(this.#latencies, 99),
    };
  }

  #replan(video: SourceVideo): void {
    const planned = planRung(video, this.rendition);
    if (typeof planned === 'string') {
      this.#plan = undefined;
      this.#skipReason = planned;
      this.#state = 'skipped';
    } else {
      this.#plan = planned;
      this.#skipReason = undefined;
      if (this.#state === 'skipped' || this.#state === 'starting') this.#state = 'running';
    }
  }

  #pump(): void {
    if (this.#draining) return;
    this.#draining = true;
    void this.#drain().finally(() => {
      this.#draining = false;
      if (this.#queue.length > 0 && !this.#stopping) this.#pump();
      else for (const resolve of this.#drained.splice(0)) resolve();
    });
  }

  async #drain(): Promise<void> {
    const soft = Math.max(1, Math.floor(this.#ladder.options.maxQueuedFrames / 2));
    for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) {
      if ('suspend' in item) {
        // Paused: free the encoder; the next session starts at a forced keyframe after resuming.
        this.countDropped(this.#inFlight.size);
        await this.#closeEncoder(false);
        this.#needKey = true;
        continue;
      }
      if (!isFrame(item)) {
        await this.#switchFormat(item.format);
        continue;
      }
      if (item.meta.dueMs > 0) {
        this.#maxLagMs = Math.max(this.#maxLagMs, this.#ladder.options.now() - item.meta.dueMs);
      }
      try {
        await this.#encode(item);
      } finally {
        item.frame.close();
      }
      if (this.#queue.length <= soft) for (const resolve of this.#drained.splice(0)) resolve();
    }
  }

  /**
   * The source switched to a new init: finish the encoder session (its tail is published under the
   * old plan), re-plan, and start the next session with a new init, or end the output.
   */
  async #switchFormat(format: SourceFormat): Promise<void> {
    await this.#closeEncoder(true);
    this.#avcC = undefined;
    this.#lastPts = -Infinity;
    this.#needKey = true;
    this.#replan(format.video);
    if (this.#plan === undefined) this.#endOutput();
  }

  async #encode({ frame, meta }: QueuedFrame): Promise<void> {
    const source = this.#source;
    // A new session takes its frame rate from the source: wait until a few samples tell it.
    if (this.#encoder === undefined && meta.forceKey && source !== undefined) await source.frameRateSettled();
    const encoder = this.#ensureEncoder(meta);
    if (encoder === undefined) {
      this.countDropped(1);
      return;
    }
    const keyFrame = meta.forceKey || this.#needKey;
    if (this.#needKey && !meta.forceKey) {
      // After a (re)start the encoder must begin at a point every rung agrees on.
      this.countDropped(1);
      return;
    }
    this.#needKey = false;
    this.#inFlight.set(frame.timestamp, meta);
    try {
      await encoder.encode(frame, { keyFrame, durationUs: ticksToUs(meta.duration, meta.timescale) });
    } catch (error) {
      if (this.#inFlight.delete(frame.timestamp)) this.countDropped(1);
      this.#fail(error, encoder);
    }
  }

  #ensureEncoder(meta: FrameMeta): EncoderLike | undefined {
    const plan = this.#plan;
    const source = this.#source;
    if (plan === undefined || source === undefined) return undefined;
    const framerate = plan.frameRate ?? source.frameRate() ?? (meta.duration > 0 ? meta.timescale / meta.duration : 30);
    const key = `${plan.width}x${plan.height}@${plan.videoBitrateBps}`;
    if (this.#encoder !== undefined && this.#encoderConfigKey === key) return this.#encoder;
    if (this.#ladder.options.now() < this.#retryAtMs) return undefined;
    if (!meta.forceKey) return undefined;
    let created: EncoderLike | undefined;
    try {
      created = this.#ladder.options.codecs.createEncoder(
        { width: plan.width, height: plan.height, bitrateBps: plan.videoBitrateBps, framerate },
        (chunk) => this.#onChunk(chunk),
        (error) => this.#fail(error, created),
      );
      this.#encoder = created;
      this.#encoderConfigKey = key;
      this.#needKey = true;
      this.#ladder.options.metrics?.encoderBackend.set(
        { transcoder: NAME, rendition: this.rendition.name, backend: this.#ladder.options.codecs.backend },
        1,
      );
    } catch (error) {
      this.#fail(error, undefined);
      return undefined;
    }
    return this.#encoder;
  }

  #onChunk(chunk: EncodedChunk): void {
    const meta = this.#inFlight.get(chunk.timestampUs);
    if (meta === undefined) return;
    this.#inFlight.delete(chunk.timestampUs);
    const source = this.#source;
    const plan = this.#plan;
    if (source === undefined || plan === undefined) return;
    const options = this.#ladder.options;
    if (chunk.decoderConfig !== undefined && !sameBytes(chunk.decoderConfig.description, this.#avcC)) {
      this.#avcC = chunk.decoderConfig.description;
      // The init's default sample duration states the frame rate (players and the master's
      // FRAME-RATE read it): take it from the source frame rate, not from this first frame,
      // which is often longer than the rest.
      const fps = plan.frameRate ?? source.frameRate();
      this.#publishInit(
        plan,
        meta.timescale,
        fps !== undefined && fps > 0 ? Math.round(meta.timescale / fps) : meta.duration,
      );
    }
    if (this.#avcC === undefined || this.#output === undefined) return;
    if (meta.pts <= this.#lastPts) {
      options.logger.warn('dropping a non-monotonic rung frame', { output: this.#outputName, pts: meta.pts });
      return;
    }
    this.#lastPts = meta.pts;
    // An IDR the encoder inserted on its own is decodable but not shared by the other rungs and the
    // source, so it is not flagged as a keyframe (segments are cut only at shared points).
    const keyframe = chunk.keyframe && chunk.requestedKeyframe !== false;
    if (keyframe) {
      this.#groupId += 1;
      this.#objectId = 0;
    } else {
      this.#objectId += 1;
    }
    this.#sequence += 1;
    const payload = buildMediaSegment({
      sequenceNumber: this.#sequence,
      baseMediaDecodeTime: meta.pts,
      samples: [{ data: chunk.data, duration: meta.duration, keyframe: chunk.keyframe }],
    });
    this.#output.emit({
      trackId: VIDEO_TRACK,
      groupId: Math.max(0, this.#groupId),
      objectId: this.#objectId,
      priority: keyframe ? 0 : 1,
      dts: meta.pts,
      pts: meta.pts,
      duration: meta.duration,
      flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
      payload,
      ingestTimeMs: meta.ingestTimeMs,
    });
    const now = options.now();
    this.#framesOut += 1;
    this.#bytesOut += payload.byteLength;
    this.#failures = 0;
    if (this.#state === 'failed') this.#state = 'running';
    const labels = { transcoder: NAME, rendition: this.rendition.name };
    options.metrics?.outputFragments.inc(labels);
    options.metrics?.outputBytes.inc(labels, payload.byteLength);
    if (meta.ingestTimeMs > 0) {
      const latencyMs = now - meta.ingestTimeMs;
      this.#latencies.push(latencyMs);
      if (this.#latencies.length > 600) this.#latencies.shift();
      options.metrics?.latency.observe(labels, latencyMs / 1000);
    }
    this.#window.push({ wallMs: now, mediaMs: (meta.duration * 1000) / meta.timescale, bytes: payload.byteLength });
    while (this.#window.length > 0 && now - this.#window[0]!.wallMs > 10_000) this.#window.shift();
    // The gauge is refreshed once a second, not per frame (stats() sorts the latency window).
    if (options.metrics !== undefined && now - this.#gaugeAtMs >= 1000) {
      this.#gaugeAtMs = now;
      const { wallMs, mediaMs } = this.#recent(now);
      if (wallMs > 0) options.metrics.realtimeFactor.set(labels, Math.round((mediaMs / wallMs) * 100) / 100);
    }
  }

  #publishInit(plan: PlannedRung, timescale: number, frameDuration: number): void {
    const ctx = this.#ctx!;
    const avcC = this.#avcC!;
    const init = buildVideoInitSegment({
      timescale,
      width: plan.width,
      height: plan.height,
      avcC,
      defaultSampleDuration: frameDuration,
    });
    const meta: FragmentMeta = { codec: avcCodecString(avcC), timescale, initSegment: init };
    const registry = this.#ladder.options.registry;
    const existing = registry.get(this.#outputName, VIDEO_TRACK);
    if (existing !== undefined && existing === this.#output && !existing.closed) {
      existing.setMeta(meta);
      return;
    }
    if (existing !== undefined) {
      if (existing.origin.kind !== 'rendition') {
        // A publisher owns that name: never write into its broadcast.
        this.#lastError = `output ${this.#outputName} is taken by a published broadcast`;
        this.#output = undefined;
        return;
      }
      // The output of a previous session of this source (a restart while its rungs still finish):
      // end it here, so its late frames can never follow ours in one broadcaster.
      registry.remove(this.#outputName, VIDEO_TRACK);
    }
    this.#output = registry.getOrCreate(this.#outputName, VIDEO_TRACK, meta, {
      origin: { kind: 'rendition', source: ctx.broadcast, rendition: this.rendition.name, transcoder: NAME },
    });
    if (this.#output.meta !== meta) this.#output.setMeta(meta);
    this.#lastPts = -Infinity;
  }

  /** A failure of `encoder` (ignored when that encoder was already replaced: one fault, one restart). */
  #fail(error: unknown, encoder: EncoderLike | undefined): void {
    if (encoder !== undefined && encoder !== this.#encoder) return;
    const options = this.#ladder.options;
    this.#lastError = errorMessage(error);
    this.#state = 'failed';
    this.#restarts += 1;
    this.#failures += 1;
    const delay = Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** (this.#failures - 1));
    this.#retryAtMs = options.now() + delay;
    options.metrics?.restarts.inc({ transcoder: NAME, rendition: this.rendition.name });
    options.logger.warn('rung encoder failed; rebuilding', {
      output: this.#outputName,
      error: this.#lastError,
      retryMs: delay,
    });
    const failed = this.#encoder;
    this.#encoder = undefined;
    this.#encoderConfigKey = '';
    // Frames the failed encoder took but never returned are lost.
    this.countDropped(this.#inFlight.size);
    this.#inFlight.clear();
    this.#needKey = true;
    try {
      failed?.close();
    } catch {
      // A failed encoder may refuse to close; it is dropped either way.
    }
  }

  async #closeEncoder(flush: boolean): Promise<void> {
    const encoder = this.#encoder;
    this.#encoder = undefined;
    this.#encoderConfigKey = '';
    if (encoder === undefined) return;
    try {
      if (flush) await encoder.flush();
    } catch (error) {
      this.#lastError = errorMessage(error);
    } finally {
      try {
        encoder.close();
      } catch {
        // already closed
      }
      this.#inFlight.clear();
    }
  }

  async #waitDrained(): Promise<void> {
    while (this.#queue.length > 0 || this.#draining) {
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  #endOutput(): void {
    const registry = this.#ladder.options.registry;
    if (this.#output !== undefined && registry.get(this.#outputName, VIDEO_TRACK) === this.#output) {
      registry.remove(this.#outputName, VIDEO_TRACK);
    }
    this.#output = undefined;
    this.#avcC = undefined;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Builds one rung of the software ladder (factory name `software`, one per rendition, as in LVQR). */
export class SoftwareTranscoderFactory implements TranscoderFactory {
  readonly name = NAME;
  readonly rendition: RenditionSpec;
  readonly #ladder: SoftwareLadder;

  /** A factory for `rendition` sharing `ladder`'s per-source decoders. */
  constructor(rendition: RenditionSpec, ladder: SoftwareLadder) {
    this.rendition = rendition;
    this.#ladder = ladder;
    ladder._rank(rendition.name);
  }

  build(ctx: TranscoderContext): Transcoder | undefined {
    if (ctx.track !== VIDEO_TRACK) return undefined;
    // At build time the codec may still be unknown (entry created before its init).
    if (ctx.meta.codec !== '' && !DECODABLE.test(ctx.meta.codec)) {
      this.#ladder._refuse(
        ctx.broadcast,
        ctx.meta.codec,
        `codec ${ctx.meta.codec} cannot be decoded here (H.264 only)`,
      );
      return undefined;
    }
    this.#ladder._clearRefusal(ctx.broadcast);
    return new SoftwareTranscoder(this.#ladder, this.rendition, this.#ladder._session(ctx.broadcast, ctx.meta));
  }
}
