/**
 * `SegmentBuilder`: the segment a track is building and its part in progress, the track's media
 * sequence and discontinuity numbering, and the hand-over of completed segments (real or GAP) to
 * the segment store. It decides nothing about when to cut: the window and its leader follower do.
 */

import type { SilentFrame } from '../container/index.ts';
import type { Fragment } from '../fragment/fragment.ts';
import { gapParts, gapSegment, type LeaderSegment } from './gap-fill.ts';
import { type SegmentStore, tallySegment } from './segment-store.ts';
import { silenceFor, silentFragment } from './silence-fill.ts';
import {
  type DateAnchor,
  EPS_S,
  type GroupTiming,
  type HlsSegment,
  type InitVersion,
  type MediaSlabs,
  type RetainedBytes,
  type TrackCursor,
} from './track-media.ts';

/** What a segment builder reads from and reports to its window. */
export type SegmentBuilderOptions = {
  /** Where completed segments go. */
  store: SegmentStore;
  /** Where part and segment bytes are copied. */
  slabs: MediaSlabs;
  group: GroupTiming;
  /** The track's own part target, seconds. */
  partTargetS: number;
  /** Numbering to continue from. */
  start?: Pick<TrackCursor, 'nextMsn' | 'discontinuitySequence'> | undefined;
  /** Wall clock, ms (PROGRAM-DATE-TIME when a fragment has no ingest time). */
  now: () => number;
  /** The init in effect for new media (kept by the store while in use). */
  init: () => InitVersion | undefined;
  /** Told at every published part or segment. */
  changed: () => void;
};

type PartBuilder = {
  payloads: Uint8Array[];
  bytes: number;
  ticks: number;
  independent: boolean;
};

/** The open segment and the numbering of one track. */
export class SegmentBuilder {
  readonly #store: SegmentStore;
  readonly #group: GroupTiming;
  readonly #partTargetS: number;
  readonly #now: () => number;
  readonly #init: () => InitVersion | undefined;
  readonly #changed: () => void;
  #open: HlsSegment | undefined;
  #part: PartBuilder | undefined;
  readonly #slabs: MediaSlabs;
  /** Ticks of the closed parts of the open segment. */
  #segmentTicks = 0;
  #nextMsn: number;
  #discSeq: number;
  #pendingDiscontinuity = false;
  #hasHistory = false;
  /** Where the current timeline's PROGRAM-DATE-TIMEs are counted from. */
  #dateAnchor: DateAnchor | undefined;

  /** A builder with no segment open. */
  constructor(options: SegmentBuilderOptions) {
    this.#store = options.store;
    this.#group = options.group;
    this.#partTargetS = options.partTargetS;
    this.#now = options.now;
    this.#init = options.init;
    this.#changed = options.changed;
    this.#slabs = options.slabs;
    this.#nextMsn = options.start?.nextMsn ?? 0;
    this.#discSeq = options.start?.discontinuitySequence ?? 0;
  }

  /** The segment being built, or undefined between segments. */
  get open(): HlsSegment | undefined {
    return this.#open;
  }

