/** Per-source ladder status for the API (`/api/v1/transcode`), built by `SharedDecoder.status()`. */
export type SourceLadderStatus = {
  broadcast: string;
  codec: string;
  width: number | undefined;
  height: number | undefined;
  frameRate: number | undefined;
  decoderState: 'running' | 'failed' | 'unsupported';
  reason: string | undefined;
  decodedFrames: number;
  restarts: number;
  /**
   * Times the decoder was replaced, at a keyframe, after rungs had held many of its frames at
   * once (see decoder-renewal.ts): what gave that memory back.
   */
  renewals: number;
  lastError: string | undefined;
  rungs: string[];
  /**
   * What scales this source's rungs: `quality` (the frame scaler, once per frame for every rung),
   * `encoder` (each encoder, bilinear), or undefined before the first frame.
   */
  scaler: 'quality' | 'encoder' | undefined;
  /** Why the frame scaler stopped, if it failed (the encoders scale meanwhile). */
  scalerError: string | undefined;
  /** Rungs left out for this source, and why (e.g. no upscaling). */
  skipped: Array<{ rendition: string; reason: string }>;
};
