/**
 * One rung of one source: its frame queue, its encoder's life (created at a forced keyframe,
 * rebuilt with back-off after a failure, closed at a format change, a pause or the end), and the
 * glue between the shared decoder, the encoder and the rung's output.
 *
 * Back-pressure: `onFragment` waits while the queue is above half its bound; a queue that reaches
 * the bound drops whole GOPs (resumes at the next forced keyframe) and counts them.
 *
 * Bypass: a rung planned at exactly the source's size is encoded and published from the first
 * keyframe while the source's first whole GOP tells the source's bitrate. At or below the rung's
 * bitrate the rung is bypassed: its output is withdrawn (the HLS layer stops serving it at once),
 * the encoder closes, and the source variant serves that size; above it, the rung goes on. The
 * decision comes before the rung's second forced keyframe is encoded (from the GOP so far, when the
 * source's GOP is longer), and the rung's first segment can only complete at that keyframe: the
 * master playlist, which lists a rung once it has a complete segment, never lists a bypassed one.
 */

import { Backoff } from '../../core/backoff.ts';
import { errorMessage } from '../../core/errors.ts';
import type { Fragment, FragmentMeta } from '../../fragment/fragment.ts';
import type { EncodedChunk, EncoderLike, PictureSize, VideoFrameLike } from '../codecs.ts';
import type { RenditionSpec } from '../rendition.ts';
import { DrainQueue } from '../shared/drain-queue.ts';
import type { SessionLease } from '../shared/session-sources.ts';
import { SourceFeed } from '../shared/source-feed.ts';
import type { Transcoder, TranscoderContext, TranscoderStats } from '../transcoder.ts';
import { type FrameMeta, isFrame, type QueuedFrame, type QueueItem, type SourceFormat, ticksToUs } from './frames.ts';
import { RungLoad } from './load.ts';
import { notifyLadderEvent, type ResolvedLadderOptions, softQueueLimit } from './options.ts';
import type { RungLoadState, RungSample } from './overload.ts';
import { bypassReason, matchesSource, type PlannedRung, planRung, type SourceVideo } from './plan.ts';
import { RungOutput } from './rung-output.ts';
import { RungStats } from './rung-stats.ts';
import type { DecodedSource, RungSink } from './source-contract.ts';

/** How a rung reaches its source's shared decoder: attach on start, release on stop. */
export type SourceAttach = (broadcast: string, meta: FragmentMeta, rung: RungSink) => SourceLease;

/** A rung's hold on its source's decoder (the last rung to let go closes it). */
export type SourceLease = SessionLease<DecodedSource>;

/** Longest the bypass rule waits for the source's second keyframe, in media seconds. */
const BYPASS_DECISION_MAX_S = 4;

/** One rung of one source: encoder, CMAF packaging, publication. */
export class RungTranscoder implements Transcoder, RungSink {
  readonly rendition: RenditionSpec;
  readonly #options: ResolvedLadderOptions;
  readonly #attach: SourceAttach;
  readonly #stats: RungStats;
  readonly #load = new RungLoad();
  readonly #backoff: Backoff;
  #broadcast: string | undefined;
  #output: RungOutput | undefined;
  /** Plan of the encoder session (the format of the frames being encoded). */
  #plan: PlannedRung | undefined;
  #skipReason: string | undefined;
  /** Plan of the newest format enqueued (decides which incoming frames are kept). */
  #queuedPlan: PlannedRung | undefined;
  #encoder: EncoderLike | undefined;
  #encoderConfigKey = '';
  readonly #queue = new DrainQueue<QueueItem>((item) => this.#drainItem(item));
  readonly #sourceFeed: SourceFeed<DecodedSource>;
  #waitingForKey = false;
  #needKey = true;
  #inFlight = new Map<number, FrameMeta>();
  #state: 'starting' | 'running' | 'failed' | 'skipped' | 'bypassed' | 'ended' = 'starting';
  /** The bypass rule waits for the source's bitrate (a source-sized plan, published meanwhile). */
  #bypassPending = false;
  /** Forced keyframes the pending bypass rule has seen reach the encoder. */
  #pendingKeys = 0;
  /** The plan the bypass rule left to the source variant (its frames are not queued). */
  #bypassedPlan: PlannedRung | undefined;
  /** What encodes this rung's current session, when it differs from `codecs.backend` (a fallback). */
  #backend: string | undefined;
  #lastError: string | undefined;

