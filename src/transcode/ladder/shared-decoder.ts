/**
 * The one decoder of a source, shared by its rungs: the first submission of a fragment decodes it
 * (later ones are no-ops), each decoded frame is handed to every rung as a clone, and forced
 * keyframes are decided here once per frame, so every rung cuts at the same points.
 *
 * Source format changes: the decoder puts a format marker into every rung queue exactly between
 * the last frame of the old init and the first of the new one.
 */

import { describeInit, readSamples } from '../../container/index.ts';
import { Backoff } from '../../core/backoff.ts';
import { errorMessage } from '../../core/errors.ts';
import type { Fragment, FragmentMeta } from '../../fragment/fragment.ts';
import type { DecoderLike, FrameScalerLike, PictureSize, VideoFrameLike } from '../codecs.ts';
import { TaskChain } from '../shared/task-chain.ts';
import { DecoderRenewal } from './decoder-renewal.ts';
import type { FrameMeta, SourceFormat } from './frames.ts';
import { ticksToUs } from './frames.ts';
import { DueSchedule, SourceLoadMonitor } from './load.ts';
import type { ResolvedLadderOptions } from './options.ts';
import type { RungLoadState } from './overload.ts';
import { planRung, type SourceVideo } from './plan.ts';
import { GopBitrate } from './source-bitrate.ts';

import type { DecodedSource, RungSink } from './source-contract.ts';
import type { SourceLadderStatus } from './source-status.ts';

export type { DecodedSource, RungSink, SourceLadderStatus };

/** Longest a new encoder session waits for the source frame rate, ms. */
const FRAME_RATE_WAIT_MS = 250;

/** In `wait` mode, the most frames a rung may have queued before decoding holds (see `#roomInRungs`). */
const WAIT_MODE_QUEUE = 4;

