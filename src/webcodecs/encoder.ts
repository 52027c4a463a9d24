/**
 * `H264Encoder`: a WebCodecs `VideoEncoder` with the corrections live transcoding needs:
 * never `latencyMode: 'realtime'`, durations carried from the input, odd sizes
 * refused before configuring, the real codec string read from the output `avcC`, keyframes
 * reported from the bitstream, bounded queue, a macrotask yield per call.
 */

import { argumentError, CodecError, errorMessage } from '../core/errors.ts';
import { Signal, yieldMacrotask } from '../core/yield.ts';
import { avcCodecString, containsIdr, highProfileCodec, parseAvcC } from './avc.ts';
import { detachable } from './detachable.ts';
import type {
  EncodedVideoChunkMetadataPort,
  EncodedVideoChunkPort,
  HardwareAccelerationPort,
  VideoEncoderConfigPort,
  VideoEncoderPort,
  VideoFramePort,
  WebCodecs,
} from './port.ts';
import { QueueCount } from './queue-count.ts';

/** What a decoder needs to read this encoder's output (one per encoder session). */
export type H264DecoderConfig = {
  /** Codec string read from the SPS in `description` (the configured string is not trusted). */
  codec: string;
  /** The `avcC` payload. */
  description: Uint8Array;
  codedWidth: number;
  codedHeight: number;
};

/** One encoded access unit (length-prefixed NAL units). */
export type H264Chunk = {
  data: Uint8Array;
  timestampUs: number;
  /** Carried from the input frame (the native chunk has none). */
  durationUs: number;
  /** True when the access unit holds an IDR slice (read from the bitstream). */
  keyframe: boolean;
  /** True when the caller asked for a keyframe at this frame. */
  requestedKeyframe: boolean;
  /** Present on every keyframe chunk: the same object for a whole encoder session, a new one after `reconfigure`. */
  decoderConfig?: H264DecoderConfig;
};

/** Size, rate and bitrate of an encoder session. */
export type H264EncoderSettings = {
  /** Output width; even. Frames of another size are scaled (bilinear) by the encoder. */
  width: number;
  /** Output height; even. */
  height: number;
  bitrateBps: number;
  framerate: number;
};

/** Options of `H264Encoder`. */
export type H264EncoderOptions = H264EncoderSettings & {
  onChunk(chunk: H264Chunk): void;
  onError(error: CodecError): void;
  /** Bound on the native encode queue. Default 4. */
  maxQueue?: number;
  /** Codec string to configure; default a High-profile string with a level for the size. */
  codec?: string;
  /** Default `'constant'` (predictable bandwidth for HLS variants). */
  bitrateMode?: 'constant' | 'variable';
  hardwareAcceleration?: HardwareAccelerationPort;
};

/** Per-frame encode options. */
export type H264EncodeOptions = {
  keyFrame: boolean;
  durationUs: number;
  /** Overrides the frame's own timestamp, microseconds. */
  timestampUs?: number;
};

/** Counters of an `H264Encoder`. */
export type H264EncoderStats = {
  encoded: number;
  chunks: number;
  keyframes: number;
  /** IDRs the encoder inserted on its own (x264's GOP 250 or a scene cut). */
  unrequestedKeyframes: number;
  /** Requested keyframes that did not come out as IDR (should stay 0). */
  missedKeyframes: number;
  /** Outputs that matched no pending input (should stay 0). */
  unmatchedChunks: number;
  bytes: number;
  errors: number;
  encodeQueueSize: number;
};

type Pending = { timestampUs: number; durationUs: number; keyFrame: boolean };

const ROOM_POLL_MS = 20;

/** The nearest even integer >= 2 (ties round down), for encoder sizes derived from an aspect ratio. */
export function evenDimension(n: number): number {
  if (!Number.isFinite(n) || n <= 0) throw argumentError('n', 'a finite number > 0', n);
  return Math.max(2, 2 * Math.ceil(n / 2 - 0.5));
}

function checkSettings(settings: H264EncoderSettings): void {
  for (const name of ['width', 'height'] as const) {
    const value = settings[name];
    // Odd sizes make @napi-rs/webcodecs close the encoder although isConfigSupported says yes.
    if (!Number.isInteger(value) || value < 2 || value % 2 !== 0) {
      throw argumentError(name, 'an even integer >= 2 (H.264 4:2:0 needs even sizes; see evenDimension)', value);
    }
  }
  if (!Number.isFinite(settings.bitrateBps) || settings.bitrateBps <= 0) {
    throw argumentError('bitrateBps', 'a number > 0', settings.bitrateBps);
  }
  if (!Number.isFinite(settings.framerate) || settings.framerate <= 0) {
    throw argumentError('framerate', 'a number > 0', settings.framerate);
  }
}

