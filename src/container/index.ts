/**
 * Container layer: ISO-BMFF / CMAF parsing and writing, nothing else.
 *
 * - `Fmp4StreamParser` reads an ingest byte stream in chunks of any size and emits single-track
 *   init segments and fragments (`0.mp4` video, `1.mp4` audio), splitting multi-track `moof`s.
 * - `readSamples` gives a decoder the samples of a single-track fragment; `describeInit` reads an
 *   init segment for playlists (CODECS, RESOLUTION, FRAME-RATE) and decoder configuration.
 * - `buildVideoInitSegment` / `buildAudioInitSegment` / `buildMediaSegment` write rung output:
 *   single-track CMAF with any number of samples per fragment (one per frame for LL-HLS parts).
 * - Codec strings (avc1, hvc1, mp4a.40.N, opus) and the avcC / SPS / AudioSpecificConfig parsers.
 * - `toFragmentedMp4` remuxes a whole file (mediabunny) for the `publish` command.
 *
 * Error policy: on malformed input everything here throws `ContainerError` with a stable code
 * (`ingest.*`), never another type; the stream parser is poisoned after its first error. Bad
 * arguments to the writers throw `TypeError`. Codec support is reported, not enforced: a track
 * whose sample entry is not H.264/H.265/AAC/Opus (or whose decoder configuration is unreadable)
 * is reported with `supported: false`, `codec` set to its sample entry 4cc (`mp4a.XX` for non-AAC
 * `mp4a`) and an `unsupportedReason`, and its
 * fragments still flow (passthrough works); whether to reject such a stream (`codec.unsupported`,
 * HTTP 415) is the ingest layer's decision.
 *
 * Back-pressure: none needed; everything is synchronous and bounded by the box size limits.
 *
 * Not here: decoding or encoding (webcodecs/), fan-out (fragment/), playlists (hls/), the network.
 * No `mp4box`: decode times come from each `tfdt` (mp4box chains them after the first fragment)
 * and nothing accumulates per stream.
 */

export { type Box, readBoxes } from './boxes.ts';
export {
  type AudioInitOptions,
  buildAudioInitSegment,
  buildMediaSegment,
  buildVideoInitSegment,
  cmafFtyp,
  type MediaSegmentOptions,
  NON_SYNC_SAMPLE_FLAGS,
  type SegmentSample,
  SYNC_SAMPLE_FLAGS,
  type VideoInitOptions,
} from './cmaf-writer.ts';
export {
  type AudioSpecificConfig,
  type AvcConfig,
  aacCodecString,
  avcCodecString,
  avcCodecStringFromSps,
  dOpsFromOpusHead,
  type HevcConfig,
  hevcCodecString,
  OPUS_CODEC_STRING,
  type OpusConfig,
  opusHeadFromDOps,
  parseAudioSpecificConfig,
  parseAvcC,
  parseDOps,
  parseHvcC,
  parseSps,
  type SpsInfo,
} from './codec-string.ts';
export {
  DEFAULT_MAX_BOX_BYTES,
  DEFAULT_MAX_INIT_BYTES,
  type Fmp4ParserOptions,
  Fmp4StreamParser,
  type OutputTrackId,
  type ParsedTrack,
  type ParserEvent,
  type SampleInfo,
} from './fmp4-parser.ts';
export { describeInit } from './init-info.ts';
export type { SampleDefaults } from './moof.ts';
export type { TrackInfo } from './moov.ts';
export { toFragmentedMp4 } from './remux.ts';
export { type DecodableSample, readSamples } from './sample-reader.ts';
export { type SilentFrame, silentAudioFrame } from './silence.ts';
