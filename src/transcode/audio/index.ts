/**
 * The audio ladder, decode once per source: a `SharedAudioDecoder` per source session decodes its
 * AAC track `1.mp4` to PCM and hands every block to each `AudioRenditionTranscoder`, which encodes
 * AAC-LC (`mp4a.40.2`) or Opus at one bitrate and publishes one CMAF fragment per packet to
 * `<source>/audio-<codec>-<kbps>k` track `1.mp4` (origin `rendition`).
 *
 * Data path, one file each: audio-codecs.ts (the codec contract) -> audio-ladder.ts (decoders per
 * source, the factory, the renditions of a ladder) -> audio-source.ts (decode once) ->
 * audio-rendition.ts (continuity, encoder sessions) -> audio-timeline.ts (packet times) ->
 * audio-output.ts (CMAF, registry).
 *
 * Timing: outputs keep the source timeline to the sample (AAC priming dropped, Opus `pre_skip`
 * stated in the `dOps` and subtracted from packet times; see audio-timeline.ts).
 * Back-pressure: a rendition's `onFragment` waits while its block queue is above half its bound; a
 * full queue is dropped and counted. Errors: decoder and encoders are rebuilt with back-off, each
 * on its own; nothing reaches the source or another rendition.
 *
 * Not here: resampling (an Opus rendition of a source that is not 48 kHz is skipped), HLS audio
 * groups (hls/), the codecs themselves (bound in ../audio-webcodecs-binding.ts).
 */

export type {
  AudioCodecs,
  AudioDecoderConfig,
  AudioDecoderLike,
  AudioEncoderConfig,
  AudioEncoderLike,
  AudioPacket,
  PcmBlock,
} from './audio-codecs.ts';
export {
  AudioLadder,
  type AudioLadderOptions,
  AudioRenditionFactory,
  audioRenditionName,
  audioRenditionSpec,
  audioRenditionTargetOf,
  audioRenditionTargets,
} from './audio-ladder.ts';
export { AUDIO_LADDER_TRANSCODER_NAME, AudioOutput } from './audio-output.ts';
export { type AudioRenditionTarget, AudioRenditionTranscoder } from './audio-rendition.ts';
export { type AudioSourceStatus, SharedAudioDecoder } from './audio-source.ts';
export { AAC_SHAPE, OPUS_EXPECTED_PRE_SKIP, opusShape, PacketClock, type PacketTime } from './audio-timeline.ts';