  /** A rung for `rendition` that reaches its source's decoder through `attach`. */
  constructor(rendition: RenditionSpec, options: ResolvedLadderOptions, attach: SourceAttach) {
    this.rendition = rendition;
    this.#options = options;
    this.#attach = attach;
    this.#stats = new RungStats(rendition.name, options.metrics);
    this.#backoff = new Backoff({
      baseMs: options.retryBaseMs,
      maxMs: options.retryMaxMs,
      now: options.now,
      immediateRetries: 1,
    });
    // Back-pressure: `onFragment` holds the drain task while this rung's queue is above half its bound.
    this.#sourceFeed = new SourceFeed(this.#queue, softQueueLimit(options));
  }

  /** Rendition name. */
  get name(): string {
    return this.rendition.name;
  }

  onStart(ctx: TranscoderContext): void {
    this.#broadcast = ctx.broadcast;
    this.#output = new RungOutput({
      registry: this.#options.registry,
      logger: this.#options.logger,
      source: ctx.broadcast,
      rendition: this.rendition.name,
      onRefused: (message) => {
        this.#lastError = message;
      },
    });
    const lease = this.#attach(ctx.broadcast, ctx.meta, this);
    this.#sourceFeed.start(lease, ctx.meta);
    this.#replan(lease.source.video);
    this.#queuedPlan = this.#plan;
  }

  onFragment(fragment: Fragment): Promise<void> {
    return this.#sourceFeed.submit(fragment);
  }

  onMetaChange(meta: FragmentMeta): Promise<void> {
    // The decoder marks the format boundary in this rung's queue; the switch happens there, in order.
    return this.#sourceFeed.reconfigure(meta);
  }

  async onStop(): Promise<void> {
    const closing = async (): Promise<void> => {
      await this.#decideBypass(true);
      await this.#closeEncoder(true);
    };
    if (!(await this.#sourceFeed.stop(closing))) return;
    this.#output?.end();
    if (this.#state !== 'skipped' && this.#state !== 'bypassed') this.#state = 'ended';
    this.#queue.wake();
  }

  /** Items in the queue now (frames and the markers between them). */
  get queuedFrames(): number {
    return this.#queue.length;
  }

  /** Load state under the overload policy. */
  get loadState(): RungLoadState {
    return this.#load.state;
  }

  /** True from an encoder failure until the next encoder session publishes output. */
  get failed(): boolean {
    return this.#state === 'failed';
  }

  /** This interval's overload sample (whether the rung fell behind); starts the next interval. */
  takeLoadSample(nowMs: number, behindLagMs: number): RungSample {
    const oldest = this.#queue.items.find(isFrame);
    const waitingMs = oldest !== undefined && oldest.meta.dueMs > 0 ? nowMs - oldest.meta.dueMs : 0;
    return this.#load.sample(this.rendition.name, waitingMs, behindLagMs);
  }

  /** Applies an overload-policy step (a pause closes the encoder at that point of the queue). */
  setLoadState(state: RungLoadState): void {
    if (!this.#load.set(state) || state !== 'paused' || this.#queue.stopped) return;
    this.#dropQueuedFrames();
    this.#queue.push({ suspend: true });
  }

  /** The size of the pictures this rung encodes next (none while the source variant serves it). */
  get pictureSize(): PictureSize | undefined {
    const plan = this.#queuedPlan;
    if (plan === undefined || plan === this.#bypassedPlan || this.#queue.stopped) return undefined;
    return { width: plan.width, height: plan.height };
  }

  /** A frame from the shared decoder (a clone, or a picture at `pictureSize`), which this rung now owns. */
  enqueue(frame: VideoFrameLike, meta: FrameMeta): void {
    if (this.#queuedPlan === undefined || this.#queuedPlan === this.#bypassedPlan || this.#queue.stopped) {
      frame.close();
      return;
    }
    this.#stats.countIn();
    if (this.#load.drops(meta.forceKey)) {
      frame.close();
      this.countDropped(1);
      return;
    }
    if (this.#waitingForKey) {
      if (!meta.forceKey) {
        frame.close();
        this.countDropped(1);
        return;
      }
      this.#waitingForKey = false;
    }
    if (this.#queue.length >= this.#options.maxQueuedFrames) {
      // Cannot keep up: drop the queued frames and everything up to the next forced keyframe
      // (format boundaries stay: they are not media).
      const dropped = this.#dropQueuedFrames();
      this.#load.noteOverflow();
      this.#options.logger.warn('rung behind; dropping to the next keyframe', {
        broadcast: this.#broadcast,
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
    this.#stats.noteHeld(this.#queue.length);
  }

  /**
   * Gives each queued frame a new handle and closes the old one (a clone shares the pixels: about
   * a microsecond). The addon gives a frame's pixels back to the decoder's picture pool only when
   * the handle is collected; a handle that outlives two young-generation collections is left to a
   * rare full collection, and the pool grows to every such frame meanwhile and keeps that size:
   * eight 720p frames held in turn by a queue left the process ~490 MB larger for good, 13 MB with
   * their handles renewed (bench/frame-handles.ts). The shared decoder calls this before each of
   * its collections.
   */
  renewFrameHandles(): void {
    for (const item of this.#queue.items) {
      if (!isFrame(item)) continue;
      let fresh: VideoFrameLike;
      try {
        fresh = item.frame.clone();
      } catch {
        continue; // a handle that cannot be cloned stays as it is
      }
      item.frame.close();
      item.frame = fresh;
    }
  }

  /** Drops (and counts) every queued frame; format and suspend markers stay, they are not media. */
  #dropQueuedFrames(): number {
    const dropped = this.#queue.remove(isFrame);
    for (const q of dropped) q.frame.close();
    this.countDropped(dropped.length);
    return dropped.length;
  }

  /** The boundary between the last frame of an init and the first of the next. */
  enqueueFormat(format: SourceFormat): void {
    if (this.#queue.stopped) return;
    const planned = planRung(format.video, this.rendition);
    this.#queuedPlan = typeof planned === 'string' ? undefined : planned;
    // The first frame of the new format is a forced keyframe: no GOP of the old one to wait out.
    this.#waitingForKey = false;
    this.#queue.push({ format });
  }

  /** Resolves once this rung's frame queue is below `limit` (or the rung stops). */
  async waitForRoom(limit: number): Promise<void> {
    await this.#queue.waitWhile((length) => length >= limit);
  }

  /** Counts source frames this rung did not encode. */
  countDropped(frames: number): void {
    this.#stats.countDropped(frames);
  }

  stats(): TranscoderStats {
    const source = this.#sourceFeed.source;
    return {
      state: this.#state === 'running' && this.#load.state === 'paused' ? 'paused' : this.#state,
      load: this.#load.state,
      output: this.#output?.name ?? '',
      width: this.#plan?.width,
      height: this.#plan?.height,
      frameRate: this.#plan?.frameRate ?? source?.frameRate(),
      backend: this.#backend ?? this.#options.codecs.backend,
      skippedReason: this.#skipReason,
      // A source-sized rung published while the bypass rule still measures its source.
      ...(this.#bypassPending ? { bypassMeasuring: true } : {}),
      queuedFrames: this.#queue.length,
      lastError: this.#lastError,
      ...this.#stats.snapshot(this.#options.now()),
    };
  }

  #replan(video: SourceVideo): void {
    const planned = planRung(video, this.rendition);
    this.#bypassPending = false;
    this.#pendingKeys = 0;
    this.#bypassedPlan = undefined;
    if (typeof planned === 'string') {
      this.#plan = undefined;
      this.#skipReason = planned;
      this.#state = 'skipped';
    } else {
      this.#plan = planned;
      this.#skipReason = undefined;
      if (this.#state === 'skipped' || this.#state === 'bypassed' || this.#state === 'starting')
        this.#state = 'running';
      this.#bypassPending = matchesSource(planned, video);
    }
  }

  /**
   * The bypass rule, while a source-sized plan waits: decides once the source's first whole GOP
   * is measured, or after `BYPASS_DECISION_MAX_S` of it, or (`now`) at once from the GOP so far:
   * before the rung's second forced keyframe (which may complete the rung's first segment), at a
   * pause, a format change or the end. A bypassed rung's output is withdrawn.
   */
  async #decideBypass(now: boolean): Promise<void> {
    const plan = this.#plan;
    const source = this.#sourceFeed.source;
    if (!this.#bypassPending || plan === undefined || source === undefined) return;
    const { bitrate } = source;
    let sourceBps = bitrate.bps;
    if (sourceBps === undefined && (now || bitrate.seconds >= BYPASS_DECISION_MAX_S)) sourceBps = bitrate.partialBps();
    if (sourceBps === undefined && !now) return;
    this.#bypassPending = false;
    const reason = bypassReason(plan, source.video, sourceBps);
    if (reason === undefined) return;
    this.#bypassedPlan = plan;
    this.#skipReason = reason;
    this.#state = 'bypassed';
    this.#options.logger.info('rung bypassed', { output: this.#output?.name, reason });
    this.#output?.withdraw();
    await this.#closeEncoder(false);
  }

  /** Handles one queued item: a pause, a format boundary or a frame to encode. */
  async #drainItem(item: QueueItem): Promise<void> {
    if ('suspend' in item) {
      // Paused: free the encoder; the next session starts at a forced keyframe after resuming.
      await this.#decideBypass(true);
      this.countDropped(this.#inFlight.size);
      await this.#closeEncoder(false);
      this.#needKey = true;
      return;
    }
    if (!isFrame(item)) {
      await this.#switchFormat(item.format);
      return;
    }
    if (item.meta.dueMs > 0) {
      const nowMs = this.#options.now();
      this.#load.noteLag(nowMs - item.meta.dueMs, nowMs);
    }
    try {
      await this.#encode(item);
    } finally {
      item.frame.close();
    }
    if (this.#queue.length <= softQueueLimit(this.#options)) this.#queue.wake();
  }

  /**
   * The source switched to a new init: finish the encoder session (its tail is published under the
   * old plan), re-plan, and start the next session with a new init, or end the output.
   */
  async #switchFormat(format: SourceFormat): Promise<void> {
    await this.#decideBypass(true);
    await this.#closeEncoder(true);
    this.#output?.restart();
    this.#needKey = true;
    this.#replan(format.video);
    if (this.#plan === undefined) this.#output?.end();
  }

  async #encode({ frame, meta }: QueuedFrame): Promise<void> {
    // A rung keyframe after its first may complete the rung's first segment: the rule decides before.
    if (this.#bypassPending && meta.forceKey) this.#pendingKeys += 1;
    await this.#decideBypass(this.#pendingKeys > 1);
    if (this.#plan !== undefined && this.#plan === this.#bypassedPlan) return;
    const source = this.#sourceFeed.source;
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
    const source = this.#sourceFeed.source;
    if (plan === undefined || source === undefined) return undefined;
    const framerate = plan.frameRate ?? source.frameRate() ?? (meta.duration > 0 ? meta.timescale / meta.duration : 30);
    const key = `${plan.width}x${plan.height}@${plan.videoBitrateBps}`;
    if (this.#encoder !== undefined && this.#encoderConfigKey === key) return this.#encoder;
    if (this.#backoff.waiting) return undefined;
    if (!meta.forceKey) return undefined;
    const { codecs } = this.#options;
    let created: EncoderLike | undefined;
    try {
      created = codecs.createEncoder(
        { width: plan.width, height: plan.height, bitrateBps: plan.videoBitrateBps, framerate },
        (chunk) => this.#onChunk(chunk),
        (error) => this.#fail(error, created),
      );
      this.#encoder = created;
      this.#encoderConfigKey = key;
      this.#needKey = true;
      this.#load.noteSessionStart();
      this.#backend = undefined;
      this.#stats.noteBackend(codecs.backend);
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
    this.#load.noteOutput();
    this.#publishChunk(chunk, meta);
  }

  #publishChunk(chunk: EncodedChunk, meta: FrameMeta): void {
    const source = this.#sourceFeed.source;
    const plan = this.#plan;
    if (source === undefined || plan === undefined || this.#output === undefined) return;
    if (chunk.softwareEncoder !== undefined) this.#noteFallback(chunk.softwareEncoder);
    const bytes = this.#output.publish(chunk, meta, plan, plan.frameRate ?? source.frameRate());
    if (bytes === undefined) {
      // Encoded but not published (no output claim yet, or a time the output already has).
      this.countDropped(1);
      return;
    }
    this.#stats.countOutput(this.#options.now(), meta, bytes);
    this.#backoff.succeed();
    if (this.#state === 'failed') {
      this.#state = 'running';
      notifyLadderEvent(this.#options.onEvent, {
        kind: 'rung_recovered',
        broadcast: this.#broadcast ?? '',
        rendition: this.rendition.name,
      });
    }
  }

  /** The encoder session asked for hardware was served by `softwareEncoder`. */
  #noteFallback(softwareEncoder: string): void {
    const { codecs, logger } = this.#options;
    this.#backend = 'software';
    this.#stats.noteFallback(codecs.backend, softwareEncoder);
    logger.warn('prefer-hardware: this encoder session runs in software', {
      output: this.#output?.name,
      asked: codecs.backend,
      encoder: softwareEncoder,
    });
  }

  /** A failure of `encoder` (ignored when that encoder was already replaced: one fault, one restart). */
  #fail(error: unknown, encoder: EncoderLike | undefined): void {
    if (encoder !== undefined && encoder !== this.#encoder) return;
    this.#lastError = errorMessage(error);
    if (this.#state !== 'failed') {
      notifyLadderEvent(this.#options.onEvent, {
        kind: 'rung_failed',
        broadcast: this.#broadcast ?? '',
        rendition: this.rendition.name,
        error: this.#lastError,
      });
    }
    this.#state = 'failed';
    this.#stats.countRestart();
    const delay = this.#backoff.fail();
    this.#options.logger.warn('rung encoder failed; rebuilding', {
      output: this.#output?.name,
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
}
