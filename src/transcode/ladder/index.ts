/**
 * The H.264 ladder, decode once per source: a `SharedDecoder` per source session feeds every rung
 * a clone of each decoded frame; each `RungTranscoder` scales and encodes in its own queue and
 * publishes one CMAF fragment per encoded frame (`RungOutput`) to `<source>/<rendition>`.
 *
 * Data path, one file each: options.ts (tunables) -> plan.ts (sizes per source) -> video-ladder.ts
 * (decoders per source, the factory) -> shared-decoder.ts (decode, forced keyframes) -> frames.ts
 * (what crosses to the rungs) -> rung.ts (queue, encoder life) -> rung-output.ts (CMAF, registry)
 * and rung-stats.ts (counters, metrics); overload.ts (policy) with load.ts (its sampling).
 *
 * Output rules: rung keyframes are forced exactly at the source keyframes, plus a fixed cadence of
 * the source timeline when the source GOP is longer than the segment target (decided once per
 * frame, so identical in every rung); timestamps are the source's, in the source timescale.
 * Encoder frame rate: the source meta's (stated by the init or measured once at ingest).
 *
 * Back-pressure: a rung's `onFragment` waits while its queue is above half its bound; a rung whose
 * queue reaches the bound drops whole GOPs and counts them; the overload policy sheds and pauses
 * the lowest rungs when the machine cannot keep up.
 * Errors: a failing decoder or encoder is closed and rebuilt with exponential back-off and resumes
 * at the next forced keyframe; other rungs and other sources never notice.
 *
 * Not here: codecs themselves (`VideoCodecs`, bound in webcodecs-binding.ts), the drain tasks
 * (runner.ts), playlists (hls/).
 */

export { type FrameMeta, type SourceFormat, ticksToUs } from './frames.ts';
export { RungLoad, SourceLoadMonitor } from './load.ts';
export {
  SoftwareLadder,
  type SoftwareLadderOptions,
  SoftwareTranscoder,
  SoftwareTranscoderFactory,
} from './lvqr-names.ts';
export {
  LADDER_TRANSCODER_NAME,
  type LadderEvent,
  type LadderOptions,
  notifyLadderEvent,
  type ResolvedLadderOptions,
} from './options.ts';
export {
  DEFAULT_OVERLOAD,
  OverloadGovernor,
  type OverloadOptions,
  type OverloadTransition,
  type RungLoadState,
  type RungSample,
} from './overload.ts';
export {
  evenSize,
  type LadderPlan,
  type PlannedRung,
  planLadder,
  planRung,
  type SkippedRung,
  type SourceVideo,
} from './plan.ts';
export { RungTranscoder } from './rung.ts';
export { RungOutput } from './rung-output.ts';
export { RungStats } from './rung-stats.ts';
export { type DecodedSource, type RungSink, SharedDecoder, type SourceLadderStatus } from './shared-decoder.ts';
export { LadderTranscoderFactory, VideoLadder } from './video-ladder.ts';
