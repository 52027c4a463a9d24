/**
 * WebCodecs layer: a structural port of the WebCodecs classes we use, two providers (the
 * runtime's own globals, or `@napi-rs/webcodecs` pinned at 1.3.1), a capability probe that
 * proves support with a real encode, and an H.264 decoder/encoder pair that corrects the measured
 * defects of the addon (B-frame timestamps, missing durations, odd sizes, ignored profile,
 * keyframe placement, output delivery, native memory).
 *
 * Back-pressure: `decode()` / `encode()` await while the native queue (and, for the decoder,
 * unsettled `onFrame` work) is at `maxQueue`, and yield one macrotask per call so native outputs
 * are delivered. Calls are serialized per instance.
 * Errors: argument mistakes throw a `TypeError` naming the argument (synchronously); calls on a
 * closed or failed instance reject with `codec.closed`; codec failures arrive at
 * `onError` as `CodecError` (`codec.decode_failed`, `codec.encode_failed`, `codec.config`); the
 * decoder rebuilds itself and resumes at the next keyframe, the encoder stays failed (calls reject
 * with `codec.closed`) and the owner builds a new one. Every frame is closed in a `finally`.
 *
 * Keyframes: the encoder makes IDRs where `keyFrame: true` is asked, but x264 in the addon also
 * inserts its own (every 250 frames without a forced one, and at hard scene cuts; 1.3.1 exposes no
 * option to stop it). Chunks report the bitstream truth (`keyframe`) and the request
 * (`requestedKeyframe`): align segments on the latter. `H264Decoder.flush()` at a fragment
 * boundary releases the frames the decoder holds back; the next sample must then be a keyframe.
 *
 * Not here: containers (container/), scheduling, ladders and retries (transcode/), and any
 * choice of provider by sniffing the runtime (the composition root picks).
 */

export {
  type AvcConfig,
  avcCodecString,
  containsIdr,
  h264LevelIdc,
  highProfileCodec,
  nalTypes,
  parseAvcC,
  softwareEncoderOf,
} from './avc.ts';
export {
  type DecodedFrameMeta,
  type DecodeOutcome,
  type EncodedVideoSample,
  H264Decoder,
  type H264DecoderOptions,
  type H264DecoderStats,
  type KeyframeWaitReason,
} from './decoder.ts';
export { type Detachable, detachable } from './detachable.ts';
export {
  evenDimension,
  type H264Chunk,
  type H264DecoderConfig,
  type H264EncodeOptions,
  H264Encoder,
  type H264EncoderOptions,
  type H264EncoderSettings,
  type H264EncoderStats,
} from './encoder.ts';
export type * from './port.ts';
export { type CapabilityReport, type ProbeOptions, probeCapabilities } from './probe.ts';
export { globalProvider, NAPI_WEBCODECS_PIN, type NapiProviderOptions, napiCodecs, napiProvider } from './providers.ts';