function toBytes(source: Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (source instanceof Uint8Array) return source.slice();
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength).slice();
  return new Uint8Array(source).slice();
}

/**
 * H.264 encoder over a WebCodecs port. `encode()` calls are serialized; each takes its own
 * reference to the frame synchronously, so the caller may close its frame as soon as the call
 * returns. Keyframes are produced where `keyFrame: true` is asked; the encoder may add IDRs of
 * its own (see `H264Chunk.requestedKeyframe` and `stats().unrequestedKeyframes`).
 */
export class H264Encoder {
  readonly #codecs: WebCodecs;
  readonly #onChunk: H264EncoderOptions['onChunk'];
  readonly #onError: H264EncoderOptions['onError'];
  readonly #maxQueue: number;
  readonly #codec: string | undefined;
  readonly #bitrateMode: 'constant' | 'variable';
  readonly #hardwareAcceleration: HardwareAccelerationPort | undefined;
  readonly #room = new Signal();
  readonly #queue = new QueueCount();
  #settings: H264EncoderSettings;
  #native: VideoEncoderPort;
  /** Cuts the native encoder's callbacks off this instance (see detachable.ts). */
  readonly #detach: () => void;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #failure: CodecError | undefined;
  #pending: Pending[] = [];
  #decoderConfig: H264DecoderConfig | undefined;
  #nalLengthSize = 4;
  #framesInSession = 0;
  #stats = {
    encoded: 0,
    chunks: 0,
    keyframes: 0,
    unrequestedKeyframes: 0,
    missedKeyframes: 0,
    unmatchedChunks: 0,
    bytes: 0,
    errors: 0,
  };

  constructor(codecs: WebCodecs, options: H264EncoderOptions) {
    checkSettings(options);
    if (typeof options.onChunk !== 'function') throw argumentError('onChunk', 'a function', options.onChunk);
    if (typeof options.onError !== 'function') throw argumentError('onError', 'a function', options.onError);
    const maxQueue = options.maxQueue ?? 4;
    if (!Number.isInteger(maxQueue) || maxQueue < 1) throw argumentError('maxQueue', 'an integer >= 1', maxQueue);
    if (options.codec !== undefined && !/^avc[13]\./.test(options.codec)) {
      throw argumentError('codec', 'an H.264 codec string such as "avc1.64001f"', options.codec);
    }
    this.#codecs = codecs;
    this.#onChunk = options.onChunk;
    this.#onError = options.onError;
    this.#maxQueue = maxQueue;
    this.#codec = options.codec;
    this.#bitrateMode = options.bitrateMode ?? 'constant';
    this.#hardwareAcceleration = options.hardwareAcceleration;
    this.#settings = {
      width: options.width,
      height: options.height,
      bitrateBps: options.bitrateBps,
      framerate: options.framerate,
    };
    // Through a relay cut at close: the addon holds these callbacks until the codec is finalized.
    const relay = detachable({
      output: (chunk: EncodedVideoChunkPort, metadata?: EncodedVideoChunkMetadataPort) =>
        this.#handleOutput(native, chunk, metadata),
      error: (error: Error) => this.#handleError(native, error),
      dequeue: () => {
        this.#queue.dequeued();
        this.#room.wake();
      },
    });
    const native: VideoEncoderPort = new codecs.VideoEncoder({
      output: relay.callbacks.output,
      error: relay.callbacks.error,
    });
    native.ondequeue = relay.callbacks.dequeue;
    this.#native = native;
    this.#detach = relay.detach;
    this.#configure(this.#settings);
  }

  /** The configuration handed to the native encoder for `settings` (never `latencyMode: 'realtime'`). */
  static nativeConfig(
    settings: H264EncoderSettings,
    options: Pick<H264EncoderOptions, 'codec' | 'bitrateMode' | 'hardwareAcceleration'> = {},
  ): VideoEncoderConfigPort {
    return {
      codec: options.codec ?? highProfileCodec(settings.width, settings.height, settings.framerate),
      width: settings.width,
      height: settings.height,
      bitrate: Math.round(settings.bitrateBps),
      framerate: settings.framerate,
      bitrateMode: options.bitrateMode ?? 'constant',
      // 'realtime' makes @napi-rs/webcodecs force a keyframe every 10 frames.
      latencyMode: 'quality',
      avc: { format: 'avc' },
      ...(options.hardwareAcceleration === undefined ? {} : { hardwareAcceleration: options.hardwareAcceleration }),
    };
  }

  /** The current session's decoder configuration (after the first keyframe came out). */
  get decoderConfig(): H264DecoderConfig | undefined {
    return this.#decoderConfig;
  }

  /** The current output size, rate and bitrate. */
  get settings(): H264EncoderSettings {
    return { ...this.#settings };
  }

  /** True once `close()` ran or the native encoder failed. */
  get closed(): boolean {
    return this.#closed || this.#failure !== undefined;
  }

  /** Counters and queue depth. */
  stats(): H264EncoderStats {
    return { ...this.#stats, encodeQueueSize: this.closed ? 0 : this.#queue.value };
  }

  /**
   * Queues one frame. Waits while the native queue is at `maxQueue` and always yields one
   * macrotask so outputs are delivered. Rejects with `codec.closed` after `close()` or a failure.
   */
  encode(frame: VideoFramePort, options: H264EncodeOptions): Promise<void> {
    if (options === null || typeof options !== 'object') throw argumentError('options', 'an object', options);
    if (typeof options.keyFrame !== 'boolean') throw argumentError('options.keyFrame', 'a boolean', options.keyFrame);
    if (!Number.isFinite(options.durationUs) || options.durationUs < 0) {
      throw argumentError('options.durationUs', 'a finite number >= 0', options.durationUs);
    }
    if (options.timestampUs !== undefined && !Number.isFinite(options.timestampUs)) {
      throw argumentError('options.timestampUs', 'a finite number', options.timestampUs);
    }
    try {
      this.#throwIfClosed();
    } catch (error) {
      return Promise.reject(error);
    }
    const durationUs = Math.round(options.durationUs);
    // Our own reference, taken now: the caller may close its frame once this returns.
    let own: VideoFramePort;
    try {
      own =
        options.timestampUs === undefined
          ? frame.clone()
          : new this.#codecs.VideoFrame(frame, { timestamp: Math.round(options.timestampUs), duration: durationUs });
    } catch (error) {
      throw argumentError('frame', 'an open VideoFrame', `a frame that cannot be cloned (${errorMessage(error)})`);
    }
    return this.#serial(async () => {
      try {
        await this.#encodeOne(own, options.keyFrame, durationUs);
      } finally {
        own.close();
      }
    });
  }

  /** Emits every queued chunk. */
  flush(): Promise<void> {
    return this.#serial(async () => {
      this.#throwIfClosed();
      await yieldMacrotask();
      this.#throwIfClosed();
      await this.#flushNative();
    });
  }

  /**
   * Flushes, then configures a new session (new size, rate or bitrate). The next frame comes out
   * as a keyframe carrying a new `decoderConfig`.
   */
  reconfigure(settings: H264EncoderSettings): Promise<void> {
    checkSettings(settings);
    return this.#serial(async () => {
      this.#throwIfClosed();
      await this.#flushNative();
      this.#configure(settings);
    });
  }

  /** Releases the native encoder. Idempotent; queued calls reject with `codec.closed`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.ondequeue = null;
    if (this.#native.state !== 'closed') {
      try {
        this.#native.close();
      } catch {
        // Already closing: nothing to release.
      }
    }
    this.#detach();
    this.#pending = [];
    this.#room.wake();
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #throwIfClosed(): void {
    if (this.#failure !== undefined) {
      throw new CodecError('codec.closed', `H264Encoder failed earlier: ${this.#failure.message}`, {
        cause: this.#failure,
      });
    }
    if (this.#closed) throw new CodecError('codec.closed', 'H264Encoder is closed');
  }

  #configure(settings: H264EncoderSettings): void {
    const config = H264Encoder.nativeConfig(settings, {
      codec: this.#codec,
      bitrateMode: this.#bitrateMode,
      hardwareAcceleration: this.#hardwareAcceleration,
    });
    try {
      this.#native.configure(config);
    } catch (error) {
      throw new CodecError(
        'codec.config',
        `VideoEncoder.configure failed for ${config.codec} ${config.width}x${config.height}: ${errorMessage(error)}`,
        { cause: error, details: { ...config } },
      );
    }
    this.#settings = { ...settings };
    this.#decoderConfig = undefined;
    this.#framesInSession = 0;
  }

  async #encodeOne(frame: VideoFramePort, keyFrame: boolean, durationUs: number): Promise<void> {
    this.#throwIfClosed();
    // Outputs and dequeue events arrive through the event loop: yield one macrotask per call.
    await yieldMacrotask();
    this.#throwIfClosed();
    while (this.#queue.value >= this.#maxQueue) {
      await this.#room.wait(ROOM_POLL_MS);
      this.#throwIfClosed();
      // No dequeue event for a long while: take the codec's own figure.
      if (this.#queue.stale) this.#queue.resync(this.#native.encodeQueueSize);
    }
    // The first frame of a session comes out as a keyframe whether asked or not.
    const forced = keyFrame || this.#framesInSession === 0;
    this.#pending.push({ timestampUs: frame.timestamp, durationUs, keyFrame: forced });
    try {
      this.#native.encode(frame, { keyFrame: forced });
      this.#queue.queued();
    } catch (error) {
      this.#pending.pop();
      throw new CodecError('codec.encode_failed', `encode() threw: ${errorMessage(error)}`, { cause: error });
    }
    this.#framesInSession++;
    this.#stats.encoded++;
  }

  async #flushNative(): Promise<void> {
    try {
      await this.#native.flush();
    } catch (error) {
      const failure =
        this.#failure ??
        new CodecError('codec.encode_failed', `flush failed: ${errorMessage(error)}`, { cause: error });
      throw failure;
    }
  }

  #takePending(timestampUs: number): Pending | undefined {
    const pending = this.#pending;
    const index = pending.findIndex((entry) => entry.timestampUs === timestampUs);
    if (index < 0) return undefined;
    const [entry] = pending.splice(0, index + 1).slice(-1);
    return entry;
  }

  #handleOutput(
    native: VideoEncoderPort,
    chunk: EncodedVideoChunkPort,
    metadata: EncodedVideoChunkMetadataPort | undefined,
  ): void {
    if (native !== this.#native || this.#closed) return;
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    const given = metadata?.decoderConfig;
    if (given?.description !== undefined) {
      const description = toBytes(given.description);
      try {
        this.#nalLengthSize = parseAvcC(description).nalLengthSize;
        this.#decoderConfig = {
          // The configured profile is ignored by @napi-rs/webcodecs: the avcC is the truth.
          codec: avcCodecString(description),
          description,
          codedWidth: given.codedWidth ?? this.#settings.width,
          codedHeight: given.codedHeight ?? this.#settings.height,
        };
      } catch (error) {
        this.#report(
          new CodecError('codec.encode_failed', `unreadable avcC: ${errorMessage(error)}`, { cause: error }),
        );
      }
    }
    const pending = this.#takePending(chunk.timestamp);
    if (pending === undefined) this.#stats.unmatchedChunks++;
    const idr = containsIdr(data, this.#nalLengthSize) ?? chunk.type === 'key';
    const requestedKeyframe = pending?.keyFrame ?? false;
    if (idr && !requestedKeyframe) this.#stats.unrequestedKeyframes++;
    if (!idr && requestedKeyframe) this.#stats.missedKeyframes++;
    if (idr) this.#stats.keyframes++;
    this.#stats.chunks++;
    this.#stats.bytes += data.length;
    if (idr && this.#decoderConfig === undefined) {
      this.#report(new CodecError('codec.encode_failed', 'keyframe without a decoder configuration (avcC)'));
    }
    const out: H264Chunk = {
      data,
      timestampUs: chunk.timestamp,
      durationUs: pending?.durationUs ?? chunk.duration ?? 0,
      keyframe: idr,
      requestedKeyframe,
    };
    if (idr && this.#decoderConfig !== undefined) out.decoderConfig = this.#decoderConfig;
    try {
      this.#onChunk(out);
    } catch (error) {
      this.#report(new CodecError('codec.encode_failed', `onChunk threw: ${errorMessage(error)}`, { cause: error }));
    }
  }

  #handleError(native: VideoEncoderPort, error: Error): void {
    if (native !== this.#native || this.#closed || this.#failure !== undefined) return;
    this.#stats.errors++;
    this.#failure = new CodecError('codec.encode_failed', `encoder error: ${errorMessage(error)}`, { cause: error });
    this.#pending = [];
    this.#room.wake();
    this.#report(this.#failure);
  }

  #report(failure: CodecError): void {
    try {
      this.#onError(failure);
    } catch {
      // The error sink must not break the codec callback.
    }
  }
}
