/**
 * `TrackSplitter`: cuts each track's part of a `moof`+`mdat` out as a single-track fragment draft
 * (its own `moof` written by `allocateFragment`, its samples copied behind it), numbers it
 * (sequence, group and object ids per output track) and checks that decode times never go backwards
 * within one init.
 */

import { ContainerError } from '../core/errors.ts';
import { FragmentFlags } from '../fragment/fragment.ts';
import type { FramedBox } from './box-framer.ts';
import { allocateFragment } from './cmaf-writer.ts';
import { checkSampleBudget, SAMPLE_IS_NON_SYNC, type TrafSamples } from './moof.ts';
import type { FragmentDraft, OutputTrackId, ParsedTrack, SampleInfo } from './parser-events.ts';

/** A parsed `moof` waiting for its `mdat`. */
export type PendingMoof = { readonly position: number; readonly trafs: TrafSamples[] };

/** Receives what `TrackSplitter.split` produces, in stream order. */
export interface DraftSink {
  /** A traf of `trackId` passed its checks and starts at `decodeTime`; its draft is cut next. */
  reached(trackId: OutputTrackId, decodeTime: number): void;
  /** The traf's single-track draft. */
  cut(draft: FragmentDraft): void;
}

/** Per output track counters; they run on across inits so ids stay monotonic for a parser's life. */
type OutputState = {
  sequence: number;
  groupId: number;
  objectId: number;
  fragments: number;
};

/**
 * Splits multi-track fragments into single-track drafts. Errors: `ingest.bad_sample_table` (a sample
 * outside its mdat, or more sample bytes than the mdat holds) and `ingest.timestamp_regression`.
 */
export class TrackSplitter {
  #states = new Map<OutputTrackId, OutputState>();
  /**
   * Decode time of the last sample per output track since the latest init. Not carried over by
   * `continueFrom`: a reconnecting publisher may restart its clock (the HLS layer turns that into a
   * discontinuity); within one connection and one init, time only moves forward.
   */
  readonly #lastDts = new Map<OutputTrackId, number>();

  /** A new init: decode times may start anywhere again (the counters run on). */
  restartTimeline(): void {
    this.#lastDts.clear();
  }

  /** Takes over `previous`'s counters (copies), not its timeline. */
  continueFrom(previous: TrackSplitter): void {
    this.#states = new Map([...previous.#states].map(([id, state]) => [id, { ...state }]));
  }

  /**
   * Cuts `moof`'s trafs of the tracks in `outputOf` (by source track id) out of `mdat` and hands
   * each to `sink`, in traf order. A traf that fails its checks throws after the trafs before it
   * reached the sink.
   */
  split(
    moof: PendingMoof,
    mdat: FramedBox,
    outputOf: ReadonlyMap<number, ParsedTrack>,
    ingestTimeMs: number,
    sink: DraftSink,
  ): void {
    const dataStart = mdat.position + mdat.headerSize;
    const dataEnd = mdat.position + mdat.bytes.length;
    checkSampleBudget(moof.trafs, { moofPosition: moof.position, dataStart, dataEnd });
    for (const traf of moof.trafs) {
      const track = outputOf.get(traf.mp4TrackId);
      if (track === undefined || traf.samples.length === 0) continue;
      checkBounds(traf, dataStart, dataEnd);
      this.#checkTimeline(track, traf, moof.position);
      sink.reached(track.trackId, traf.baseMediaDecodeTime);
      sink.cut(this.#cut(track, traf, mdat, ingestTimeMs));
    }
  }

  #cut(track: ParsedTrack, traf: TrafSamples, mdat: FramedBox, ingestTimeMs: number): FragmentDraft {
    const state = this.#state(track.trackId);
    state.sequence++;
    const { payload, dataOffset, entriesOffset, entrySize } = allocateFragment(
      state.sequence,
      traf.baseMediaDecodeTime,
      traf.samples,
      traf.sampleDescriptionIndex,
    );
    const samples: SampleInfo[] = [];
    let at = dataOffset;
    let dts = traf.baseMediaDecodeTime;
    let discardable = true;
    for (const s of traf.samples) {
      const from = s.position - mdat.position;
      payload.set(mdat.bytes.subarray(from, from + s.size), at);
      samples.push({
        dts,
        pts: dts + s.compositionOffset,
        duration: s.duration,
        keyframe: (s.flags & SAMPLE_IS_NON_SYNC) === 0,
        offset: at,
        size: s.size,
      });
      if (((s.flags >>> 22) & 3) !== 2) discardable = false; // sample_is_depended_on == 2: none depend on it
      at += s.size;
      dts += s.duration;
    }
    const first = samples[0]!;
    let flags: FragmentFlags;
    let groupId: number;
    let objectId: number;
    if (track.kind === 'audio') {
      flags = FragmentFlags.AUDIO;
      groupId = state.fragments;
      objectId = 0;
    } else {
      if (first.keyframe) {
        state.groupId++;
        state.objectId = 0;
        flags = FragmentFlags.KEYFRAME;
      } else {
        if (state.groupId < 0) state.groupId = 0;
        else state.objectId++;
        flags = discardable ? FragmentFlags.DELTA_DISCARDABLE : FragmentFlags.DELTA;
      }
      groupId = state.groupId;
      objectId = state.objectId;
    }
    state.fragments++;
    this.#lastDts.set(track.trackId, samples.at(-1)!.dts);
    const fields: FragmentDraft['fields'] = {
      trackId: track.trackId,
      groupId,
      objectId,
      priority: track.kind === 'audio' || first.keyframe ? 0 : 1,
      dts: first.dts,
      pts: first.pts,
      flags,
      payload,
      ingestTimeMs,
    };
    return { trackId: track.trackId, fields, samples, entriesOffset, entrySize };
  }

  /**
   * Decode times never go backwards within one init: a fragment may not start before the previous
   * fragment's last sample (the same time is tolerated: ffmpeg repeats it around zero-duration
   * samples). A publisher restarting its clock sends a new moov first.
   */
  #checkTimeline(track: ParsedTrack, traf: TrafSamples, moofPosition: number): void {
    const last = this.#lastDts.get(track.trackId);
    if (last !== undefined && traf.baseMediaDecodeTime < last) {
      throw new ContainerError(
        'ingest.timestamp_regression',
        `${track.kind} track ${traf.mp4TrackId}: the moof at stream offset ${moofPosition} starts at decode time ` +
          `${traf.baseMediaDecodeTime} (timescale ${track.timescale}), before the previous sample at ${last}; ` +
          'send a new init segment (moov) to restart the timeline',
        { details: { track: traf.mp4TrackId, decodeTime: traf.baseMediaDecodeTime, previous: last, moofPosition } },
      );
    }
  }

  #state(trackId: OutputTrackId): OutputState {
    let state = this.#states.get(trackId);
    if (state === undefined) {
      state = { sequence: 0, groupId: -1, objectId: 0, fragments: 0 };
      this.#states.set(trackId, state);
    }
    return state;
  }
}

/** Every sample of `traf` must lie inside the mdat's data `[dataStart, dataEnd)`. */
function checkBounds(traf: TrafSamples, dataStart: number, dataEnd: number): void {
  for (const s of traf.samples) {
    if (s.position < dataStart || s.position + s.size > dataEnd) {
      throw new ContainerError(
        'ingest.bad_sample_table',
        `track ${traf.mp4TrackId}: a sample at stream offset ${s.position} (${s.size} bytes) lies outside ` +
          `the mdat [${dataStart}, ${dataEnd})`,
        { details: { position: s.position, size: s.size, mdatStart: dataStart, mdatEnd: dataEnd } },
      );
    }
  }
}
