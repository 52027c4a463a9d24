/**
 * `AudioRenditionTranscoder`: one audio rendition (AAC-LC or Opus at one bitrate) of one source.
 * It takes the decoded blocks of its source's `SharedAudioDecoder`, keeps them on one continuous
 * timeline (small gaps filled with silence, small overlaps trimmed, a block a little back inside
 * what was encoded dropped, a larger jump starts a new encoder session), encodes them, and publishes
 * one CMAF fragment per packet (`AudioOutput`), timed by `PacketClock` so the output keeps the
 * source timeline to the sample.
 *
 * Back-pressure: `onFragment` waits while the block queue is above half its bound; a queue that
 * reaches the bound is dropped (counted) and the timeline resumes after the gap.
 * Errors: a failing encoder is closed and rebuilt with exponential back-off; blocks that arrive
 * meanwhile are dropped and counted; other renditions never notice.
 */

import { Backoff } from '../../core/backoff.ts';
import { errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { Fragment, FragmentMeta } from '../../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../../fragment/registry.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import type { RenditionSpec } from '../rendition.ts';
import { DrainQueue } from '../shared/drain-queue.ts';
import type { SessionLease } from '../shared/session-sources.ts';
import { SourceFeed } from '../shared/source-feed.ts';
import type { Transcoder, TranscoderContext, TranscoderStats } from '../transcoder.ts';
import type { AudioCodecs, AudioEncoderLike, AudioPacket, PcmBlock } from './audio-codecs.ts';
import { AUDIO_LADDER_TRANSCODER_NAME, AudioOutput } from './audio-output.ts';
import type { AudioSink, BlockMeta, SharedAudioDecoder } from './audio-source.ts';
import { AAC_SHAPE, OPUS_EXPECTED_PRE_SKIP, opusShape, PacketClock } from './audio-timeline.ts';
import { OPUS_FRAME_SAMPLES, opusPacketBytes, padOpusPacket } from './opus-padding.ts';

/** What an audio rendition produces. */
export type AudioRenditionTarget = { codec: 'aac' | 'opus'; bitrateKbps: number };

/** Services and tunables of an audio rendition. */
export type AudioRenditionOptions = {
  codecs: AudioCodecs;
  registry: FragmentBroadcasterRegistry;
  logger: Logger;
  metrics: LvqrMetrics | undefined;
  now: () => number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Decoded blocks queued per rendition before it drops them (default 200, about 4 s of AAC). */
  maxQueuedBlocks?: number;
};

/** How a rendition reaches its source's shared decoder. */
export type AudioSourceLease = SessionLease<SharedAudioDecoder>;

const DEFAULT_MAX_QUEUED_BLOCKS = 200;
/** Longest gap in the source filled with silence, seconds; a longer one starts a new session. */
const MAX_FILL_S = 0.5;

type Session = { encoder: AudioEncoderLike; clock: PacketClock; sampleRate: number; channels: number };

/** Queue marker: the source's stream restarted (`AudioSink.newStream`). */
const NEW_STREAM = 'new-stream';
type QueueItem = { block: PcmBlock; meta: BlockMeta } | typeof NEW_STREAM;

/** Interleaved frames `from`.. of `block`, as a new block starting `from` frames later. */
function sliceBlock(block: PcmBlock, from: number): PcmBlock {
  return {
    timestampUs: block.timestampUs + Math.round((from * 1_000_000) / block.sampleRate),
    sampleRate: block.sampleRate,
    channels: block.channels,
    frames: block.frames - from,
    data: block.data.subarray(from * block.channels),
  };
}

/** One audio rendition of one source: encoder sessions, packet timing, publication. */
export class AudioRenditionTranscoder implements Transcoder, AudioSink {
  readonly rendition: RenditionSpec;
  readonly target: AudioRenditionTarget;
  readonly #options: AudioRenditionOptions;
  readonly #attach: (ctx: TranscoderContext, sink: AudioSink) => AudioSourceLease;
  readonly #backoff: Backoff;
  readonly #labels: { transcoder: string; rendition: string };
  #output: AudioOutput | undefined;
  #session: Session | undefined;
  readonly #queue = new DrainQueue<QueueItem>((item) => this.#drainItem(item));
  readonly #sourceFeed: SourceFeed<SharedAudioDecoder>;
  #state: 'starting' | 'running' | 'failed' | 'skipped' | 'ended' = 'starting';
  #skipReason: string | undefined;
  #lastError: string | undefined;
  #lastIngestMs = 0;
  #blocksIn = 0;
  #packetsOut = 0;
  #bytesOut = 0;
  #payloadBytes = 0;
  #mediaTicks = 0;
  #mediaRate = 0;
  #dropped = 0;
  #restarts = 0;
  #sessions = 0;

  /** A rendition producing `target`, reaching its source's decoder through `attach`. */
  constructor(
    rendition: RenditionSpec,
    target: AudioRenditionTarget,
    options: AudioRenditionOptions,
    attach: (ctx: TranscoderContext, sink: AudioSink) => AudioSourceLease,
  ) {
    this.rendition = rendition;
    this.target = target;
    this.#options = options;
    this.#attach = attach;
    this.#labels = { transcoder: AUDIO_LADDER_TRANSCODER_NAME, rendition: rendition.name };
    this.#backoff = new Backoff({ baseMs: options.retryBaseMs, maxMs: options.retryMaxMs, now: options.now });
    this.#sourceFeed = new SourceFeed(this.#queue, (options.maxQueuedBlocks ?? DEFAULT_MAX_QUEUED_BLOCKS) / 2);
  }

  onStart(ctx: TranscoderContext): void {
    this.#output = new AudioOutput({
      registry: this.#options.registry,
      source: ctx.broadcast,
      rendition: this.rendition.name,
      onRefused: (message) => {
        this.#lastError = message;
      },
    });
    this.#sourceFeed.start(this.#attach(ctx, this), ctx.meta);
    this.#state = 'running';
  }

  onFragment(fragment: Fragment): Promise<void> {
    return this.#sourceFeed.submit(fragment);
  }

  onMetaChange(meta: FragmentMeta): Promise<void> {
    return this.#sourceFeed.reconfigure(meta);
  }

  async onStop(): Promise<void> {
    if (!(await this.#sourceFeed.stop(() => this.#endSession()))) return;
    this.#output?.end();
    if (this.#state !== 'skipped') this.#state = 'ended';
    this.#queue.wake();
  }

  /** A decoded block of the source (shared: never mutated here). */
  enqueue(block: PcmBlock, meta: BlockMeta): void {
    if (this.#queue.stopped) return;
    this.#blocksIn += 1;
    const max = this.#options.maxQueuedBlocks ?? DEFAULT_MAX_QUEUED_BLOCKS;
    if (this.#queue.length >= max) {
      this.#countDropped(this.#queue.remove((item) => item !== NEW_STREAM).length);
      this.#options.logger.warn('audio rendition behind; dropping its queue', { output: this.#output?.name });
    }
    this.#queue.push({ block, meta });
  }

  newStream(): void {
    if (!this.#queue.stopped) this.#queue.push(NEW_STREAM);
  }

  stats(): TranscoderStats {
    return {
      state: this.#state,
      kind: 'audio',
      codec: this.target.codec === 'aac' ? 'mp4a.40.2' : 'opus',
      bitrateKbps: this.target.bitrateKbps,
      output: this.#output?.name ?? '',
      skippedReason: this.#skipReason,
      framesIn: this.#blocksIn,
      framesOut: this.#packetsOut,
      bytesOut: this.#bytesOut,
      droppedFrames: this.#dropped,
      restarts: this.#restarts,
      sessions: this.#sessions,
      queuedFrames: this.#queue.length,
      outputBitrateBps:
        this.#mediaTicks > 0 ? Math.round((this.#payloadBytes * 8 * this.#mediaRate) / this.#mediaTicks) : undefined,
      lastError: this.#lastError,
    };
  }

  #countDropped(blocks: number): void {
    if (blocks <= 0) return;
    this.#dropped += blocks;
    this.#options.metrics?.droppedFragments.inc(this.#labels, blocks);
  }

  /**
   * Encodes one queued block, or at a new stream of the source ends the encoder session (its last
   * packets are published) and restarts the output's timeline. A failure is recorded, never thrown
   * into the queue.
   */
  async #drainItem(item: QueueItem): Promise<void> {
    try {
      if (item === NEW_STREAM) {
        await this.#endSession();
        this.#output?.restart();
      } else {
        await this.#encodeBlock(item.block, item.meta);
      }
    } catch (error) {
      this.#lastError = errorMessage(error);
    }
    this.#queue.wake();
  }

  async #encodeBlock(input: PcmBlock, meta: BlockMeta): Promise<void> {
    let block = input;
    this.#lastIngestMs = meta.ingestTimeMs;
    if (this.target.codec === 'opus' && block.sampleRate !== 48_000) {
      this.#skip(`Opus needs a 48 kHz source (this one is ${block.sampleRate} Hz; no resampler here)`);
      return;
    }
    // The block's place in output ticks (one tick per sample).
    let at = Math.round((meta.pts * block.sampleRate) / meta.timescale);
    let session = this.#session;
    if (session !== undefined && (session.sampleRate !== block.sampleRate || session.channels !== block.channels)) {
      await this.#endSession();
      session = undefined;
    }
    if (session !== undefined) {
      const gap = at - session.clock.end;
      if (gap > 0 && gap <= block.sampleRate * MAX_FILL_S) {
        // A short hole in the source: silence keeps the timeline continuous.
        const silence = new Float32Array(gap * block.channels);
        await this.#feed(session, { ...block, frames: gap, data: silence }, -gap);
      } else if (gap < 0 && -gap < block.frames) {
        block = sliceBlock(block, -gap);
        at -= gap;
      } else if (gap < 0 && -gap <= block.sampleRate * MAX_FILL_S) {
        // A block wholly inside what was already encoded, a little back (a repeated frame time:
        // ffmpeg's per-frame fragmenting gives a file's last two AAC frames one time): dropped, so
        // the rendition stays on the source's timeline instead of starting a new one.
        this.#countDropped(1);
        return;
      } else if (gap !== 0) {
        await this.#endSession();
        session = undefined;
      }
    }
    if (session === undefined) {
      if (this.#backoff.waiting) {
        this.#countDropped(1);
        return;
      }
      // Opus packet 0 starts pre_skip samples before the input: start late enough to stay >= 0.
      const lead = this.target.codec === 'opus' ? Math.max(0, OPUS_EXPECTED_PRE_SKIP - at) : 0;
      if (lead >= block.frames) return;
      if (lead > 0) {
        block = sliceBlock(block, lead);
        at += lead;
      }
      // A timeline that went back without a new init (e.g. the source's own clock jumped back)
      // is a new stream too: published as-is, its packets would be dropped as out of order.
      if (this.#output?.precedes(at) === true) this.#output.restart();
      session = this.#startSession(block, at);
      if (session === undefined) {
        this.#countDropped(1);
        return;
      }
    }
    await this.#feed(session, block, 0);
  }

  async #feed(session: Session, block: PcmBlock, shiftFrames: number): Promise<void> {
    session.clock.feed(block.frames);
    const timestampUs = block.timestampUs + Math.round((shiftFrames * 1_000_000) / block.sampleRate);
    try {
      await session.encoder.encode({ ...block, timestampUs });
    } catch (error) {
      this.#fail(error, session.encoder);
    }
  }

  #startSession(block: PcmBlock, at: number): Session | undefined {
    const { codec, bitrateKbps } = this.target;
    const shape = codec === 'aac' ? AAC_SHAPE : opusShape(OPUS_EXPECTED_PRE_SKIP);
    const clock = new PacketClock(at, shape);
    const format = { sampleRate: block.sampleRate, channels: block.channels };
    let session: Session | undefined;
    try {
      const encoder = this.#options.codecs.createEncoder(
        { codec, ...format, bitrateBps: bitrateKbps * 1000 },
        (packet) => {
          if (session !== undefined) this.#onPacket(session, packet);
        },
        (error) => this.#fail(error, session?.encoder),
      );
      session = { encoder, clock, ...format };
    } catch (error) {
      this.#fail(error, undefined);
      return undefined;
    }
    this.#session = session;
    this.#sessions += 1;
    if (this.#state === 'failed') this.#state = 'running';
    return session;
  }

  #onPacket(session: Session, packet: AudioPacket): void {
    const output = this.#output;
    if (output === undefined) return;
    if (packet.description !== undefined) {
      if (this.target.codec === 'opus' && packet.description.byteLength >= 12) {
        const preSkip = packet.description[10]! | (packet.description[11]! << 8);
        session.clock.reshape(opusShape(preSkip));
      }
      output.configure({
        codec: this.target.codec,
        sampleRate: session.sampleRate,
        channels: session.channels,
        bitrateBps: this.target.bitrateKbps * 1000,
        description: packet.description,
      });
    }
    const time = session.clock.next();
    if (time === undefined) return;
    // Opus is made constant-bitrate by padding (see opus-padding.ts); AAC holds its rate itself.
    const data =
      this.target.codec === 'opus'
        ? padOpusPacket(packet.data, opusPacketBytes(this.target.bitrateKbps * 1000, OPUS_FRAME_SAMPLES, 48_000))
        : packet.data;
    const bytes = output.publish(data, time, this.#lastIngestMs);
    if (bytes === undefined) return;
    this.#packetsOut += 1;
    this.#bytesOut += bytes;
    this.#payloadBytes += data.byteLength;
    this.#mediaTicks += time.duration;
    this.#mediaRate = session.sampleRate;
    this.#backoff.succeed();
    const metrics = this.#options.metrics;
    metrics?.outputFragments.inc(this.#labels);
    metrics?.outputBytes.inc(this.#labels, bytes);
    if (this.#lastIngestMs > 0)
      metrics?.latency.observe(this.#labels, (this.#options.now() - this.#lastIngestMs) / 1000);
  }

  /** Flushes and closes the current session (its last packets are published). */
  async #endSession(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (session === undefined) return;
    try {
      await session.encoder.flush();
    } catch (error) {
      this.#lastError = errorMessage(error);
    } finally {
      try {
        session.encoder.close();
      } catch {
        // already closed
      }
    }
  }

  #skip(reason: string): void {
    if (this.#state === 'skipped') return;
    this.#state = 'skipped';
    this.#skipReason = reason;
    this.#options.logger.warn('audio rendition skipped', { output: this.#output?.name, reason });
  }

  /** A failure of `encoder` (ignored when it was already replaced: one fault, one restart). */
  #fail(error: unknown, encoder: AudioEncoderLike | undefined): void {
    if (encoder !== undefined && encoder !== this.#session?.encoder) return;
    this.#lastError = errorMessage(error);
    this.#state = 'failed';
    this.#restarts += 1;
    this.#options.metrics?.restarts.inc(this.#labels);
    const delayMs = this.#backoff.fail();
    this.#options.logger.warn('audio encoder failed; rebuilding', {
      output: this.#output?.name,
      error: this.#lastError,
      retryMs: delayMs,
    });
    const failed = this.#session;
    this.#session = undefined;
    try {
      failed?.encoder.close();
    } catch {
      // A failed encoder may refuse to close; it is dropped either way.
    }
  }
}
