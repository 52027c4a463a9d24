/**
 * Transcoding: rendition specs and ladders, the transcoder contract, the runner that drives one
 * drain task per (factory, rendition, broadcast, track), and the built-in transcoders.
 *
 * Back-pressure: a drain task awaits each hook before reading the next fragment; the registry's
 * bounded queue absorbs bursts and drops whole GOPs when a task falls too far behind.
 * Errors: an exception or timeout in a hook is counted (per phase) and logged; a failed `onStart`
 * ends that task, a failed `onFragment` skips that fragment. Nothing reaches the producer.
 *
 * Not here: media parsing (container/), codecs (webcodecs/), HTTP (server/).
 */

export {
  type AudioCodecs,
  AudioLadder,
  type AudioLadderOptions,
  AudioRenditionFactory,
  type AudioRenditionTarget,
  type AudioSourceStatus,
  audioRenditionName,
  audioRenditionTargets,
} from './audio/index.ts';
export { AudioPassthroughTranscoder, AudioPassthroughTranscoderFactory } from './audio-passthrough.ts';
export { type AudioWebCodecsBindingOptions, bindAudioWebCodecs } from './audio-webcodecs-binding.ts';
export type {
  DecoderConfig,
  DecoderLike,
  EncodedChunk,
  EncoderConfig,
  EncoderLike,
  VideoCodecs,
  VideoFrameLike,
} from './codecs.ts';
export {
  evenSize,
  type LadderOptions,
  type LadderPlan,
  LadderTranscoderFactory,
  type PlannedRung,
  planLadder,
  planRung,
  RungTranscoder,
  type SkippedRung,
  SoftwareLadder,
  type SoftwareLadderOptions,
  SoftwareTranscoder,
  SoftwareTranscoderFactory,
  type SourceLadderStatus,
  type SourceVideo,
  VideoLadder,
} from './ladder/index.ts';
export { PassthroughTranscoder, PassthroughTranscoderFactory } from './passthrough.ts';
export {
  createRendition,
  defaultLadder,
  ladderFromToml,
  ladderToToml,
  PRESET_240P,
  PRESET_480P,
  PRESET_720P,
  RENDITION_PRESETS,
  type RenditionSpec,
  renditionFromJson,
  renditionFromToml,
  renditionToJson,
  renditionToToml,
  resolveLadderArgs,
  resolveRenditionArg,
  validateLadder,
  validateRendition,
} from './rendition.ts';
export {
  type FailurePhase,
  type TaskKey,
  type TaskState,
  type TaskStats,
  TranscodeRunner,
  TranscodeRunnerHandle,
  type TranscodeRunnerOptions,
} from './runner.ts';
export type { Transcoder, TranscoderContext, TranscoderFactory, TranscoderStats } from './transcoder.ts';
export { bindWebCodecs, type WebCodecsBindingOptions } from './webcodecs-binding.ts';
