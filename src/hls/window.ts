/**
 * `TrackWindow`: the LL-HLS state of one (broadcast, track). It groups fragments into parts and
 * segments and keeps a sliding DVR window of them with every init version they use; blocking
 * requests wait on it. Synchronous and transport-free; the bridge feeds it.
 */

import { concatBytes, sameBytes } from '../core/bytes.ts';
import type { Fragment, FragmentMeta } from '../fragment/fragment.ts';
import { type Bitrate, measureBitrate } from './bitrate.ts';
import { FOLLOW_BEHIND_TARGETS, gapParts, gapSegment, type LeaderSegment, leaderEndS } from './gap-fill.ts';
import { SegmentStore } from './segment-store.ts';
import {
  EPS_S,
  type GroupTiming,
  type HlsPart,
  type HlsSegment,
  type InitVersion,
  type Listing,
  type PartState,
  type TrackCursor,
  type TrackKind,
} from './track-media.ts';
import { WaiterSet, type WaitOutcome } from './waiter.ts';

/** Options of a track window. */
export type TrackWindowOptions = {
  kind: TrackKind;
  targetDurationMs: number;
  partTargetMs: number;
  dvrWindowMs: number;
  group: GroupTiming;
  /** The track whose segment boundaries this one follows (audio -> video, rung -> source). */
  leader?: () => TrackWindow | undefined;
  /** Numbering to continue from. */
  start?: TrackCursor;
  /** Wall clock, ms (PROGRAM-DATE-TIME when a fragment has no ingest time). */
  now?: () => number;
  /** Told about forced cuts and timestamp regressions. */
  onWarning?: (message: string, fields: Record<string, unknown>) => void;
};

/** Segments are force-cut (without a keyframe) past this many target durations. */
const MAX_SEGMENT_TARGETS = 10;
/** A follower waits at most this many target durations for its leader's boundary. */
const FOLLOW_CAP_TARGETS = 2;
/** How many recent leader segments a boundary lookup scans. */
const LEADER_SCAN = 8;

type PartBuilder = {
  payloads: Uint8Array[];
  bytes: number;
  ticks: number;
  independent: boolean;
};

/** The LL-HLS window of one (broadcast, track). */
export class TrackWindow {
  readonly kind: TrackKind;
  readonly #targetS: number;
  readonly #partTargetS: number;
  readonly #group: GroupTiming;
  readonly #leader: (() => TrackWindow | undefined) | undefined;
  readonly #now: () => number;
  readonly #warn: (message: string, fields: Record<string, unknown>) => void;
  readonly #store: SegmentStore;
  #open: HlsSegment | undefined;
  #part: PartBuilder | undefined;
  /** Ticks of the closed parts of the open segment. */
  #segmentTicks = 0;
  #init: InitVersion | undefined;
  #nextMsn: number;
  #discSeq: number;
  #nextInitVersion: number;
  #pendingDiscontinuity = false;
  #hasHistory = false;
  #lastDts: number | undefined;
  /** Where the last fragment ended (dts + duration), to spot a jump forward. */
  #lastEndDts: number | undefined;
  /** Media before this time (seconds) is listed as GAP: later-arriving fragments of it are dropped. */
  #coveredS: number | undefined;
  /** Missing media is being listed as GAP on the leader's boundaries (gap-fill.ts). */
  #following = false;
  #ended = false;
  #disposed = false;
  readonly #waiters = new WaiterSet();
  #version = 0;
  #fragments = 0;
  #dropped = 0;
  #gaps = 0;
  #forcedCuts = 0;

  /** A window with no media yet. */
  constructor(options: TrackWindowOptions) {
    this.kind = options.kind;
    this.#targetS = options.targetDurationMs / 1000;
    this.#partTargetS = options.partTargetMs / 1000;
    this.#group = options.group;
    this.#store = new SegmentStore(options.dvrWindowMs / 1000, options.group);
    this.#leader = options.leader;
    this.#now = options.now ?? Date.now;
    this.#warn = options.onWarning ?? (() => {});
    this.#nextMsn = options.start?.nextMsn ?? 0;
    this.#discSeq = options.start?.discontinuitySequence ?? 0;
    this.#nextInitVersion = options.start?.nextInitVersion ?? 1;
  }