/** The one decoder of a source, shared by its rungs. */
export class SharedDecoder implements DecodedSource {
  readonly broadcast: string;
  readonly #options: ResolvedLadderOptions;
  readonly #rungs = new Set<RungSink>();
  readonly #load: SourceLoadMonitor;
  readonly #backoff: Backoff;
  #init: Uint8Array | undefined;
  #timescale = 90_000;
  #codec = '';
  #video: SourceVideo = { width: 0, height: 0 };
  #description: Uint8Array | undefined;
  #decoder: DecoderLike | undefined;
  readonly #tasks = new TaskChain((error) => {
    if (!this.#closed) this.#fail(error, this.#decoder);
  });
  #expectedDts: number | undefined;
  readonly #due = new DueSchedule();
  /** Group and object id of the last fragment decoded (its place in the publisher's GOP). */
  #lastPlace: { groupId: number; objectId: number } | undefined;
  #needKeyframe = true;
  #decodedSinceFlush = false;
  #pending = new Map<number, FrameMeta>();
  #lastForcedPts: number | undefined;
  /** When `onKeyframe` was last called (clock of `options.now`). */
  #lastTapMs = -Infinity;
  #decodedFrames = 0;
  #restarts = 0;
  readonly #renewal: DecoderRenewal;
  #lastError: string | undefined;
  #state: 'running' | 'failed' = 'running';
  #finishing: Promise<void> | undefined;
  #closed = false;
  #generation = 0;
  /** The meta of the current init; ingest fills in its `frameRate` once measured. */
  #meta: FragmentMeta;
  #frameRateWaiters: Array<() => void> = [];
  readonly #bitrate = new GopBitrate();
  /** The frame scaler for the current source size and rung sizes (`key`), while it works. */
  #scaler: { key: string; scaler: FrameScalerLike | undefined } | undefined;
  #scalerUsed: 'quality' | 'encoder' | undefined;
  #scalerError: string | undefined;

  /** A decoder for `broadcast`, configured from `meta`; `priority` ranks renditions for the policy. */
  constructor(
    broadcast: string,
    meta: FragmentMeta,
    options: ResolvedLadderOptions,
    priority: (rendition: string) => number,
  ) {
    this.broadcast = broadcast;
    this.#options = options;
    const { overflow, overload, now, logger, metrics, retryBaseMs, retryMaxMs } = options;
    this.#load = new SourceLoadMonitor({
      broadcast,
      // Nothing is dropped in `wait` mode: no policy there.
      overload: overflow === 'drop' ? overload : false,
      priority,
      now,
      logger,
      metrics,
      onEvent: options.onEvent,
    });
    this.#backoff = new Backoff({ baseMs: retryBaseMs, maxMs: retryMaxMs, now, immediateRetries: 1 });
    this.#renewal = new DecoderRenewal(now);
    this.#meta = meta;
    this.#configure(meta);
  }

  /** Load state of the rung `rendition` under the overload policy. */
  loadState(rendition: string): RungLoadState {
    return this.#load.state(rendition);
  }

  /** Whether the rung `rendition` is failed (its encoder failed and no new session has published yet). */
  rungFailed(rendition: string): boolean {
    for (const rung of this.#rungs) if (rung.rendition.name === rendition) return rung.failed;
    return false;
  }

  /** Whether the overload policy paused every rung (then nothing needs decoding). */
  #allPaused(): boolean {
    if (!this.#load.active || this.#rungs.size === 0) return false;
    for (const rung of this.#rungs) if (rung.loadState !== 'paused') return false;
    return true;
  }

  /** The video bitrate of the current format's first GOP. */
  get bitrate(): GopBitrate {
    return this.#bitrate;
  }

  /** Source picture size and frame rate. */
  get video(): SourceVideo {
    return this.#video;
  }

  /** The current format (bumps at every new init). */
  get format(): SourceFormat {
    return { generation: this.#generation, video: this.#video };
  }

  frameRate(): number | undefined {
    return this.#meta.frameRate ?? this.#video.frameRate;
  }

  /**
   * Resolves once the frame rate is known (stated by the init, or measured by ingest from the first
   * samples), or the source ends, or `maxMs` passes.
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
    return this.frameRate() !== undefined;
  }

  #wakeFrameRateWaiters(): void {
    for (const wake of this.#frameRateWaiters.splice(0)) wake();
  }

  /** Starts feeding `rung`. */
  attach(rung: RungSink): void {
    this.#rungs.add(rung);
  }

  /** Stops feeding `rung`; returns how many rungs remain. */
  detach(rung: RungSink): number {
    this.#rungs.delete(rung);
    this.#load.forget(rung.name);
    return this.#rungs.size;
  }

  /** This source's status for the API. */
  status(): SourceLadderStatus {
    return {
      broadcast: this.broadcast,
      codec: this.#codec,
      width: this.#video.width,
      height: this.#video.height,
      frameRate: this.frameRate(),
      decoderState: this.#state,
      reason: undefined,
      decodedFrames: this.#decodedFrames,
      restarts: this.#restarts,
      renewals: this.#renewal.count,
      lastError: this.#lastError,
      rungs: [...this.#rungs].map((r) => r.name),
      scaler: this.#scalerUsed,
      scalerError: this.#scalerError,
      skipped: [...this.#rungs].flatMap((r) => {
        const planned = planRung(this.#video, r.rendition);
        return typeof planned === 'string' ? [{ rendition: r.name, reason: planned }] : [];
      }),
    };
  }

  /**
   * Decodes `fragment` unless another rung already submitted it. `init` is the init segment the
   * submitting rung believes in; fragments of a superseded init are ignored.
   */
  submit(fragment: Fragment, init: Uint8Array | undefined): Promise<void> {
    this.#load.check(this.#rungs);
    if (this.#closed || init !== this.#init) return this.#tasks.tail;
    return this.#tasks.submitOnce(fragment.dts, fragment, () => this.#decodeFragment(fragment));
  }

  /** Switches to a new init segment once (flushing the old stream first); later calls for it are no-ops. */
  reconfigure(meta: FragmentMeta): Promise<void> {
    if (meta.initSegment === this.#init || this.#closed) return this.#tasks.tail;
    const previousInit = this.#init;
    this.#init = meta.initSegment;
    // Fragments of the new init restart their timestamps: never dedupe them against the old stream.
    this.#tasks.restartTimestamps();
    return this.#tasks.step(async () => {
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
      this.#finishing = this.#tasks.step(() => this.#flushDecoder());
      this.#wakeFrameRateWaiters();
    }
    return this.#finishing;
  }

  /** Closes the decoder for good (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#scaler?.scaler?.close();
    this.#scaler = undefined;
    this.#closeDecoder();
    this.#pending.clear();
    this.#wakeFrameRateWaiters();
  }

  #configure(meta: FragmentMeta): void {
    this.#generation += 1;
    this.#init = meta.initSegment;
    this.#timescale = meta.timescale;
    this.#codec = meta.codec;
    this.#description = undefined;
    this.#tasks.restartTimestamps();
    this.#expectedDts = undefined;
    this.#due.reset();
    this.#lastPlace = undefined;
    this.#needKeyframe = true;
    this.#lastForcedPts = undefined;
    this.#pending.clear();
    this.#meta = meta;
    this.#bitrate.reset();
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
    if (this.#backoff.waiting) return undefined;
    let created: DecoderLike | undefined;
    try {
      created = this.#options.codecs.createDecoder(
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

  /** Counts `frames` source frames as lost for every rung. */
  #dropForAll(frames: number): void {
    for (const rung of this.#rungs) rung.countDropped(frames);
  }

  async #decodeFragment(fragment: Fragment): Promise<void> {
    if (this.#closed) return;
    const samples = readSamples(fragment.payload);
    if (samples.length === 0) return;
    this.#bitrate.push(samples, this.#timescale);
    // Ingest fills in the meta's frame rate before it emits the fragment that settles it.
    if (this.#frameRateKnown()) this.#wakeFrameRateWaiters();
    const first = samples[0]!;
    const gap =
      this.#expectedDts !== undefined && fragment.dts !== this.#expectedDts && !this.#slipped(fragment, first.duration);
    this.#expectedDts = fragment.dts + fragment.duration;
    this.#lastPlace = { groupId: fragment.groupId, objectId: fragment.objectId };
    if (gap) this.#needKeyframe = true;
    if (this.#allPaused()) {
      // Every rung is paused: decoding would feed no one. Resume at a keyframe.
      this.#needKeyframe = true;
      this.#dropForAll(samples.length);
      return;
    }
    if (this.#needKeyframe && !first.keyframe) {
      this.#dropForAll(samples.length);
      return;
    }
    if (first.keyframe && this.#decoder !== undefined && this.#renewal.due(this.#rungs)) await this.#renewDecoder();
    const decoder = this.#ensureDecoder();
    if (decoder === undefined) {
      this.#needKeyframe = true;
      this.#dropForAll(samples.length);
      return;
    }
    // The decoder holds reordered frames until more input comes: flushing before a keyframe
    // releases the end of the previous GOP at once (after a flush the next sample must be a key).
    if (first.keyframe && this.#decodedSinceFlush) await this.#flushDecoder();
    this.#needKeyframe = false;
    const timescale = this.#timescale;
    for (const [index, sample] of samples.entries()) {
      if (this.#options.overflow === 'wait') await this.#roomInRungs();
      if (this.#decoder !== decoder) {
        // The decoder failed meanwhile: the rest of this fragment is lost until the next keyframe.
        this.#dropForAll(samples.length - index);
        return;
      }
      let timestampUs = ticksToUs(sample.pts, timescale);
      // Frames are matched to their meta by timestamp: a repeated one (a publisher that gave two
      // samples one time) is moved on by a microsecond; the meta keeps the publisher's time.
      while (this.#pending.has(timestampUs)) timestampUs += 1;
      this.#pending.set(timestampUs, {
        pts: sample.pts,
        duration: sample.duration,
        timescale,
        ingestTimeMs: fragment.ingestTimeMs,
        dueMs: this.#due.due(
          fragment.ingestTimeMs,
          ((sample.dts - first.dts) * 1000) / timescale,
          (sample.duration * 1000) / timescale,
        ),
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
        this.#dropForAll(lost + samples.length - index - 1);
        return;
      }
    }
  }

  /**
   * Whether `fragment`, whose decode time is not where the last one ended, still follows it with
   * nothing missing: it is the next object of the same group (ingest numbers every fragment of a
   * GOP) and starts later by at most its first sample's duration (`sampleTicks`). ffmpeg leaves such
   * a one-frame hole after the first fragment when it fragments a stream per frame
   * (`-c copy -movflags +frag_every_frame`); waiting for the next keyframe would drop the rest of
   * the first GOP in every rung.
   */
  #slipped(fragment: Fragment, sampleTicks: number): boolean {
    const last = this.#lastPlace;
    const ahead = fragment.dts - (this.#expectedDts ?? fragment.dts);
    return (
      last !== undefined &&
      fragment.groupId === last.groupId &&
      fragment.objectId === last.objectId + 1 &&
      ahead > 0 &&
      ahead <= sampleTicks
    );
  }

  /**
   * In `wait` mode: holds decoding while any rung has `WAIT_MODE_QUEUE` frames queued (or its queue
   * is three quarters full, if smaller). The encoders keep queues of their own, so a few frames
   * keep every rung busy; more only hold decoded pictures in memory.
   */
  async #roomInRungs(): Promise<void> {
    const limit = Math.max(1, Math.min(WAIT_MODE_QUEUE, Math.floor((this.#options.maxQueuedFrames * 3) / 4)));
    for (const rung of this.#rungs) await rung.waitForRoom(limit);
  }

  /**
   * Replaces the decoder before a keyframe: the old one's frames all come out first, its picture
   * pool goes with it, and a full collection lets go of the frames the rungs closed meanwhile.
   */
  async #renewDecoder(): Promise<void> {
    const heldFrames = this.#renewal.highWater;
    await this.#flushDecoder();
    this.#closeDecoder();
    this.#renewal.renewed();
    this.#options.metrics?.decoderRenewals.inc();
    this.#options.logger.info('source decoder renewed after a backlog', { broadcast: this.broadcast, heldFrames });
    this.#options.gcFull?.();
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
      this.#backoff.succeed();
      const cadence = Math.round((this.#options.segmentTargetMs * this.#timescale) / 1000);
      if (meta.sourceKey || this.#lastForcedPts === undefined || meta.pts - this.#lastForcedPts >= cadence) {
        meta.forceKey = true;
        this.#lastForcedPts = meta.pts;
      }
      if (meta.sourceKey) this.#tapKeyframe(frame);
      const rungs: RungSink[] = [];
      for (const rung of this.#rungs) {
        if (rung.loadState === 'paused') rung.countDropped(1);
        else rungs.push(rung);
      }
      const pictures = this.#scale(frame, rungs);
      this.#scalerUsed = pictures === undefined ? 'encoder' : 'quality';
      for (const [i, rung] of rungs.entries()) {
        rung.enqueue(pictures?.[i] ?? frame.clone(), meta);
        this.#renewal.noteHeld(rung.queuedFrames);
      }
      const { gc, gcEveryFrames } = this.#options;
      if (gc !== undefined && this.#decodedFrames % gcEveryFrames === 0) {
        // A frame's pixels go back to the decoder's pool only when its handle is collected, and a
        // handle that survives two of these young-generation collections waits for a rare full
        // one (the pool grows meanwhile and never shrinks): queued frames get new handles first.
        for (const rung of this.#rungs) rung.renewFrameHandles();
        gc();
      }
    } finally {
      frame.close();
    }
  }

  /**
   * `frame` at each rung's picture size, through the frame scaler of the codecs (made again when
   * the source or rung sizes change); undefined where there is none or this frame cannot go
   * through it: the rungs then get clones and their encoders scale.
   */
  #scale(frame: VideoFrameLike, rungs: readonly RungSink[]): VideoFrameLike[] | undefined {
    const create = this.#options.codecs.createScaler;
    if (create === undefined || rungs.length === 0) return undefined;
    const source = this.#video;
    const fits = (s: PictureSize): boolean => s.width <= source.width && s.height <= source.height;
    const isSource = (s: PictureSize): boolean => s.width === source.width && s.height === source.height;
    const sizes = rungs.map((r) => r.pictureSize ?? source);
    if (!sizes.every(fits)) return undefined;
    // Every rung's size (paused ones too: a pause and a resume do not make a new scaler).
    const all = new Map<string, PictureSize>();
    for (const rung of this.#rungs) {
      const size = rung.pictureSize;
      if (size !== undefined && fits(size) && !isSource(size)) all.set(`${size.width}x${size.height}`, size);
    }
    if (all.size === 0) return undefined;
    const key = `${source.width}x${source.height}>${[...all.keys()].sort().join(',')}`;
    if (this.#scaler?.key !== key) {
      this.#scaler?.scaler?.close();
      let scaler: FrameScalerLike | undefined;
      try {
        scaler = create(source, [...all.values()], (error) => this.#scalerFailed(error, scaler));
      } catch (error) {
        this.#scalerFailed(error, undefined);
      }
      this.#scaler = { key, scaler };
    }
    return this.#scaler.scaler?.scale(frame, sizes);
  }

  /** The frame scaler failed: this source's encoders scale until its size or rung sizes change. */
  #scalerFailed(error: unknown, scaler: FrameScalerLike | undefined): void {
    this.#scalerError = errorMessage(error);
    if (this.#scaler !== undefined && this.#scaler.scaler === scaler) this.#scaler.scaler = undefined;
    scaler?.close();
    this.#options.logger.warn('frame scaler failed; the encoders scale this source', {
      broadcast: this.broadcast,
      error: this.#scalerError,
    });
  }

  /** Hands a clone of the source keyframe `frame` to `onKeyframe`, at most once per `keyframeTapMs`. */
  #tapKeyframe(frame: VideoFrameLike): void {
    const { onKeyframe, keyframeTapMs, now } = this.#options;
    if (onKeyframe === undefined) return;
    const at = now();
    if (at - this.#lastTapMs < keyframeTapMs) return;
    this.#lastTapMs = at;
    const copy = frame.clone();
    try {
      onKeyframe(this.broadcast, copy);
    } catch (error) {
      copy.close();
      this.#options.logger.warn('keyframe tap failed', { broadcast: this.broadcast, error: errorMessage(error) });
    }
  }

  /** A failure of `decoder` (ignored when that decoder was already replaced: one fault, one restart). */
  #fail(error: unknown, decoder: DecoderLike | undefined): void {
    if (decoder !== undefined && decoder !== this.#decoder) return;
    this.#lastError = errorMessage(error);
    this.#state = 'failed';
    this.#restarts += 1;
    const delay = this.#backoff.fail();
    this.#needKeyframe = true;
    // Samples the decoder took but never returned are lost for every rung.
    this.#dropForAll(this.#pending.size);
    this.#closeDecoder();
    this.#options.logger.warn('source decoder failed; retrying', {
      broadcast: this.broadcast,
      error: this.#lastError,
      retryMs: delay,
    });
  }

  #closeDecoder(): void {
    const decoder = this.#decoder;
    this.#decoder = undefined;
    this.#renewal.newDecoder();
    this.#decodedSinceFlush = false;
    this.#pending.clear();
    try {
      decoder?.close();
    } catch {
      // Closing a failed decoder may throw; it is gone either way.
    }
  }
}
