/**
 * `SegmentStore`: the complete segments one track retains (its DVR window plus a short grace
 * period after they leave the playlist) and the init versions they use; answers which of them a
 * playlist lists.
 */

import {
  EPS_S,
  type GroupTiming,
  type HlsSegment,
  type InitVersion,
  type Listing,
  type RetainedBytes,
} from './track-media.ts';

/** Parts stay listed for segments ending within this many target durations of the end (RFC 8216bis 6.2.2). */
const PART_LIST_TARGETS = 3;
/** Segments stay downloadable this many target durations after they leave the playlist. */
const RETAIN_AFTER_REMOVAL_TARGETS = 2;

/** The retained complete segments and init versions of one track. */
export class SegmentStore {
  readonly #dvrS: number;
  readonly #group: GroupTiming;
  /** Complete segments, oldest first (includes those kept briefly after leaving the playlist). */
  #segments: HlsSegment[] = [];
  #inits: InitVersion[] = [];
  #timelineEndS = 0;
  /** MSN of the first segment a listing showed last (listings never start before it). */
  #listedFromMsn = 0;

  /** An empty store keeping `dvrWindowS` of segments (at least four of the group's target durations). */
  constructor(dvrWindowS: number, group: GroupTiming) {
    this.#dvrS = dvrWindowS;
    this.#group = group;
  }

  /** End of the last complete segment on the track timeline, seconds. */
  get timelineEndS(): number {
    return this.#timelineEndS;
  }

  /** The newest complete segment, or undefined. */
  get last(): HlsSegment | undefined {
    return this.#segments.at(-1);
  }

  /** A complete segment still retained, or undefined. */
  segment(msn: number): HlsSegment | undefined {
    const first = this.#segments[0];
    if (first === undefined) return undefined;
    return this.#segments[msn - first.msn];
  }

  /** The init version `version` if it is still kept. */
  initVersion(version: number): InitVersion | undefined {
    return this.#inits.find((i) => i.version === version);
  }

  /** Keeps a new init version (the track's current one); drops versions nothing uses any more. */
  addInit(init: InitVersion, open: HlsSegment | undefined): void {
    this.#inits.push(init);
    this.#pruneInits(open, init);
  }

  /** Appends a completed segment; its end becomes the end of the timeline. */
  add(segment: HlsSegment): void {
    this.#segments.push(segment);
    this.#timelineEndS = segment.timelineS + segment.durationS;
  }

  /** Frees segments that left the playlist more than a couple of target durations ago, and unused inits. */
  trim(open: HlsSegment | undefined, current: InitVersion | undefined): void {
    const td = this.#group.targetDurationS;
    const keepS = Math.max(this.#dvrS, 4 * td) + RETAIN_AFTER_REMOVAL_TARGETS * td;
    let drop = 0;
    while (drop < this.#segments.length - 1 && this.#timelineEndS - this.#segments[drop]!.timelineS > keepS + EPS_S) {
      drop += 1;
    }
    if (drop > 0) {
      this.#segments.splice(0, drop);
      this.#pruneInits(open, current);
    }
  }

  /**
   * The segments the playlist lists now: the DVR window (at least four target durations) ending
   * with `open` (the segment being built, when it has parts); `nextMsn` and `discontinuitySequence`
   * number an empty listing.
   */
  listing(open: HlsSegment | undefined, nextMsn: number, discontinuitySequence: number): Listing {
    const endS = open !== undefined ? open.timelineS + open.durationS : this.#timelineEndS;
    const windowS = Math.max(this.#dvrS, 4 * this.#group.targetDurationS);
    let start = 0;
    while (start < this.#segments.length - 1 && endS - this.#segments[start]!.timelineS > windowS + EPS_S) start += 1;
    // A window widened by a grown target duration does not list again what already left it: the
    // media sequence number never goes back (RFC 8216 6.2.2).
    while (start < this.#segments.length - 1 && this.#segments[start]!.msn < this.#listedFromMsn) start += 1;
    const segments = this.#segments.slice(start);
    if (segments[0] !== undefined) this.#listedFromMsn = Math.max(this.#listedFromMsn, segments[0].msn);
    const first = segments[0] ?? open;
    const mediaSequence = first?.msn ?? nextMsn;
    const sequence =
      first === undefined ? discontinuitySequence : first.discontinuitySequence - (first.discontinuity ? 1 : 0);
    return { segments, open, mediaSequence, discontinuitySequence: sequence, endTimelineS: endS };
  }

  /** Whether a listed segment's parts are still listed (it ends within three target durations of the end). */
  listsParts(segment: HlsSegment, endTimelineS: number): boolean {
    const fromEndS = endTimelineS - (segment.timelineS + segment.durationS);
    return fromEndS < PART_LIST_TARGETS * this.#group.targetDurationS - EPS_S;
  }

  /** Up to `limit` complete segments, newest first. */
  *recent(limit: number): Generator<HlsSegment> {
    for (let i = this.#segments.length - 1, n = 0; i >= 0 && n < limit; i--, n++) yield this.#segments[i]!;
  }

  /** Adds the bytes of every retained segment and init to `tally`. */
  tallyBytes(tally: RetainedBytes): void {
    for (const seg of this.#segments) tallySegment(seg, tally);
    for (const init of this.#inits) tally.add(init.bytes);
  }

  /** Frees every segment and init. */
  clear(): void {
    this.#segments = [];
    this.#inits = [];
  }

  #pruneInits(open: HlsSegment | undefined, current: InitVersion | undefined): void {
    const used = new Set<InitVersion>();
    for (const seg of this.#segments) used.add(seg.init);
    if (open !== undefined) used.add(open.init);
    if (current !== undefined) used.add(current);
    this.#inits = this.#inits.filter((i) => used.has(i));
  }
}

/** Adds a segment's bytes (its parts' while it is open) to `tally`. */
export function tallySegment(seg: HlsSegment, tally: RetainedBytes): void {
  if (seg.bytes !== undefined) {
    tally.add(seg.bytes);
    return;
  }
  for (const part of seg.parts) if (part.gap !== true) tally.add(part.bytes);
}
