/**
 * `H264Decoder`: a WebCodecs `VideoDecoder` with the corrections live transcoding needs:
 * presentation timestamps restored from the inputs, durations carried,
 * bounded queue, a macrotask yield per call, deltas refused after a gap/flush/reset/error,
 * every frame closed, an injected `gc` run every N frames.
 */

import { argumentError, CodecError, errorMessage } from '../core/errors.ts';
import { Signal, yieldMacrotask } from '../core/yield.ts';
import { detachable } from './detachable.ts';
import { MinHeap } from './min-heap.ts';
import type {
  HardwareAccelerationPort,
  VideoDecoderConfigPort,
  VideoDecoderPort,
  VideoFramePort,
  WebCodecs,
} from './port.ts';
import { QueueCount } from './queue-count.ts';

/** One encoded access unit to decode (length-prefixed NAL units, as in MP4). */
export type EncodedVideoSample = {
  data: Uint8Array;
  /** Presentation timestamp, microseconds. */
  timestampUs: number;
  /** Duration, microseconds. */
  durationUs: number;
  /** True for a sync sample (IDR). */
  keyframe: boolean;
  /** Decode timestamp, microseconds. Optional; when given, a jump in it is treated as a gap. */
  decodeTimestampUs?: number;
};

/** Why the decoder currently refuses delta frames. */
export type KeyframeWaitReason = 'start' | 'gap' | 'flush' | 'reset' | 'error';

/** What `decode()` did with a sample: queued, or refused because a keyframe is required first. */
export type DecodeOutcome = { queued: true } | { queued: false; reason: KeyframeWaitReason };

/** Facts about a decoded frame; `timestampUs`/`durationUs` are also set on the frame itself. */
export type DecodedFrameMeta = {
  /** Presentation timestamp restored from the inputs, microseconds. */
  timestampUs: number;
  /** Duration carried from the input with this presentation timestamp, microseconds. */
  durationUs: number;
  /** The timestamp the underlying decoder attached (wrong with B-frames in @napi-rs/webcodecs 1.3.1). */
  decoderTimestampUs: number;
  /** Output counter since construction. */
  index: number;
};

/** Options of `H264Decoder`. */
export type H264DecoderOptions = {
  /** RFC 6381 codec string, e.g. `avc1.64001f`. */
  codec: string;
  /** The `avcC` payload (box body without its 8-byte header). */
  description: Uint8Array;
  codedWidth?: number;
  codedHeight?: number;
  /**
   * Receives each decoded frame in presentation order. The frame is valid until the handler
   * returns (or until its returned promise settles); the decoder closes it afterwards, so clone
   * it to keep it longer. A pending promise counts against `maxQueue` (end-to-end back-pressure).
   */
  onFrame(frame: VideoFramePort, meta: DecodedFrameMeta): void | Promise<void>;
  /** Decoder failures and handler failures. The decoder recovers at the next keyframe. */
  onError(error: CodecError): void;
  /** Bound on unsettled `onFrame` promises (default 8). The native decoder is handed one sample at a time. */
  maxQueue?: number;
  /** Called every `gcEveryFrames` decoded frames (native frame memory is freed only on GC). */
  gc?: () => void;
  /** Default 30. */
  gcEveryFrames?: number;
  hardwareAcceleration?: HardwareAccelerationPort;
};

/** Counters of an `H264Decoder`. */
export type H264DecoderStats = {
  queued: number;
  decoded: number;
  skippedDeltas: number;
  gaps: number;
  flushes: number;
  errors: number;
  /** Outputs whose decoder timestamp differed from the restored presentation timestamp. */
  restamped: number;
  /** Outputs with no pending input timestamp left (should stay 0). */
  unmatchedOutputs: number;
  gcRuns: number;
  awaitingKeyframe: KeyframeWaitReason | undefined;
  decodeQueueSize: number;
  pendingHandlers: number;
};

const ROOM_POLL_MS = 20;

/**
 * Samples handed to the native decoder at once. Its `decode()` waits for the lock that its thread
 * holds while it decodes a sample (FFmpeg's frame threads still decode several in parallel behind
 * it): a second queued sample only blocks the JavaScript thread. Measured on the 1080p ladder
 * (bench/run-ladder.ts): 7.3 s with one, 7.5 s with eight.
 */
const NATIVE_DEPTH = 1;

/**
 * H.264 decoder over a WebCodecs port. Call `decode()` sequentially or not: calls are serialized.
 * After `flush()` (a latency tool at a fragment boundary that is followed by a keyframe) the next
 * sample must be a keyframe: deltas are refused until one comes.
 */
