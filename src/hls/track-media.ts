/** The media a track window publishes: init versions, parts, segments, listings and numbering. */

import { Slabs } from '../core/bytes.ts';
import type { FragmentMeta } from '../fragment/fragment.ts';

/** Tolerance of time comparisons, seconds. */
export const EPS_S = 0.001;

/** Which playlist a track feeds. */
export type TrackKind = 'video' | 'audio';

/** Timing shared by a source and its rungs: every playlist of one master advertises the same values. */
export interface GroupTiming {
  /** EXT-X-TARGETDURATION in whole seconds; never decreases. */
  readonly targetDurationS: number;
  /** PART-TARGET in seconds; never decreases. */
  readonly partTargetS: number;
  /** Records the duration of a completed segment. */
  observeSegment(durationS: number): void;
  /** Records the duration of a completed part. */
  observePart(durationS: number): void;
  /** Marks a change that may alter any playlist of the group. */
  touch(): void;
}

/** One init segment of a track (`init-<version>.mp4`, `version` its content id: init-id.ts). */
export type InitVersion = {
  readonly version: number;
  readonly bytes: Uint8Array;
  readonly codec: string;
  readonly timescale: number;
  /** The meta the init came with; ingest fills in its `frameRate` once measured. */
  readonly meta: FragmentMeta;
};

/** A published part: consecutive fragments of one segment. */
export type HlsPart = {
  readonly msn: number;
  readonly index: number;
  readonly durationS: number;
  /** Starts with a keyframe (video) or an independent frame (audio). */
  readonly independent: boolean;
  /** Listed with GAP=YES: media the track does not have (no bytes). */
  readonly gap?: true;
  /** The part bytes; a view into the segment bytes once the segment is complete. */
  bytes: Uint8Array;
};

/** A segment: complete, or the one being built (whose closed parts are already published). */
export type HlsSegment = {
  readonly msn: number;
  /** An EXT-X-DISCONTINUITY precedes this segment. */
  readonly discontinuity: boolean;
  /** Discontinuity Sequence Number of this segment (counts its own discontinuity). */
  readonly discontinuitySequence: number;
  readonly init: InitVersion;
  /** EXT-X-PROGRAM-DATE-TIME, ms since the epoch. */
  readonly programDateTimeMs: number;
  /** Presentation time of the first fragment, seconds (for boundary alignment across tracks). */
  readonly startTimeS: number;
  /** Start on the track's continuous timeline (sum of earlier segment durations), seconds. */
  readonly timelineS: number;
  /** Sum of the durations of its closed parts, seconds. */
  durationS: number;
  byteLength: number;
  readonly parts: HlsPart[];
  /** The segment bytes (concatenated parts), set when complete. */
  bytes: Uint8Array | undefined;
  /** Listed with EXT-X-GAP: media the track does not have (no bytes; parts, if listed, are GAP=YES). */
  readonly gap?: true;
};

/** A PROGRAM-DATE-TIME (ms) and the media time (seconds) it belongs to: where a timeline's dates are counted from. */
export type DateAnchor = { readonly dateMs: number; readonly timeS: number };

/** Where a track's numbering continues (a republished name never re-uses an immutable URL). */
export type TrackCursor = {
  readonly nextMsn: number;
  readonly discontinuitySequence: number;
  /** Where the first timeline's PROGRAM-DATE-TIMEs are counted from (a cluster producer's), when given. */
  readonly dateAnchor?: DateAnchor;
};

/** State of a requested part. */
export type PartState = 'ready' | 'pending' | 'never';

/** The segments a playlist lists right now. */
export type Listing = {
  /** Complete segments inside the DVR window, oldest first. */
  readonly segments: readonly HlsSegment[];
  /** The segment being built, when it has at least one published part. */
  readonly open: HlsSegment | undefined;
  readonly mediaSequence: number;
  readonly discontinuitySequence: number;
  /** End of the listed media on the track timeline, seconds. */
  readonly endTimelineS: number;
};

/**
 * Where a packager copies media: parts (they live until their segment completes) and complete
 * segments (they live the DVR window) in separate slabs, shared by every track of a bridge, so
 * media of one lifetime shares a few large blocks (`Slabs`).
 */
export type MediaSlabs = { readonly parts: Slabs; readonly segments: Slabs };

/** Slab size: above glibc's mmap threshold as the README says to set it (128 KiB), so a slab is a mapping of its own. */
export const MEDIA_SLAB_BYTES = 1024 * 1024;

/** A fresh pair of media slabs. */
export function mediaSlabs(): MediaSlabs {
  return { parts: new Slabs(MEDIA_SLAB_BYTES), segments: new Slabs(MEDIA_SLAB_BYTES) };
}

/**
 * A tally of the media bytes a set of stores holds: `bytes` counts the arrays themselves, `buffers`
 * the distinct memory blocks behind them (a small view keeps its whole block alive, so the sum of
 * their sizes is what the process pays for).
 */
export class RetainedBytes {
  bytes = 0;
  readonly #buffers = new Set<ArrayBufferLike>();
  #bufferBytes = 0;

  /** Counts `array` and, once, the block behind it. */
  add(array: Uint8Array): void {
    this.bytes += array.byteLength;
    const buffer = array.buffer;
    if (this.#buffers.has(buffer)) return;
    this.#buffers.add(buffer);
    this.#bufferBytes += buffer.byteLength;
  }

  /** Summed size of the distinct blocks counted. */
  get bufferBytes(): number {
    return this.#bufferBytes;
  }
}
