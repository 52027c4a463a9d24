/**
 * The codec contract the audio ladder is written against: a decoder that turns compressed samples
 * into interleaved PCM, and an encoder per audio rendition that turns PCM into packets. The
 * composition root binds it to a WebCodecs implementation (`audio-webcodecs-binding.ts`); tests may
 * bind it to wrappers that inject faults.
 */

/** Interleaved 32-bit float PCM; `timestampUs` is the source presentation time of the first frame. */
export type PcmBlock = {
  readonly timestampUs: number;
  readonly sampleRate: number;
  readonly channels: number;
  /** Sample frames (one value per channel each). */
  readonly frames: number;
  /** `frames * channels` values, interleaved. */
  readonly data: Float32Array;
};

/** One compressed audio sample for the decoder. */
export type AudioDecoderInput = { data: Uint8Array; timestampUs: number; durationUs: number };

/** One encoded packet, in output order. */
export type AudioPacket = {
  data: Uint8Array;
  /** The timestamp the encoder stamped (not trusted for timing: see audio-timeline.ts). */
  timestampUs: number;
  /** Present on the first packet after configuration: AudioSpecificConfig (AAC) or `OpusHead` (Opus). */
  description?: Uint8Array | undefined;
};

/** An audio decoder: `decode` resolves when the sample was accepted (the queue is bounded). */
export interface AudioDecoderLike {
  decode(sample: AudioDecoderInput): Promise<void>;
  /** Emits every held block. */
  flush(): Promise<void>;
  close(): void;
}

/** An audio encoder: `encode` resolves when the block was accepted (the queue is bounded). */
export interface AudioEncoderLike {
  encode(block: PcmBlock): Promise<void>;
  /** Emits every held packet (including the padded last one). */
  flush(): Promise<void>;
  close(): void;
}

/** Configuration of a source audio decoder. */
export type AudioDecoderConfig = { codec: string; sampleRate: number; channels: number; description: Uint8Array };

/** Configuration of a rendition encoder: `aac` is AAC-LC (`mp4a.40.2`). */
export type AudioEncoderConfig = { codec: 'aac' | 'opus'; sampleRate: number; channels: number; bitrateBps: number };

/** Creates audio decoders and encoders. */
export interface AudioCodecs {
  createDecoder(
    config: AudioDecoderConfig,
    onBlock: (block: PcmBlock) => void,
    onError: (error: unknown) => void,
  ): AudioDecoderLike;
  createEncoder(
    config: AudioEncoderConfig,
    onPacket: (packet: AudioPacket) => void,
    onError: (error: unknown) => void,
  ): AudioEncoderLike;
}
