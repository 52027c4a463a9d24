/**
 * The WebCodecs port: the constructors and instance shapes this library uses, declared
 * structurally. Any implementation that has these shapes fits (a browser's or Deno's globals,
 * `@napi-rs/webcodecs`, a test double); the code never does `instanceof` against a global.
 */

/** Pixel formats we create or read (a subset every implementation knows). */
export type VideoPixelFormatPort = 'I420' | 'I420A' | 'I422' | 'I444' | 'NV12' | 'RGBA' | 'RGBX' | 'BGRA' | 'BGRX';

/** `'key'` chunks decode on their own; `'delta'` chunks need the ones before. */
export type ChunkTypePort = 'key' | 'delta';

/** Hardware preference of a codec configuration. */
export type HardwareAccelerationPort = 'no-preference' | 'prefer-hardware' | 'prefer-software';

/** Codec state as WebCodecs reports it. */
export type CodecStatePort = 'unconfigured' | 'configured' | 'closed';

/** Where one plane lies in a buffer: byte offset of its first row, and bytes per row. */
export type PlaneLayoutPort = { offset: number; stride: number };

/** Init of a frame built from raw pixels. */
export type VideoFrameBufferInitPort = {
  format: VideoPixelFormatPort;
  codedWidth: number;
  codedHeight: number;
  timestamp: number;
  duration?: number;
  /** Plane places in `data` (default: planes packed one after another). */
  layout?: PlaneLayoutPort[];
};

/** Init of a frame built from another frame (new timestamp or duration over the same pixels). */
export type VideoFrameInitPort = {
  timestamp?: number;
  duration?: number;
};

/** A decoded picture; the owner must `close()` it. */
export interface VideoFramePort {
  readonly format: string | null;
  readonly codedWidth: number;
  readonly codedHeight: number;
  readonly displayWidth: number;
  readonly displayHeight: number;
  /** Presentation timestamp, microseconds. */
  readonly timestamp: number;
  /** Duration, microseconds (null when unknown). */
  readonly duration: number | null;
  allocationSize(): number;
  /** Copies the planes into `destination` (packed, or where `layout` puts them). */
  copyTo(destination: Uint8Array, options?: { layout?: PlaneLayoutPort[] }): Promise<unknown>;
  clone(): VideoFramePort;
  close(): void;
}

/** `VideoFrame` constructor: from raw pixels, or from another frame with a new timestamp/duration. */
export interface VideoFrameConstructorPort {
  new (data: Uint8Array, init: VideoFrameBufferInitPort): VideoFramePort;
  new (source: VideoFramePort, init?: VideoFrameInitPort): VideoFramePort;
}

/** Init of an encoded chunk (video or audio). */
export type EncodedChunkInitPort = {
  type: ChunkTypePort;
  timestamp: number;
  duration?: number;
  data: Uint8Array;
};

/** One encoded video access unit. */
export interface EncodedVideoChunkPort {
  readonly type: ChunkTypePort;
  /** Microseconds. */
  readonly timestamp: number;
  /** Microseconds, null when the implementation does not carry it. */
  readonly duration: number | null;
  readonly byteLength: number;
  copyTo(destination: Uint8Array): void;
}

/** `EncodedVideoChunk` constructor. */
export interface EncodedVideoChunkConstructorPort {
  new (init: EncodedChunkInitPort): EncodedVideoChunkPort;
}

/** Video decoder configuration. */
export type VideoDecoderConfigPort = {
  codec: string;
  description?: Uint8Array;
  codedWidth?: number;
  codedHeight?: number;
  hardwareAcceleration?: HardwareAccelerationPort;
  optimizeForLatency?: boolean;
};

/** What `isConfigSupported` answers. */
export type ConfigSupportPort = { supported?: boolean };

/** Callbacks of a video decoder. */
export type VideoDecoderInitPort = {
  output: (frame: VideoFramePort) => void;
  error: (error: Error) => void;
};

/** A WebCodecs `VideoDecoder` instance. */
export interface VideoDecoderPort {
  readonly state: CodecStatePort;
  readonly decodeQueueSize: number;
  ondequeue?: (() => unknown) | null;
  configure(config: VideoDecoderConfigPort): void;
  decode(chunk: EncodedVideoChunkPort): void;
  flush(): Promise<void>;
  reset(): void;
  close(): void;
}

/** `VideoDecoder` constructor and its static support check. */
export interface VideoDecoderConstructorPort {
  new (init: VideoDecoderInitPort): VideoDecoderPort;
  isConfigSupported(config: VideoDecoderConfigPort): Promise<ConfigSupportPort>;
}

/** Video encoder configuration (the members we set). */
export type VideoEncoderConfigPort = {
  codec: string;
  width: number;
  height: number;
  bitrate?: number;
  framerate?: number;
  hardwareAcceleration?: HardwareAccelerationPort;
  bitrateMode?: 'constant' | 'variable';
  latencyMode?: 'quality' | 'realtime';
  avc?: { format?: 'avc' | 'annexb' };
};

/** Decoder configuration an encoder hands out with its first output after a configure. */
export type VideoDecoderConfigOutputPort = {
  codec: string;
  description?: Uint8Array | ArrayBuffer | ArrayBufferView;
  codedWidth?: number;
  codedHeight?: number;
};

/** Metadata an encoder passes along with a chunk. */
export type EncodedVideoChunkMetadataPort = {
  decoderConfig?: VideoDecoderConfigOutputPort;
};