  /** True after `end()` (EXT-X-ENDLIST) until `resume()`. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bumps at every published change (part, segment, init, end). */
  get version(): number {
    return this.#version;
  }

  /** The init in effect for new media, or undefined before the first one. */
  get init(): InitVersion | undefined {
    return this.#init;
  }

  /** Fragments appended, dropped (no init yet, or no keyframe to start a segment), lag gaps, forced cuts. */
  get counters(): { fragments: number; dropped: number; gaps: number; forcedCuts: number } {
    return { fragments: this.#fragments, dropped: this.#dropped, gaps: this.#gaps, forcedCuts: this.#forcedCuts };
  }

  /** Held blocking requests. */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  /** Numbering a successor of this window continues from. */
  cursor(): TrackCursor {
    return {
      nextMsn: this.#nextMsn,
      discontinuitySequence: this.#discSeq + (this.#hasHistory ? 1 : 0),
      nextInitVersion: this.#nextInitVersion,
    };
  }

  /** Applies a new meta: a new init version when the bytes differ; a discontinuity once media was seen. */
  setMeta(meta: FragmentMeta): void {
    if (this.#disposed) return;
    const initSegment = meta.initSegment;
    const sameInit =
      initSegment !== undefined &&
      this.#init !== undefined &&
      this.#init.timescale === meta.timescale &&
      sameBytes(this.#init.bytes, initSegment);
    // A follower's same init (a rung's new encoder session) keeps the timeline: its timestamps decide.
    if (this.#hasHistory && !(sameInit && this.#activeLeader() !== undefined)) this.#breakTimeline();
    if (initSegment === undefined) {
      this.#init = undefined;
    } else if (
      this.#init === undefined ||
      this.#init.timescale !== meta.timescale ||
      !sameBytes(this.#init.bytes, initSegment)
    ) {
      this.#init = {
        version: this.#nextInitVersion,
        bytes: initSegment,
        codec: meta.codec,
        timescale: meta.timescale,
        meta,
      };
      this.#nextInitVersion += 1;
      this.#store.addInit(this.#init, this.#open);
    }
    this.#changed();
  }

  /** Adds one fragment (one `moof`+`mdat`). */
  append(fragment: Fragment): void {
    if (this.#ended || this.#disposed) return;
    const init = this.#init;
    if (init === undefined) {
      this.#dropped += 1;
      return;
    }
    const ts = init.timescale;
    if (this.#coveredS !== undefined && fragment.pts / ts < this.#coveredS - EPS_S) {
      this.#dropped += 1;
      return;
    }
    if (this.#lastDts !== undefined && fragment.dts < this.#lastDts) {
      this.#warn('timestamps went backwards: discontinuity', {
        kind: this.kind,
        dts: fragment.dts,
        last: this.#lastDts,
      });
      this.#breakTimeline();
    } else if (
      this.#lastEndDts !== undefined &&
      fragment.dts - this.#lastEndDts > this.#partTargetS * ts &&
      !this.#skipTo(fragment.pts / ts)
    ) {
      // More than a part target of media is missing and no leader places it (a publisher that
      // jumped ahead): the playlist timeline would drift from the media, so start a new one.
      this.#warn('timestamps jumped forward: discontinuity', {
        kind: this.kind,
        dts: fragment.dts,
        expected: this.#lastEndDts,
      });
      this.#breakTimeline();
    }
    this.#lastDts = fragment.dts;
    this.#lastEndDts = fragment.dts + fragment.duration;
    const timeS = fragment.pts / ts;
    const durationS = fragment.duration / ts;
    const startsPicture = this.kind === 'audio' || fragment.flags.keyframe;
    let forced = false;
    if (this.#open !== undefined) {
      if (startsPicture && this.#shouldCut(timeS)) {
        this.#closeSegment();
      } else if (!startsPicture && this.#openDurationS() >= MAX_SEGMENT_TARGETS * this.#targetS) {
        this.#forcedCuts += 1;
        this.#warn('no keyframe for too long: segment cut without one', { kind: this.kind, msn: this.#open.msn });
        this.#closeSegment();
        forced = true;
      }
    }
    if (this.#open === undefined) {
      if (!startsPicture && !forced) {
        this.#dropped += 1;
        return;
      }
      this.#openSegment(fragment, timeS);
    }
    if (this.#part !== undefined && (this.#part.ticks + fragment.duration) / ts > this.#partTargetS + EPS_S) {
      this.#closePart();
    }
    if (this.#part === undefined) {
      const independent = this.kind === 'audio' ? fragment.flags.independent : fragment.flags.keyframe;
      this.#part = { payloads: [], bytes: 0, ticks: 0, independent };
    }
    const part = this.#part;
    part.payloads.push(fragment.payload);
    part.bytes += fragment.payload.byteLength;
    part.ticks += fragment.duration;
    this.#fragments += 1;
    // Publish the part now if the next fragment of the same length would not fit.
    const partS = part.ticks / ts;
    if (partS >= this.#partTargetS - EPS_S || partS + durationS > this.#partTargetS + EPS_S) this.#closePart();
  }

  /** The subscriber lost fragments: the part in progress ends here (the next one starts independent). */
  gap(): void {
    if (this.#disposed) return;
    this.#gaps += 1;
    this.#closePart();
  }

  /** Finishes the last segment and marks the playlist ended (EXT-X-ENDLIST). */
  end(): void {
    if (this.#ended || this.#disposed) return;
    if (this.#open !== undefined) this.#closeSegment();
    this.#ended = true;
    this.#changed();
  }

  /** The name is published again: the playlist goes on after a discontinuity. */
  resume(): void {
    if (!this.#ended || this.#disposed) return;
    this.#ended = false;
    if (this.#hasHistory) this.#pendingDiscontinuity = true;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
    this.#coveredS = undefined;
    this.#following = false;
    this.#changed();
  }

  /** Frees the media and releases every waiter with `closed`. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#ended = true;
    this.#store.clear();
    this.#open = undefined;
    this.#part = undefined;
    this.#waiters.closeAll();
  }

  /**
   * Resolves once `check()` holds (checked at every published change), or with `timeout`, `aborted`
   * (the signal fired) or `closed` (the window was disposed).
   */
  waitUntil(check: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (this.#disposed) return Promise.resolve('closed');
    return this.#waiters.wait(check, timeoutMs, signal);
  }

  /** MSN of the last complete segment (one below the first MSN when there is none). */
  get lastCompleteMsn(): number {
    const last = this.#store.last;
    if (last !== undefined) return last.msn;
    return (this.#open?.msn ?? this.#nextMsn) - 1;
  }

  /** The last published part, or undefined before the first. */
  latestPart(): { msn: number; index: number } | undefined {
    const open = this.#open;
    if (open !== undefined && open.parts.length > 0) return { msn: open.msn, index: open.parts.length - 1 };
    const last = this.#store.last;
    return last === undefined ? undefined : { msn: last.msn, index: last.parts.length - 1 };
  }

  /**
   * True once the playlist holds segment `msn` (no `part`), or part `part` of segment `msn` or any
   * later part (RFC 8216bis 6.2.5.2; a part past a segment's last is part 0 of the next). Always
   * true once ended.
   */
  hasReached(msn: number, part?: number): boolean {
    if (this.#ended) return true;
    const lastComplete = this.lastCompleteMsn;
    if (part === undefined) return lastComplete >= msn;
    if (lastComplete > msn) return true;
    const open = this.#open;
    if (lastComplete === msn) {
      const seg = this.#store.last;
      if (seg !== undefined && part < seg.parts.length) return true;
      return open !== undefined && open.parts.length > 0;
    }
    return open !== undefined && open.msn === msn && open.parts.length > part;
  }

  /** A complete segment still retained, or undefined. */
  segment(msn: number): HlsSegment | undefined {
    return this.#store.segment(msn);
  }

  /** A published part, or undefined. */
  part(msn: number, index: number): HlsPart | undefined {
    const open = this.#open;
    const seg = open !== undefined && open.msn === msn ? open : this.segment(msn);
    return seg?.parts[index];
  }

  /**
   * Whether part (`msn`, `index`) exists, may still appear (`pending`: it is at most `lookahead`
   * parts past the live edge) or never will.
   */
  partState(msn: number, index: number, lookahead: number): PartState {
    if (this.part(msn, index) !== undefined) return 'ready';
    if (this.#ended || this.#disposed) return 'never';
    const open = this.#open;
    if (open !== undefined) {
      if (msn === open.msn) return index <= open.parts.length + lookahead ? 'pending' : 'never';
      if (msn === open.msn + 1) return index <= lookahead ? 'pending' : 'never';
      return 'never';
    }
    return msn === this.#nextMsn && index <= lookahead ? 'pending' : 'never';
  }

  /** The init version `version` if a retained segment (or the current init) uses it. */
  initVersion(version: number): InitVersion | undefined {
    return this.#store.initVersion(version);
  }

  /** Where the next part will appear (EXT-X-PRELOAD-HINT), or undefined once ended. */
  nextPartHint(): { msn: number; index: number } | undefined {
    if (this.#ended || this.#disposed || this.#init === undefined) return undefined;
    const open = this.#open;
    if (open === undefined) return { msn: this.#nextMsn, index: 0 };
    if (this.#part === undefined && this.#cutIsDue()) return { msn: open.msn + 1, index: 0 };
    return { msn: open.msn, index: open.parts.length };
  }

  /** The segments the playlist lists now: the DVR window (at least four target durations). */
  listing(): Listing {
    const open = this.#open !== undefined && this.#open.parts.length > 0 ? this.#open : undefined;
    return this.#store.listing(open, this.#nextMsn, this.#discSeq);
  }

  /** Whether a listed segment's parts are still listed (it ends within three target durations of the end). */
  listsParts(segment: HlsSegment, endTimelineS: number): boolean {
    return this.#store.listsParts(segment, endTimelineS);
  }

  /**
   * Peak and average bitrate in bits/s over the listed complete segments (the peak ignores short
   * first/last segments); before the first complete segment, an estimate from the parts so far.
   */
  bitrate(): Bitrate {
    return measureBitrate(this.listing().segments, this.#open, this.#targetS);
  }

  /**
   * MSN and discontinuity sequence of the segment holding presentation time `timeS` (or of the
   * oldest segment of the current timeline when `timeS` is earlier), for aligning a follower.
   */
  locate(timeS: number): { msn: number; discontinuitySequence: number } | undefined {
    let found: HlsSegment | undefined;
    for (const seg of this.#recent(Number.POSITIVE_INFINITY)) {
      found = seg;
      if (seg.startTimeS <= timeS + EPS_S || seg.discontinuity) break;
    }
    return found === undefined ? undefined : { msn: found.msn, discontinuitySequence: found.discontinuitySequence };
  }

  /** True when a segment of the current timeline starts in (`afterS`, `untilS`]. */
  hasBoundary(afterS: number, untilS: number): boolean {
    for (const seg of this.#recent(LEADER_SCAN)) {
      if (seg.startTimeS <= afterS) return false;
      if (seg.discontinuity) return false;
      if (seg.startTimeS <= untilS) return true;
    }
    return false;
  }

  /** Where segment `msn` lies, while it is retained (the open one included). */
  leaderSegment(msn: number): LeaderSegment | undefined {
    const open = this.#open;
    const seg = open !== undefined && open.msn === msn ? open : this.#store.segment(msn);
    if (seg === undefined) return undefined;
    const { startTimeS, durationS, programDateTimeMs } = seg;
    return { msn, startTimeS, durationS, programDateTimeMs, complete: seg !== open };
  }

  /**
   * The leader moved on. A follower whose media ends more than `FOLLOW_BEHIND_TARGETS` target
   * durations before its leader's complete media (a paused or stopped rung; a merely slow one stays
   * closer) lists the leader's complete segments as GAP segments, and goes on doing so at each call
   * until its own media comes back.
   */
  follow(): void {
    if (this.#ended || this.#disposed || !this.#hasHistory || this.#init === undefined) return;
    const leader = this.#activeLeader();
    const open = this.#open;
    if (leader === undefined || leader.lastCompleteMsn < (open?.msn ?? this.#nextMsn)) return;
    const last = leader.leaderSegment(leader.lastCompleteMsn);
    const fromS = this.#endS();
    if (last === undefined || fromS === undefined) return;
    if (!this.#following && leaderEndS(last) - fromS < FOLLOW_BEHIND_TARGETS * this.#group.targetDurationS) return;
    if (open !== undefined) {
      const own = leader.leaderSegment(open.msn);
      if (own === undefined || !own.complete) return;
      this.#padOpen(leaderEndS(own) - fromS);
      this.#closeSegment();
      this.#coveredS = leaderEndS(own);
    }
    if (!this.#following) this.#warn('no media: listing GAP segments after the leader', { kind: this.kind, at: fromS });
    this.#following = true;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
    this.#fillGaps(Number.POSITIVE_INFINITY);
  }

  /** Whether this window has ever opened a segment. */
  get hasMedia(): boolean {
    return this.#hasHistory;
  }

  /** The open segment then up to `limit` recent complete ones, newest first. */
  *#recent(limit: number): Generator<HlsSegment> {
    if (this.#open !== undefined) yield this.#open;
    yield* this.#store.recent(limit);
  }

  #activeLeader(): TrackWindow | undefined {
    const leader = this.#leader?.();
    if (leader === undefined || leader === this || leader.ended || leader.#disposed) return undefined;
    return leader;
  }

  #capS(): number {
    return FOLLOW_CAP_TARGETS * Math.max(this.#targetS, this.#group.targetDurationS);
  }

  /** Decides whether a fragment that may start a segment (keyframe, or any audio) at `timeS` cuts. */
  #shouldCut(timeS: number): boolean {
    const open = this.#open!;
    const segS = this.#openDurationS();
    const leader = this.#activeLeader();
    if (leader === undefined) return segS >= this.#targetS - EPS_S;
    // Cut at the leader's boundary once it is known; a leader that lags (or stalls) is waited for, within a cap.
    return leader.hasBoundary(open.startTimeS + EPS_S, timeS + EPS_S) || segS >= this.#capS();
  }

  /** Whether the next segment-starting fragment is expected to cut (for the preload hint). */
  #cutIsDue(): boolean {
    const open = this.#open!;
    const segS = this.#openDurationS();
    const leader = this.#activeLeader();
    if (leader === undefined) return segS >= this.#targetS - EPS_S;
    return leader.hasBoundary(open.startTimeS + EPS_S, open.startTimeS + segS + EPS_S);
  }

  #openDurationS(): number {
    const open = this.#open;
    if (open === undefined) return 0;
    const partS = this.#part === undefined || this.#init === undefined ? 0 : this.#part.ticks / this.#init.timescale;
    return open.durationS + partS;
  }

  /** Where the listed media ends, seconds (the last fragment's end, or the end of the GAPs). */
  #endS(): number | undefined {
    return this.#lastEndDts !== undefined && this.#init !== undefined
      ? this.#lastEndDts / this.#init.timescale
      : this.#coveredS;
  }

  /** A follower skipped media up to `timeS`: listed as GAP on its leader's boundaries; false when none places it. */
  #skipTo(timeS: number): boolean {
    const leader = this.#activeLeader();
    const fromS = this.#endS();
    const open = this.#open;
    if (leader === undefined || fromS === undefined) return false;
    if (open !== undefined) {
      const own = leader.leaderSegment(open.msn);
      if (own === undefined) return false;
      const endS = leaderEndS(own);
      this.#padOpen(Math.min(endS, timeS) - fromS);
      if (timeS < endS - EPS_S) return true;
      this.#closeSegment();
      this.#coveredS = endS;
    }
    this.#following = true;
    return true;
  }

  /** Lists the leader's segments from the next MSN that end by `untilS` as GAP; returns the one holding `untilS`. */
  #fillGaps(untilS: number): LeaderSegment | undefined {
    const leader = this.#activeLeader();
    const init = this.#init;
    if (leader === undefined || init === undefined) return undefined;
    for (;;) {
      const seg = leader.leaderSegment(this.#nextMsn);
      if (seg === undefined || seg.startTimeS > untilS + EPS_S) return undefined;
      if (!seg.complete || leaderEndS(seg) > untilS + EPS_S) return seg;
      const discontinuity = this.#takeDiscontinuity();
      this.#store.add(gapSegment(seg, init, this.#store.timelineEndS, discontinuity, this.#discSeq));
      this.#nextMsn += 1;
      this.#coveredS = leaderEndS(seg);
      this.#group.observeSegment(seg.durationS);
      this.#store.trim(this.#open, init);
      this.#changed();
    }
  }

  /** Whether the next segment carries EXT-X-DISCONTINUITY (then counted). */
  #takeDiscontinuity(): boolean {
    const discontinuity = this.#pendingDiscontinuity && this.#hasHistory;
    if (discontinuity) this.#discSeq += 1;
    this.#pendingDiscontinuity = false;
    return discontinuity;
  }

  /** Appends GAP parts for `durationS` of missing media to the open segment. */
  #padOpen(durationS: number): void {
    const open = this.#open;
    if (open === undefined || durationS <= EPS_S) return;
    this.#closePart();
    open.parts.push(...gapParts(open.msn, open.parts.length, durationS, this.#group.partTargetS));
    this.#segmentTicks += Math.round(durationS * open.init.timescale);
    open.durationS = this.#segmentTicks / open.init.timescale;
    this.#changed();
  }

  #openSegment(fragment: Fragment, timeS: number): void {
    const init = this.#init!;
    if (!this.#hasHistory) {
      // A follower that starts late takes its leader's numbering, so MSNs line up across playlists.
      const at = this.#leader?.()?.locate(timeS);
      if (at !== undefined && at.msn >= this.#nextMsn && at.discontinuitySequence >= this.#discSeq) {
        this.#nextMsn = at.msn;
        this.#discSeq = at.discontinuitySequence;
      }
    }
    // After missing media a follower lists the leader's segments up to this one as GAP, and takes
    // the leader's start and PROGRAM-DATE-TIME for this one (its head listed as GAP parts).
    const head = this.#following && this.#hasHistory ? this.#fillGaps(timeS) : undefined;
    this.#following = false;
    const discontinuity = this.#takeDiscontinuity();
    const previous = this.#store.last;
    let pdt = head?.programDateTimeMs ?? fragment.ingestTimeMs;
    if (!(pdt > 0)) {
      pdt =
        previous !== undefined && !discontinuity ? previous.programDateTimeMs + previous.durationS * 1000 : this.#now();
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
    if (head !== undefined) this.#padOpen(timeS - head.startTimeS);
  }

  #closePart(): void {
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
      bytes: concatBytes(builder.payloads, builder.bytes),
    });
    this.#segmentTicks += builder.ticks;
    open.durationS = this.#segmentTicks / open.init.timescale;
    open.byteLength += builder.bytes;
    this.#group.observePart(durationS);
    this.#changed();
  }

  #closeSegment(): void {
    this.#closePart();
    const seg = this.#open;
    this.#open = undefined;
    if (seg === undefined || seg.parts.length === 0) return;
    const bytes = concatBytes(
      seg.parts.map((p) => p.bytes),
      seg.byteLength,
    );
    // The parts become views of the segment bytes: one copy of the media is kept.
    let offset = 0;
    for (const part of seg.parts) {
      const length = part.bytes.byteLength;
      part.bytes = bytes.subarray(offset, offset + length);
      offset += length;
    }
    seg.bytes = bytes;
    this.#store.add(seg);
    this.#group.observeSegment(seg.durationS);
    this.#store.trim(this.#open, this.#init);
    this.#changed();
  }

  /** Closes the media so far; the next segment carries EXT-X-DISCONTINUITY. */
  #breakTimeline(): void {
    if (this.#open !== undefined) this.#closeSegment();
    this.#pendingDiscontinuity = true;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
    this.#coveredS = undefined;
  }

  #changed(): void {
    this.#version += 1;
    this.#group.touch();
    this.#waiters.wake();
  }
}
