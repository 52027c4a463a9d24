/** A recording wrapper around a WebCodecs implementation: tests see what reached the native codecs. */

import type {
  EncodedVideoChunkPort,
  VideoDecoderConfigPort,
  VideoDecoderConstructorPort,
  VideoDecoderInitPort,
  VideoDecoderPort,
  VideoEncoderConfigPort,
  VideoEncoderConstructorPort,
  VideoEncoderEncodeOptionsPort,
  VideoEncoderInitPort,
  VideoEncoderPort,
  VideoFramePort,
  WebCodecs,
} from '../../src/webcodecs/port.ts';

/** What the wrapped codecs were asked to do. */
export type SpyLog = {
  decoderConfigs: VideoDecoderConfigPort[];
  decodes: Array<{ type: string; timestamp: number; queueBefore: number }>;
  encoderConfigs: VideoEncoderConfigPort[];
  encodes: Array<{ timestamp: number; keyFrame: boolean; queueBefore: number }>;
  decoders: number;
  encoders: number;
  /** Reads of `decodeQueueSize` / `encodeQueueSize` by the code under test (they wait for the codec's lock). */
  queueSizeReads: number;
};

/** Wraps `codecs` so every native configure/decode/encode is recorded in `log`. */
export function spyCodecs(codecs: WebCodecs): { codecs: WebCodecs; log: SpyLog } {
  const log: SpyLog = {
    decoderConfigs: [],
    decodes: [],
    encoderConfigs: [],
    encodes: [],
    decoders: 0,
    encoders: 0,
    queueSizeReads: 0,
  };
  const BaseDecoder = codecs.VideoDecoder;
  const BaseEncoder = codecs.VideoEncoder;

  class SpyDecoder implements VideoDecoderPort {
    readonly #inner: VideoDecoderPort;
    constructor(init: VideoDecoderInitPort) {
      log.decoders++;
      this.#inner = new BaseDecoder(init);
    }
    static isConfigSupported(config: VideoDecoderConfigPort) {
      return BaseDecoder.isConfigSupported(config);
    }
    get state() {
      return this.#inner.state;
    }
    get decodeQueueSize() {
      log.queueSizeReads++;
      return this.#inner.decodeQueueSize;
    }
    get ondequeue() {
      return this.#inner.ondequeue ?? null;
    }
    set ondequeue(callback: (() => unknown) | null | undefined) {
      this.#inner.ondequeue = callback ?? null;
    }
    configure(config: VideoDecoderConfigPort): void {
      log.decoderConfigs.push(config);
      this.#inner.configure(config);
    }
    decode(chunk: EncodedVideoChunkPort): void {
      log.decodes.push({ type: chunk.type, timestamp: chunk.timestamp, queueBefore: this.#inner.decodeQueueSize });
      this.#inner.decode(chunk);
    }
    flush(): Promise<void> {
      return this.#inner.flush();
    }
    reset(): void {
      this.#inner.reset();
    }
    close(): void {
      this.#inner.close();
    }
  }

  class SpyEncoder implements VideoEncoderPort {
    readonly #inner: VideoEncoderPort;
    constructor(init: VideoEncoderInitPort) {
      log.encoders++;
      this.#inner = new BaseEncoder(init);
    }
    static isConfigSupported(config: VideoEncoderConfigPort) {
      return BaseEncoder.isConfigSupported(config);
    }
    get state() {
      return this.#inner.state;
    }
    get encodeQueueSize() {
      log.queueSizeReads++;
      return this.#inner.encodeQueueSize;
    }
    get ondequeue() {
      return this.#inner.ondequeue ?? null;
    }
    set ondequeue(callback: (() => unknown) | null | undefined) {
      this.#inner.ondequeue = callback ?? null;
    }
    configure(config: VideoEncoderConfigPort): void {
      log.encoderConfigs.push(config);
      this.#inner.configure(config);
    }
    encode(frame: VideoFramePort, options?: VideoEncoderEncodeOptionsPort): void {
      log.encodes.push({
        timestamp: frame.timestamp,
        keyFrame: options?.keyFrame === true,
        queueBefore: this.#inner.encodeQueueSize,
      });
      this.#inner.encode(frame, options);
    }
    flush(): Promise<void> {
      return this.#inner.flush();
    }
    reset(): void {
      this.#inner.reset();
    }
    close(): void {
      this.#inner.close();
    }
  }

  const decoderCtor: VideoDecoderConstructorPort = SpyDecoder;
  const encoderCtor: VideoEncoderConstructorPort = SpyEncoder;
  return { codecs: { ...codecs, VideoDecoder: decoderCtor, VideoEncoder: encoderCtor }, log };
}