  /** Adds the bytes of the open segment and of the part being gathered to `tally`. */
  tallyBytes(tally: RetainedBytes): void {
    if (this.#open !== undefined) tallySegment(this.#open, tally);
    for (const payload of this.#part?.payloads ?? []) tally.add(payload);
  }

  /** Discontinuity Sequence Number the next segment to open will have. */
  get nextDiscontinuitySequence(): number {
    return this.#discSeq + (this.#pendingDiscontinuity && this.#hasHistory ? 1 : 0);
  }

  /** MSN of the next segment to open. */
  get nextMsn(): number {
    return this.#nextMsn;
  }

  /** Discontinuity sequence of the current timeline. */
  get discontinuitySequence(): number {
    return this.#discSeq;
  }

  /** Whether a segment was ever opened. */
  get hasHistory(): boolean {
    return this.#hasHistory;
  }

  /** Whether a part is in progress (fragments not yet published). */
  get partInProgress(): boolean {
    return this.#part !== undefined;
  }

  /** MSN and discontinuity sequence a successor of this track continues from. */
  numbering(): { nextMsn: number; discontinuitySequence: number } {
    return { nextMsn: this.#nextMsn, discontinuitySequence: this.#discSeq + (this.#hasHistory ? 1 : 0) };
  }

  /** Duration of the open segment so far, the part in progress included (0 with none open). */
  durationS(): number {
    const open = this.#open;
    if (open === undefined) return 0;
    const partS = this.#part === undefined || this.#init() === undefined ? 0 : this.#part.ticks / open.init.timescale;
    return open.durationS + partS;
  }

  /** Before the first segment: takes the numbering `at` (a leader's) when it is not behind this track's. */
  alignTo(at: { msn: number; discontinuitySequence: number }): void {
    if (at.msn >= this.#nextMsn && at.discontinuitySequence >= this.#discSeq) {
      this.#nextMsn = at.msn;
      this.#discSeq = at.discontinuitySequence;
    }
  }

  /**
   * Opens the next segment at `timeS`. With `head` (the leader's segment holding `timeS`, after
   * missing media) it takes the head's start and PROGRAM-DATE-TIME, its head listed as GAP parts.
   *
   * PROGRAM-DATE-TIME advances with the media: a follower's date is its leader's date of the same
   * instant (`leaderDateMs`); otherwise each timeline has one anchor (a date at a media time) and a
   * segment's date is the anchor's plus the media time since it, so every playlist maps media time
   * to one wall clock (players such as hls.js align playlists, and renditions with each other, by
   * these dates) and a publisher that runs slow or catches up moves no date against the media. The
   * anchor is `dates.anchor` (a cluster producer's, for its first timeline), else the first
   * segment's: its first fragment's ingest time, else now; a date taken from the leader becomes the
   * anchor.
   */
  openSegment(
    init: InitVersion,
    timeS: number,
    dates: { ingestTimeMs: number; leaderDateMs: number | undefined; anchor?: DateAnchor | undefined },
    head: LeaderSegment | undefined,
  ): void {
    const discontinuity = this.#takeDiscontinuity();
    if (discontinuity || this.#dateAnchor === undefined) {
      this.#dateAnchor = (!discontinuity ? dates.anchor : undefined) ?? {
        dateMs: dates.ingestTimeMs > 0 ? dates.ingestTimeMs : this.#now(),
        timeS,
      };
    }
    const anchor = this.#dateAnchor;
    const pdt = head?.programDateTimeMs ?? dates.leaderDateMs ?? anchor.dateMs + (timeS - anchor.timeS) * 1000;
    // A date taken from the leader anchors what follows: a segment the leader cannot place (it
    // ended first) continues the leader's dates, not this node's own first ingest time.
    if (head !== undefined || dates.leaderDateMs !== undefined) {
      this.#dateAnchor = { dateMs: pdt, timeS: head?.startTimeS ?? timeS };
    }
    this.#open = {
      msn: this.#nextMsn,
      discontinuity,
      discontinuitySequence: this.#discSeq,
      init,
      programDateTimeMs: pdt,
      startTimeS: head?.startTimeS ?? timeS,
      timelineS: this.#store.timelineEndS,
      durationS: 0,
      byteLength: 0,
      parts: [],
      bytes: undefined,
    };
    this.#nextMsn += 1;
    this.#segmentTicks = 0;
    this.#hasHistory = true;
    if (head !== undefined) this.pad(timeS - head.startTimeS);
  }

  /**
   * Adds a fragment to the open segment's part in progress (`independent`: it starts one), which is
   * published once full or once the next fragment of the same length would not fit.
   */
  append(fragment: Fragment, independent: boolean): void {
    const open = this.#open;
    if (open === undefined) return;
    const ts = open.init.timescale;
    if (this.#part !== undefined && (this.#part.ticks + fragment.duration) / ts > this.#partTargetS + EPS_S) {
      this.closePart();
    }
    if (this.#part === undefined) this.#part = { payloads: [], bytes: 0, ticks: 0, independent };
    const part = this.#part;
    part.payloads.push(fragment.payload);
    part.bytes += fragment.payload.byteLength;
    part.ticks += fragment.duration;
    const partS = part.ticks / ts;
    const durationS = fragment.duration / ts;
    if (partS >= this.#partTargetS - EPS_S || partS + durationS > this.#partTargetS + EPS_S) this.closePart();
  }

  /**
   * Appends `durationS` of missing media after the media received so far: silence for an audio
   * track that has a silent frame (silence-fill.ts; the part in progress keeps its media and the
   * silence follows it), else GAP parts. With GAP, the part in progress goes into the GAP too (at
   * most a part target of trailing media, nothing after it depends on it): a player waiting at the
   * live edge then meets GAP as the first new part. Listing it as a short part of media with GAP
   * parts after it, in one playlist update, stalled hls.js 1.7.4 for good: it loads the media part,
   * meets the GAP while still parsing it, switches level and never leaves its parsing state.
   */
  pad(durationS: number): void {
    const open = this.#open;
    if (open === undefined || durationS <= EPS_S) return;
    const silence = silenceFor(open.init);
    if (silence !== undefined) {
      this.#fillSilence(open, silence, durationS);
      return;
    }
    const droppedTicks = this.#part?.ticks ?? 0;
    this.#part = undefined;
    const ts = open.init.timescale;
    const gapS = durationS + droppedTicks / ts;
    open.parts.push(...gapParts(open.msn, open.parts.length, gapS, this.#group.partTargetS));
    this.#segmentTicks += droppedTicks + Math.round(durationS * ts);
    open.durationS = this.#segmentTicks / ts;
    this.#changed();
  }

  /**
   * Lists the leader's complete segment `seg` as the next segment: silence for an audio track that
   * has a silent frame, else an EXT-X-GAP segment.
   */
  addGap(seg: LeaderSegment, init: InitVersion): void {
    const silence = this.#open === undefined ? silenceFor(init) : undefined;
    if (silence !== undefined && Math.round(seg.durationS * init.timescale) > 0) {
      this.openSegment(init, seg.startTimeS, { ingestTimeMs: 0, leaderDateMs: undefined }, seg);
      this.pad(seg.durationS);
      this.closeSegment();
      return;
    }
    const discontinuity = this.#takeDiscontinuity();
    this.#store.add(gapSegment(seg, init, this.#store.timelineEndS, discontinuity, this.#discSeq));
    this.#nextMsn += 1;
    this.#group.observeSegment(seg.durationS);
    this.#store.trim(this.#open, init);
    this.#changed();
  }

  /** Appends silent fragments for `durationS` after the media so far, filling the part in progress first. */
  #fillSilence(open: HlsSegment, frame: SilentFrame, durationS: number): void {
    const ts = open.init.timescale;
    const from = open.startTimeS * ts + this.#segmentTicks + (this.#part?.ticks ?? 0);
    let tick = Math.round(from);
    const end = Math.round(from + durationS * ts);
    const perPart = Math.max(1, Math.floor((this.#partTargetS * ts + 1) / frame.ticks)) * frame.ticks;
    const room = Math.floor((this.#partTargetS * ts + 1 - (this.#part?.ticks ?? 0)) / frame.ticks) * frame.ticks;
    let ticks = room > 0 ? room : perPart;
    while (tick < end) {
      ticks = Math.min(ticks, end - tick);
      this.append(silentFragment(frame, tick, ticks), true);
      tick += ticks;
      ticks = perPart;
    }
  }

  /** Publishes the part in progress, if it has media. */
  closePart(): void {
    const builder = this.#part;
    this.#part = undefined;
    const open = this.#open;
    if (builder === undefined || open === undefined || builder.payloads.length === 0) return;
    const durationS = builder.ticks / open.init.timescale;
    open.parts.push({
      msn: open.msn,
      index: open.parts.length,
      durationS,
      independent: builder.independent,
      bytes: this.#slabs.parts.join(builder.payloads, builder.bytes),
    });
    this.#segmentTicks += builder.ticks;
    open.durationS = this.#segmentTicks / open.init.timescale;
    open.byteLength += builder.bytes;
    this.#group.observePart(durationS);
    this.#changed();
  }

  /** Completes the open segment (its parts become views of one copy of its bytes) and hands it to the store. */
  closeSegment(): void {
    this.closePart();
    const seg = this.#open;
    this.#open = undefined;
    if (seg === undefined || seg.parts.length === 0) return;
    const bytes = this.#slabs.segments.join(
      seg.parts.map((p) => p.bytes),
      seg.byteLength,
    );
    let offset = 0;
    for (const part of seg.parts) {
      const length = part.bytes.byteLength;
      part.bytes = bytes.subarray(offset, offset + length);
      offset += length;
    }
    seg.bytes = bytes;
    // Only GAP parts (its media went into the GAP): the segment is a GAP one, for every kind of player.
    this.#store.add(seg.parts.every((p) => p.gap === true) ? { ...seg, gap: true } : seg);
    this.#group.observeSegment(seg.durationS);
    this.#store.trim(this.#open, this.#init());
    this.#changed();
  }

  /** Closes the media so far; the next segment (once there was one) carries EXT-X-DISCONTINUITY. */
  breakTimeline(): void {
    if (this.#open !== undefined) this.closeSegment();
    this.#pendingDiscontinuity = true;
  }

  /** Drops the open segment and the part in progress. */
  clear(): void {
    this.#open = undefined;
    this.#part = undefined;
  }

  /** Whether the next segment carries EXT-X-DISCONTINUITY (then counted). */
  #takeDiscontinuity(): boolean {
    const discontinuity = this.#pendingDiscontinuity && this.#hasHistory;
    if (discontinuity) this.#discSeq += 1;
    this.#pendingDiscontinuity = false;
    return discontinuity;
  }
}
