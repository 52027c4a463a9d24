/**
 * What `Fmp4StreamParser` reports (tracks, fragments and their samples), and the fragment draft
 * its stages hand on: the track splitter cuts drafts, the duration repair completes them.
 */

import type { AUDIO_TRACK, Fragment, VIDEO_TRACK } from '../fragment/fragment.ts';
import type { TrackInfo } from './moov.ts';

/** Output track id: `0.mp4` (video) or `1.mp4` (audio). */
export type OutputTrackId = typeof VIDEO_TRACK | typeof AUDIO_TRACK;

/**
 * A track of the stream as published: source track info plus its output id and single-track init.
 * When the init does not give the video frame rate (ffmpeg's `empty_moov` does not), `frameRate`
 * is undefined in the `init` event and the parser fills it in on that same object from the median
 * duration of the first 8 video samples (usually the first fragment).
 */
export type ParsedTrack = TrackInfo & {
  trackId: OutputTrackId;
  /** Single-track CMAF init: `ftyp` + `moov` with only this `trak` (as track_ID 1) and its `trex`. */
  initSegment: Uint8Array;
};

/** One sample of an emitted fragment. `offset`/`size` locate its bytes in `fragment.payload`. */
export type SampleInfo = {
  dts: number;
  pts: number;
  duration: number;
  keyframe: boolean;
  offset: number;
  size: number;
};

/** One track's part of one `moof`+`mdat`, rewritten as a single-track fragment. */
export type FragmentEvent = { type: 'fragment'; fragment: Fragment; samples: SampleInfo[] };

/** What `push` and `end` report, in stream order. */
export type ParserEvent =
  /** A complete `moov` (the first one, or a later one: restart or format change). */
  | { type: 'init'; tracks: ParsedTrack[] }
  /** One track's part of one `moof`+`mdat`, rewritten as a single-track fragment. */
  | FragmentEvent;

/** A single-track fragment cut from a `moof`+`mdat`, before its duration is known for sure. */
export type FragmentDraft = {
  readonly trackId: OutputTrackId;
  readonly fields: Omit<Fragment, 'duration'>;
  readonly samples: SampleInfo[];
  /** Where the payload's `trun` entries start and how long each is (duration first). */
  readonly entriesOffset: number;
  readonly entrySize: number;
};