export class H264Decoder {
  readonly #codecs: WebCodecs;
  readonly #config: VideoDecoderConfigPort;
  readonly #onFrame: H264DecoderOptions['onFrame'];
  readonly #onError: H264DecoderOptions['onError'];
  readonly #maxQueue: number;
  readonly #gc: (() => void) | undefined;
  readonly #gcEveryFrames: number;
  readonly #room = new Signal();
  readonly #queue = new QueueCount();
  readonly #pts = new MinHeap();
  readonly #durations = new Map<number, number>();
  #native: VideoDecoderPort;
  /** Per native decoder: cuts its callbacks off this instance once it is closed (detachable.ts). */
  readonly #detachers = new WeakMap<VideoDecoderPort, () => void>();
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #awaiting: KeyframeWaitReason | undefined = 'start';
  #maxQueuedPts = Number.NEGATIVE_INFINITY;
  #lastDts: number | undefined;
  #lastDuration = 0;
  #framesSinceGc = 0;
  #pendingHandlers = 0;
  #stats = {
    queued: 0,
    decoded: 0,
    skippedDeltas: 0,
    gaps: 0,
    flushes: 0,
    errors: 0,
    restamped: 0,
    unmatchedOutputs: 0,
    gcRuns: 0,
  };

  constructor(codecs: WebCodecs, options: H264DecoderOptions) {
    if (typeof options.codec !== 'string' || !/^avc[13]\./.test(options.codec)) {
      throw argumentError('codec', 'an H.264 codec string such as "avc1.64001f"', options.codec);
    }
    if (!(options.description instanceof Uint8Array) || options.description.length < 7) {
      throw argumentError('description', 'the avcC payload as a Uint8Array', options.description);
    }
    if (typeof options.onFrame !== 'function') throw argumentError('onFrame', 'a function', options.onFrame);
    if (typeof options.onError !== 'function') throw argumentError('onError', 'a function', options.onError);
    const maxQueue = options.maxQueue ?? 8;
    if (!Number.isInteger(maxQueue) || maxQueue < 1) throw argumentError('maxQueue', 'an integer >= 1', maxQueue);
    const gcEveryFrames = options.gcEveryFrames ?? 30;
    if (!Number.isInteger(gcEveryFrames) || gcEveryFrames < 1) {
      throw argumentError('gcEveryFrames', 'an integer >= 1', gcEveryFrames);
    }
    this.#codecs = codecs;
    this.#onFrame = options.onFrame;
    this.#onError = options.onError;
    this.#maxQueue = maxQueue;
    this.#gc = options.gc;
    this.#gcEveryFrames = gcEveryFrames;
    this.#config = {
      codec: options.codec,
      description: options.description.slice(),
      // FFmpeg low-delay: holds 2 instead of 4 frames with B-frames; output order is unchanged (measured).
      optimizeForLatency: true,
      ...(options.codedWidth === undefined ? {} : { codedWidth: options.codedWidth }),
      ...(options.codedHeight === undefined ? {} : { codedHeight: options.codedHeight }),
      ...(options.hardwareAcceleration === undefined ? {} : { hardwareAcceleration: options.hardwareAcceleration }),
    };
    this.#native = this.#createNative();
  }

  /** Why deltas are refused right now, or undefined when the decoder accepts any sample. */
  get awaitingKeyframe(): KeyframeWaitReason | undefined {
    return this.#awaiting;
  }

  /** True once `close()` ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Counters and queue depths. */
  stats(): H264DecoderStats {
    return {
      ...this.#stats,
      awaitingKeyframe: this.#awaiting,
      decodeQueueSize: this.#closed ? 0 : this.#queue.value,
      pendingHandlers: this.#pendingHandlers,
    };
  }

  /**
   * Queues one sample. Waits while the native queue (or unsettled `onFrame` work) is at
   * `maxQueue`, and always yields one macrotask so outputs are delivered. Resolves with
   * `{queued: false, reason}` when a delta is refused because a keyframe is required first.
   */
  decode(sample: EncodedVideoSample): Promise<DecodeOutcome> {
    this.#checkSample(sample);
    return this.#serial(() => this.#decodeOne(sample));
  }

  /** Marks a gap in the input (e.g. the producer dropped samples): deltas are refused until a keyframe. */
  markGap(): void {
    if (this.#closed) return;
    this.#stats.gaps++;
    this.#awaiting = 'gap';
  }

  /**
   * Emits every frame the decoder still holds (it keeps the last reordered frames until more input
   * arrives), then resets the timestamp bookkeeping. The next sample must be a keyframe.
   */
  flush(): Promise<void> {
    return this.#serial(async () => {
      this.#throwIfClosed();
      await yieldMacrotask();
      this.#throwIfClosed();
      await this.#drain();
      this.#stats.flushes++;
      this.#awaiting = 'flush';
    });
  }

  /** Drops everything queued and held; the next sample must be a keyframe. */
  reset(): void {
    this.#throwIfClosed();
    this.#replaceNative();
    this.#awaiting = 'reset';
  }

  /** Releases the native decoder. Idempotent; later calls to `decode`/`flush` reject with `codec.closed`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeNative(this.#native);
    this.#clearBookkeeping();
    this.#room.wake();
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new CodecError('codec.closed', 'H264Decoder is closed');
  }

  #checkSample(sample: EncodedVideoSample): void {
    if (sample === null || typeof sample !== 'object') throw argumentError('sample', 'an object', sample);
    if (!(sample.data instanceof Uint8Array) || sample.data.length === 0) {
      throw argumentError('sample.data', 'a non-empty Uint8Array', sample.data);
    }
    if (!Number.isFinite(sample.timestampUs))
      throw argumentError('sample.timestampUs', 'a finite number', sample.timestampUs);
    if (!Number.isFinite(sample.durationUs) || sample.durationUs < 0) {
      throw argumentError('sample.durationUs', 'a finite number >= 0', sample.durationUs);
    }
    if (typeof sample.keyframe !== 'boolean') throw argumentError('sample.keyframe', 'a boolean', sample.keyframe);
  }

  async #decodeOne(sample: EncodedVideoSample): Promise<DecodeOutcome> {
    this.#throwIfClosed();
    // Outputs and dequeue events arrive through the event loop: yield one macrotask per call.
    await yieldMacrotask();
    this.#throwIfClosed();
    this.#detectGap(sample);
    if (this.#gc !== undefined && this.#framesSinceGc >= this.#gcEveryFrames) {
      this.#framesSinceGc = 0;
      this.#stats.gcRuns++;
      this.#gc();
    }
    for (;;) {
      if (this.#awaiting !== undefined) {
        if (!sample.keyframe) {
          this.#stats.skippedDeltas++;
          return { queued: false, reason: this.#awaiting };
        }
        // A keyframe after a discontinuity: let the frames held from before come out first so
        // the timestamp heap never mixes the two sides.
        if (this.#pts.size > 0) await this.#drain();
        this.#awaiting = undefined;
      } else if (sample.keyframe && sample.timestampUs <= this.#maxQueuedPts && this.#pts.size > 0) {
        // Timestamps went backwards at a keyframe (a restart): drain before mixing.
        await this.#drain();
      }
      if (this.#roomAvailable()) break;
      await this.#room.wait(ROOM_POLL_MS);
      this.#throwIfClosed();
      // No dequeue event for a long while: take the codec's own figure.
      if (this.#queue.value >= NATIVE_DEPTH && this.#queue.stale) this.#queue.resync(this.#native.decodeQueueSize);
    }
    const timestampUs = Math.round(sample.timestampUs);
    const durationUs = Math.round(sample.durationUs);
    const chunk = new this.#codecs.EncodedVideoChunk({
      type: sample.keyframe ? 'key' : 'delta',
      timestamp: timestampUs,
      duration: durationUs,
      data: sample.data,
    });
    this.#pts.push(timestampUs);
    this.#durations.set(timestampUs, durationUs);
    if (timestampUs > this.#maxQueuedPts) this.#maxQueuedPts = timestampUs;
    try {
      this.#native.decode(chunk);
      this.#queue.queued();
    } catch (error) {
      this.#pts.clear();
      this.#durations.clear();
      const failure = new CodecError('codec.decode_failed', `decode() threw: ${errorMessage(error)}`, { cause: error });
      this.#fail(this.#native, failure);
      throw failure;
    }
    this.#stats.queued++;
    return { queued: true };
  }

  #roomAvailable(): boolean {
    return this.#queue.value < NATIVE_DEPTH && this.#pendingHandlers < this.#maxQueue;
  }

  #detectGap(sample: EncodedVideoSample): void {
    const dts = sample.decodeTimestampUs;
    if (dts === undefined || !Number.isFinite(dts)) return;
    const last = this.#lastDts;
    this.#lastDts = dts;
    const lastDuration = this.#lastDuration;
    this.#lastDuration = sample.durationUs;
    if (last === undefined || this.#awaiting !== undefined) return;
    const expected = last + lastDuration;
    const tolerance = Math.max(lastDuration / 2, 1_000);
    if (dts > expected + tolerance || dts < last) this.markGap();
  }

  /** Flushes the native decoder and waits for every handler, then clears the timestamp bookkeeping. */
  async #drain(): Promise<void> {
    const native = this.#native;
    if (native.state === 'configured') {
      try {
        await native.flush();
      } catch (error) {
        if (native === this.#native && !this.#closed) {
          const failure = new CodecError('codec.decode_failed', `flush failed: ${errorMessage(error)}`, {
            cause: error,
          });
          this.#fail(native, failure);
          throw failure;
        }
      }
    }
    while (this.#pendingHandlers > 0 && !this.#closed) await this.#room.wait(ROOM_POLL_MS);
    this.#clearBookkeeping();
  }

  #clearBookkeeping(): void {
    this.#pts.clear();
    this.#durations.clear();
    this.#maxQueuedPts = Number.NEGATIVE_INFINITY;
  }

  #createNative(): VideoDecoderPort {
    // Through a relay cut when this native decoder is closed: the addon holds these callbacks
    // until the codec is finalized (detachable.ts).
    const relay = detachable({
      output: (frame: VideoFramePort) => this.#handleOutput(native, frame),
      error: (error: Error) => {
        if (native !== this.#native || this.#closed) return;
        this.#fail(
          native,
          new CodecError('codec.decode_failed', `decoder error: ${errorMessage(error)}`, { cause: error }),
        );
      },
      dequeue: () => {
        if (native !== this.#native) return;
        this.#queue.dequeued();
        this.#room.wake();
      },
    });
    const native: VideoDecoderPort = new this.#codecs.VideoDecoder({
      output: relay.callbacks.output,
      error: relay.callbacks.error,
    });
    native.ondequeue = relay.callbacks.dequeue;
    this.#detachers.set(native, relay.detach);
    try {
      native.configure(this.#config);
    } catch (error) {
      this.#closeNative(native);
      throw new CodecError(
        'codec.config',
        `VideoDecoder.configure failed for ${this.#config.codec}: ${errorMessage(error)}`,
        {
          cause: error,
          details: { codec: this.#config.codec },
        },
      );
    }
    return native;
  }

  #replaceNative(): void {
    const old = this.#native;
    // A fresh instance: callbacks still queued by the old one are recognised and dropped.
    this.#native = this.#createNative();
    this.#queue.reset();
    this.#closeNative(old);
    this.#clearBookkeeping();
    this.#room.wake();
  }

  #closeNative(native: VideoDecoderPort): void {
    native.ondequeue = null;
    if (native.state !== 'closed') {
      try {
        native.close();
      } catch {
        // Already closing: nothing to release.
      }
    }
    this.#detachers.get(native)?.();
  }

  #fail(native: VideoDecoderPort, failure: CodecError): void {
    if (native !== this.#native || this.#closed) return;
    this.#stats.errors++;
    try {
      this.#replaceNative();
      this.#awaiting = 'error';
    } catch (error) {
      this.close();
      this.#report(
        new CodecError('codec.config', `decoder could not be rebuilt: ${errorMessage(error)}`, { cause: error }),
      );
    }
    this.#report(failure);
  }

  #report(failure: CodecError): void {
    try {
      this.#onError(failure);
    } catch {
      // The error sink must not break the codec callback.
    }
  }

  #handleOutput(native: VideoDecoderPort, frame: VideoFramePort): void {
    if (native !== this.#native || this.#closed) {
      frame.close();
      return;
    }
    const decoderTimestampUs = frame.timestamp;
    let timestampUs = this.#pts.pop();
    if (timestampUs === undefined) {
      this.#stats.unmatchedOutputs++;
      timestampUs = decoderTimestampUs;
    }
    const durationUs = this.#durations.get(timestampUs) ?? frame.duration ?? 0;
    this.#durations.delete(timestampUs);
    let out: VideoFramePort;
    if (timestampUs === decoderTimestampUs && frame.duration === durationUs) {
      out = frame;
    } else {
      this.#stats.restamped++;
      try {
        out = new this.#codecs.VideoFrame(frame, { timestamp: timestampUs, duration: durationUs });
      } catch (error) {
        this.#report(
          new CodecError('codec.decode_failed', `re-stamping a frame failed: ${errorMessage(error)}`, { cause: error }),
        );
        return;
      } finally {
        frame.close();
      }
    }
    const meta: DecodedFrameMeta = { timestampUs, durationUs, decoderTimestampUs, index: this.#stats.decoded };
    this.#stats.decoded++;
    this.#framesSinceGc++;
    let result: void | Promise<void>;
    try {
      result = this.#onFrame(out, meta);
    } catch (error) {
      out.close();
      this.#report(new CodecError('codec.decode_failed', `onFrame threw: ${errorMessage(error)}`, { cause: error }));
      return;
    }
    if (result === undefined || typeof (result as { then?: unknown }).then !== 'function') {
      out.close();
      return;
    }
    this.#pendingHandlers++;
    Promise.resolve(result)
      .catch((error: unknown) => {
        this.#report(
          new CodecError('codec.decode_failed', `onFrame rejected: ${errorMessage(error)}`, { cause: error }),
        );
      })
      .finally(() => {
        out.close();
        this.#pendingHandlers--;
        this.#room.wake();
      });
  }
}
