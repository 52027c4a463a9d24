/**
 * The codec contract the software ladder is written against: a decoder that turns samples into
 * frames and an encoder per rung. The composition root binds it to a WebCodecs provider
 * (`src/webcodecs`); tests bind it to wrappers that inject faults or slow encoders.
 */

/** A decoded picture; `timestamp` is in microseconds. Closed by whoever holds it last. */
export interface VideoFrameLike {
  readonly timestamp: number;
  clone(): VideoFrameLike;
  close(): void;
}

/** One compressed sample for the decoder. */
export type DecoderInput = { data: Uint8Array; timestampUs: number; durationUs: number; keyframe: boolean };

/** One encoded access unit from a rung encoder. */
export type EncodedChunk = {
  /** Length-prefixed NAL units (avcC framing). */
  data: Uint8Array;
  timestampUs: number;
  durationUs: number;
  keyframe: boolean;
  /**
   * False for an IDR the encoder inserted on its own (x264 adds one every 250 frames and at hard
   * scene cuts, and the addon cannot turn that off): decodable, but not a point every rung shares.
   */
  requestedKeyframe?: boolean;
  /** Present on the first chunk after (re)configuration: the `avcC`. */
  decoderConfig?: { description: Uint8Array; codec?: string } | undefined;
  /**
   * Set on the first keyframe of an encoder session that was asked for hardware when a software
   * encoder (e.g. `libx264`) served it: that session fell back.
   */
  softwareEncoder?: string | undefined;
};

/** A decoder: `decode` resolves when the sample was accepted (the queue is bounded). */
export interface DecoderLike {
  decode(sample: DecoderInput): Promise<void>;
  /** Emits every held frame; the next sample must be a keyframe. */
  flush(): Promise<void>;
  close(): void;
}

/** A rung encoder: `encode` resolves when the frame was accepted (the queue is bounded). */
export interface EncoderLike {
  encode(frame: VideoFrameLike, options: { keyFrame: boolean; durationUs: number }): Promise<void>;
  flush(): Promise<void>;
  close(): void;
}

/** Configuration of the source decoder. */
export type DecoderConfig = { codec: string; description: Uint8Array; codedWidth?: number; codedHeight?: number };

/** Configuration of a rung encoder. */
export type EncoderConfig = { width: number; height: number; bitrateBps: number; framerate: number };

/** A picture size in pixels. */
export type PictureSize = { width: number; height: number };

/**
 * Scales each decoded frame of one source once for every rung size (src/webcodecs/scaler), so
 * the encoders get pictures of their own size.
 */
export interface FrameScalerLike {
  /**
   * `frame` at each of `sizes` (each the source's or one the scaler was made for), as frames the
   * caller owns; pictures still being scaled are awaited by this backend's encoders. Undefined
   * when this frame cannot be scaled here: the caller hands on clones, and the encoders scale.
   * The caller keeps `frame`.
   */
  scale(frame: VideoFrameLike, sizes: readonly PictureSize[]): VideoFrameLike[] | undefined;
  /** Takes no more frames (the ones taken are still delivered). */
  close(): void;
}

/** Creates decoders and encoders; `backend` names the encoder in use (`software`, `nvenc`, ...). */
export interface VideoCodecs {
  readonly backend: string;
  /**
   * A scaler from `source` to `sizes` (each no larger), or undefined where this backend's encoders
   * scale for themselves. `onFailure` is told once if it fails (it then scales nothing more).
   */
  createScaler?(
    source: PictureSize,
    sizes: readonly PictureSize[],
    onFailure: (error: unknown) => void,
  ): FrameScalerLike | undefined;
  createDecoder(
    config: DecoderConfig,
    onFrame: (frame: VideoFrameLike) => void,
    onError: (error: unknown) => void,
  ): DecoderLike;
  createEncoder(
    config: EncoderConfig,
    onChunk: (chunk: EncodedChunk) => void,
    onError: (error: unknown) => void,
  ): EncoderLike;
}
