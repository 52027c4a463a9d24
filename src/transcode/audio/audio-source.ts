/**
 * `SharedAudioDecoder`: the one AAC decoder of a source session, shared by its audio renditions.
 * Every rendition submits every source fragment; the first submission of a fragment decodes it,
 * the rest are no-ops. Each decoded block (interleaved PCM, immutable) goes to every attached
 * rendition with its source timestamp in the source timescale.
 *
 * Errors: a failing decoder is closed and rebuilt with exponential back-off (`core/backoff.ts`);
 * the fragments that arrive meanwhile are not decoded (the renditions see a gap and start a new
 * encoder session after it). Every AAC packet decodes on its own, so no keyframe is awaited.
 */

import { describeInit, readSamples } from '../../container/index.ts';
import { Backoff } from '../../core/backoff.ts';
import { errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import type { Fragment, FragmentMeta } from '../../fragment/fragment.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import { TaskChain } from '../shared/task-chain.ts';
import type { AudioCodecs, AudioDecoderConfig, AudioDecoderLike, PcmBlock } from './audio-codecs.ts';
import { AUDIO_LADDER_TRANSCODER_NAME } from './audio-output.ts';

/** Source codecs the audio ladder decodes. */
const DECODABLE = /^mp4a\.40\.\d+$/;

/** Where a decoded block came from. */
export type BlockMeta = {
  /** Presentation time of the block's first sample, in `timescale` ticks. */
  readonly pts: number;
  readonly timescale: number;
  /** Wall-clock ms when its source fragment arrived at ingest (0 when unknown). */
  readonly ingestTimeMs: number;
};

/** What the shared decoder needs of each rendition it feeds. */
export interface AudioSink {
  /** A decoded block, shared by every rendition (never mutate `block.data`). */
  enqueue(block: PcmBlock, meta: BlockMeta): void;
  /**
   * The source's stream restarted with a new init (a publisher restart, a format change): the
   * blocks after this call begin a new timeline, which may start earlier than the last one.
   */
  newStream(): void;
}

/** Tunables and services of a shared audio decoder. */
export type SharedAudioDecoderOptions = {
  codecs: AudioCodecs;
  logger: Logger;
  metrics: LvqrMetrics | undefined;
  now: () => number;
  retryBaseMs: number;
  retryMaxMs: number;
};

/** Status of one source's audio decoder, for the API. */
export type AudioSourceStatus = {
  broadcast: string;
  codec: string;
  sampleRate: number | undefined;
  channels: number | undefined;
  decoderState: 'running' | 'failed' | 'unsupported';
  reason: string | undefined;
  decodedBlocks: number;
  restarts: number;
  lastError: string | undefined;
  renditions: number;
};

/** The one audio decoder of a source session. */
export class SharedAudioDecoder {
  readonly broadcast: string;
  readonly #options: SharedAudioDecoderOptions;
  readonly #sinks = new Set<AudioSink>();
  readonly #backoff: Backoff;
  #init: Uint8Array | undefined;
  #config: (AudioDecoderConfig & { timescale: number }) | undefined;
  #reason: string | undefined;
  #decoder: AudioDecoderLike | undefined;
  readonly #tasks = new TaskChain((error) => {
    this.#lastError = errorMessage(error);
  });
  /** Source timing of the samples given to the decoder, by decoder timestamp (µs). */
  #pending = new Map<number, BlockMeta>();
  #decodedBlocks = 0;
  #restarts = 0;
  #lastError: string | undefined;
  #state: 'running' | 'failed' = 'running';
  #finishing: Promise<void> | undefined;
  #closed = false;

  /** A decoder for `broadcast`, configured from `meta`'s init. */
  constructor(broadcast: string, meta: FragmentMeta, options: SharedAudioDecoderOptions) {
    this.broadcast = broadcast;
    this.#options = options;
    this.#backoff = new Backoff({ baseMs: options.retryBaseMs, maxMs: options.retryMaxMs, now: options.now });
    this.#configure(meta);
  }

  /** Sample rate and channels of the source, once its init is read. */
  get format(): { sampleRate: number; channels: number } | undefined {
    const c = this.#config;
    return c === undefined ? undefined : { sampleRate: c.sampleRate, channels: c.channels };
  }

  /** Adds a rendition. */
  attach(sink: AudioSink): void {
    this.#sinks.add(sink);
  }

  /** Removes a rendition; returns how many remain. */
  detach(sink: AudioSink): number {
    this.#sinks.delete(sink);
    return this.#sinks.size;
  }

  /** Decodes `fragment` unless another rendition already submitted it; `init` is the submitter's init. */
  submit(fragment: Fragment, init: Uint8Array | undefined): Promise<void> {
    if (this.#closed || init !== this.#init) return this.#tasks.tail;
    return this.#tasks.submitOnce(fragment.dts, fragment, () => this.#decodeFragment(fragment));
  }

  /**
   * Switches to a new init once (flushing the old stream first, then telling every rendition that
   * a new stream begins); later calls for it are no-ops.
   */
  reconfigure(meta: FragmentMeta): Promise<void> {
    if (meta.initSegment === this.#init || this.#closed) return this.#tasks.tail;
    this.#tasks.restartTimestamps();
    return this.#tasks.step(async () => {
      await this.#flushDecoder();
      this.#closeDecoder();
      this.#configure(meta);
      for (const sink of this.#sinks) sink.newStream();
    });
  }

  /** Flushes the decoder once at the end of the source. */
  finish(): Promise<void> {
    this.#finishing ??= this.#tasks.step(() => this.#flushDecoder());
    return this.#finishing;
  }

  /** Closes the decoder (idempotent). */
  close(): void {
    this.#closed = true;
    this.#closeDecoder();
    this.#sinks.clear();
  }

  /** Status for the API. */
  status(): AudioSourceStatus {
    const c = this.#config;
    return {
      broadcast: this.broadcast,
      codec: c?.codec ?? '',
      sampleRate: c?.sampleRate,
      channels: c?.channels,
      decoderState: this.#reason !== undefined ? 'unsupported' : this.#state,
      reason: this.#reason,
      decodedBlocks: this.#decodedBlocks,
      restarts: this.#restarts,
      lastError: this.#lastError,
      renditions: this.#sinks.size,
    };
  }

  #configure(meta: FragmentMeta): void {
    this.#init = meta.initSegment;
    this.#config = undefined;
    this.#reason = undefined;
    if (meta.initSegment === undefined) return;
    let track: ReturnType<typeof describeInit>[number] | undefined;
    try {
      track = describeInit(meta.initSegment).find((t) => t.kind === 'audio');
    } catch (error) {
      this.#reason = `unreadable init: ${errorMessage(error)}`;
      return;
    }
    if (track === undefined || !DECODABLE.test(track.codec) || track.description === undefined) {
      this.#reason = `codec ${track?.codec ?? 'none'} is not decoded here (AAC only)`;
      return;
    }
    this.#config = {
      codec: track.codec,
      sampleRate: track.sampleRate ?? 48_000,
      channels: track.channelCount ?? 2,
      description: track.description,
      timescale: track.timescale,
    };
  }

  #ensureDecoder(): AudioDecoderLike | undefined {
    if (this.#decoder !== undefined) return this.#decoder;
    const config = this.#config;
    if (config === undefined || this.#backoff.waiting) return undefined;
    let created: AudioDecoderLike | undefined;
    try {
      created = this.#options.codecs.createDecoder(
        config,
        (block) => this.#onBlock(block),
        (error) => this.#fail(error, created),
      );
      this.#decoder = created;
    } catch (error) {
      this.#fail(error, undefined);
    }
    return this.#decoder;
  }

  async #decodeFragment(fragment: Fragment): Promise<void> {
    const config = this.#config;
    if (config === undefined) return;
    const samples = readSamples(fragment.payload);
    for (const sample of samples) {
      const decoder = this.#ensureDecoder();
      if (decoder === undefined) return;
      let timestampUs = Math.round((sample.pts * 1_000_000) / config.timescale);
      // Blocks are matched to their meta by timestamp: a repeated one (a publisher that gave two
      // frames one time) is moved on by a microsecond, so each block keeps its own meta.
      while (this.#pending.has(timestampUs)) timestampUs += 1;
      this.#pending.set(timestampUs, {
        pts: sample.pts,
        timescale: config.timescale,
        ingestTimeMs: fragment.ingestTimeMs,
      });
      try {
        await decoder.decode({
          data: sample.data,
          timestampUs,
          durationUs: Math.round((sample.duration * 1_000_000) / config.timescale),
        });
      } catch (error) {
        this.#fail(error, decoder);
        return;
      }
    }
  }

  #onBlock(block: PcmBlock): void {
    const meta = this.#pending.get(block.timestampUs);
    if (meta === undefined) return;
    this.#pending.delete(block.timestampUs);
    this.#decodedBlocks += 1;
    this.#backoff.succeed();
    this.#state = 'running';
    for (const sink of this.#sinks) sink.enqueue(block, meta);
  }

  async #flushDecoder(): Promise<void> {
    const decoder = this.#decoder;
    if (decoder === undefined) return;
    try {
      await decoder.flush();
    } catch (error) {
      this.#fail(error, decoder);
    }
  }

  #closeDecoder(): void {
    const decoder = this.#decoder;
    this.#decoder = undefined;
    this.#pending.clear();
    try {
      decoder?.close();
    } catch {
      // A failed decoder may refuse to close; it is dropped either way.
    }
  }

  /** A failure of `decoder` (ignored when it was already replaced). */
  #fail(error: unknown, decoder: AudioDecoderLike | undefined): void {
    if (decoder !== undefined && decoder !== this.#decoder) return;
    this.#lastError = errorMessage(error);
    this.#state = 'failed';
    this.#restarts += 1;
    this.#options.metrics?.restarts.inc({ transcoder: AUDIO_LADDER_TRANSCODER_NAME, rendition: 'decoder' });
    const delayMs = this.#backoff.fail();
    this.#options.logger.warn('audio decoder failed; rebuilding', {
      broadcast: this.broadcast,
      error: this.#lastError,
      retryMs: delayMs,
    });
    this.#closeDecoder();
  }
}