/** Callbacks of a video encoder. */
export type VideoEncoderInitPort = {
  output: (chunk: EncodedVideoChunkPort, metadata?: EncodedVideoChunkMetadataPort) => void;
  error: (error: Error) => void;
};

/** Per-frame encode options. */
export type VideoEncoderEncodeOptionsPort = { keyFrame?: boolean };

/** A WebCodecs `VideoEncoder` instance. */
export interface VideoEncoderPort {
  readonly state: CodecStatePort;
  readonly encodeQueueSize: number;
  ondequeue?: (() => unknown) | null;
  configure(config: VideoEncoderConfigPort): void;
  encode(frame: VideoFramePort, options?: VideoEncoderEncodeOptionsPort): void;
  flush(): Promise<void>;
  reset(): void;
  close(): void;
}

/** `VideoEncoder` constructor and its static support check. */
export interface VideoEncoderConstructorPort {
  new (init: VideoEncoderInitPort): VideoEncoderPort;
  isConfigSupported(config: VideoEncoderConfigPort): Promise<ConfigSupportPort>;
}

/** Sample formats of raw audio we create. */
export type AudioSampleFormatPort = 'f32' | 'f32-planar' | 's16' | 's16-planar';

/** Init of raw audio. */
export type AudioDataInitPort = {
  format: AudioSampleFormatPort;
  sampleRate: number;
  numberOfFrames: number;
  numberOfChannels: number;
  timestamp: number;
  data: Float32Array | Int16Array | Uint8Array;
};

/** Which part of raw audio `copyTo` copies, and in which sample format. */
export type AudioDataCopyToOptionsPort = {
  planeIndex: number;
  frameOffset?: number;
  frameCount?: number;
  format?: AudioSampleFormatPort;
};

/** Raw audio; the owner must `close()` it. */
export interface AudioDataPort {
  readonly format: string | null;
  readonly sampleRate: number;
  readonly numberOfFrames: number;
  readonly numberOfChannels: number;
  readonly timestamp: number;
  readonly duration: number;
  allocationSize(options: AudioDataCopyToOptionsPort): number;
  copyTo(destination: Uint8Array | Float32Array, options: AudioDataCopyToOptionsPort): void;
  close(): void;
}

/** `AudioData` constructor. */
export interface AudioDataConstructorPort {
  new (init: AudioDataInitPort): AudioDataPort;
}

/** One encoded audio packet. */
export interface EncodedAudioChunkPort {
  readonly type: ChunkTypePort;
  readonly timestamp: number;
  readonly duration: number | null;
  readonly byteLength: number;
  copyTo(destination: Uint8Array): void;
}

/** `EncodedAudioChunk` constructor. */
export interface EncodedAudioChunkConstructorPort {
  new (init: EncodedChunkInitPort): EncodedAudioChunkPort;
}

/** Audio encoder configuration. */
export type AudioEncoderConfigPort = {
  codec: string;
  sampleRate: number;
  numberOfChannels: number;
  bitrate?: number;
};

/** Audio decoder configuration. */
export type AudioDecoderConfigPort = {
  codec: string;
  sampleRate: number;
  numberOfChannels: number;
  description?: Uint8Array;
};

/** A WebCodecs `AudioEncoder` instance. */
export interface AudioEncoderPort {
  readonly state: CodecStatePort;
  readonly encodeQueueSize: number;
  ondequeue?: (() => unknown) | null;
  configure(config: AudioEncoderConfigPort): void;
  encode(data: AudioDataPort): void;
  flush(): Promise<void>;
  reset(): void;
  close(): void;
}

/** `AudioEncoder` constructor and its static support check. */
export interface AudioEncoderConstructorPort {
  new (init: {
    output: (chunk: EncodedAudioChunkPort, metadata?: { decoderConfig?: unknown }) => void;
    error: (error: Error) => void;
  }): AudioEncoderPort;
  isConfigSupported(config: AudioEncoderConfigPort): Promise<ConfigSupportPort>;
}

/** A WebCodecs `AudioDecoder` instance. */
export interface AudioDecoderPort {
  readonly state: CodecStatePort;
  readonly decodeQueueSize: number;
  ondequeue?: (() => unknown) | null;
  configure(config: AudioDecoderConfigPort): void;
  decode(chunk: EncodedAudioChunkPort): void;
  flush(): Promise<void>;
  reset(): void;
  close(): void;
}

/** `AudioDecoder` constructor and its static support check. */
export interface AudioDecoderConstructorPort {
  new (init: { output: (data: AudioDataPort) => void; error: (error: Error) => void }): AudioDecoderPort;
  isConfigSupported(config: AudioDecoderConfigPort): Promise<ConfigSupportPort>;
}

/** The WebCodecs classes the library uses; audio members are optional. */
export type WebCodecs = {
  VideoDecoder: VideoDecoderConstructorPort;
  VideoEncoder: VideoEncoderConstructorPort;
  VideoFrame: VideoFrameConstructorPort;
  EncodedVideoChunk: EncodedVideoChunkConstructorPort;
  AudioEncoder?: AudioEncoderConstructorPort;
  AudioDecoder?: AudioDecoderConstructorPort;
  AudioData?: AudioDataConstructorPort;
  EncodedAudioChunk?: EncodedAudioChunkConstructorPort;
};

/** Where a `WebCodecs` implementation comes from: the runtime's own globals or the napi addon. */
export type WebCodecsProvider = {
  name: 'global' | 'napi';
  codecs: WebCodecs;
  /** Hardware accelerators the implementation says are usable (empty when unknown or none). */
  hardwareAccelerators(): string[];
};
