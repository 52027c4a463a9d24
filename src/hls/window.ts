/**
 * `TrackWindow`: the LL-HLS state of one (broadcast, track). It groups fragments into parts and
 * segments and keeps a sliding DVR window of them with every init version they use; blocking
 * requests wait on it. Synchronous and transport-free; the bridge feeds it. The open segment and
 * numbering are a `SegmentBuilder`'s; where segments are cut and GAPs after a leader are a
 * `LeaderFollower`'s; the window checks timestamps and answers queries.
 */

import { sameBytes } from '../core/bytes.ts';
import type { Fragment, FragmentMeta } from '../fragment/fragment.ts';
import { type Bitrate, measureBitrate } from './bitrate.ts';
import { FollowerHold } from './follower-hold.ts';
import type { LeaderSegment } from './gap-fill.ts';
import { initId } from './init-id.ts';
import { LeaderFollower } from './leader-follower.ts';
import { LeaderView } from './leader-view.ts';
import { SegmentBuilder } from './segment-builder.ts';
import { SegmentStore } from './segment-store.ts';
import {
  type DateAnchor,
  EPS_S,
  type GroupTiming,
  type HlsPart,
  type HlsSegment,
  type InitVersion,
  type Listing,
  mediaSlabs,
  type PartState,
  type RetainedBytes,
  type TrackCursor,
  type TrackKind,
} from './track-media.ts';
import { WaiterSet, type WaitOutcome } from './waiter.ts';
import { LEADER_WAIT_TARGETS, MAX_SEGMENT_TARGETS, type WindowOptions } from './window-options.ts';

/** Options of a track window. */
export type TrackWindowOptions = WindowOptions<TrackWindow>;

/** The LL-HLS window of one (broadcast, track). */
export class TrackWindow {
  readonly kind: TrackKind;
  readonly #targetS: number;
  readonly #partTargetS: number;
  readonly #group: GroupTiming;
  readonly #warn: (message: string, fields: Record<string, unknown>) => void;
  readonly #store: SegmentStore;
  /** What followers read of this window. */
  readonly #view: LeaderView;
  /** The open segment and the numbering. */
  readonly #builder: SegmentBuilder;
  /** Cuts at the leader's boundaries and GAPs after it. */
  readonly #follower: LeaderFollower;
  readonly #leader: () => TrackWindow | undefined;
  readonly #startAtLeader: boolean;
  readonly #holdForLeader: boolean;
  /** This track's fragments waiting for its leader's media. */
  readonly #hold: FollowerHold;
  /** Followers' holds waiting for this window's media. */
  readonly holds = new Set<FollowerHold>();
  /** With `startAtLeader`: when the first fragment came, seconds (a track without a leader waits a while for one). */
  #firstSeenS: number | undefined;
  readonly #now: () => number;
  #init: InitVersion | undefined;
  /** Where the first timeline's PROGRAM-DATE-TIMEs are counted from, when the start cursor gives it. */
  readonly #dateAnchor: DateAnchor | undefined;
  #lastDts: number | undefined;
  /** Where the last fragment ended (dts + duration), to spot a jump forward. */
  #lastEndDts: number | undefined;
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
    this.#warn = options.onWarning ?? (() => {});
    this.#dateAnchor = options.start?.dateAnchor;
    const init = (): InitVersion | undefined => this.#init;
    this.#startAtLeader = options.startAtLeader === true;
    this.#now = options.now ?? Date.now;
    this.#holdForLeader = options.holdForLeader === true;
    this.#leader = () => {
      const leader = options.leader?.();
      return leader === this ? undefined : leader;
    };
    this.#builder = new SegmentBuilder({
      store: this.#store,
      slabs: options.slabs ?? mediaSlabs(),
      group: options.group,
      partTargetS: this.#partTargetS,
      start: options.start,
      now: this.#now,
      init,
      changed: () => this.#changed(),
    });
    this.#view = new LeaderView(this.#store, () => this.#builder.open);
    this.#follower = new LeaderFollower({
      builder: this.#builder,
      leader: this.#leader,
      init,
      targetS: this.#targetS,
      group: options.group,
      warn: (message, fields) => this.#warn(message, { kind: this.kind, ...fields }),
    });
    this.#hold = new FollowerHold({
      track: {
        kind: this.kind,
        timescale: () => this.#init?.timescale,
        lastDts: () => this.#lastDts,
        lastEndDts: () => this.#lastEndDts,
        nextDiscontinuitySequence: () => this.#builder.nextDiscontinuitySequence,
        hasHistory: () => this.#builder.hasHistory,
        leader: this.#leader,
        append: (fragment) => {
          if (!this.#ended && !this.#disposed) this.#appendNow(fragment);
        },
        drop: (count) => {
          this.#dropped += count;
        },
        warn: this.#warn,
      },
      holdForLeader: this.#holdForLeader,
      startAtLeader: this.#startAtLeader,
      targetS: this.#targetS,
      partTargetS: this.#partTargetS,
      now: this.#now,
    });
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

  /** Fragments appended, dropped (no init yet, or no keyframe to start a segment), held for the leader, lag gaps, forced cuts. */
  get counters(): { fragments: number; dropped: number; held: number; gaps: number; forcedCuts: number } {
    return {
      fragments: this.#fragments,
      dropped: this.#dropped,
      held: this.#hold.fragments.length,
      gaps: this.#gaps,
      forcedCuts: this.#forcedCuts,
    };
  }

  /** Held blocking requests. */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  /** Numbering a successor of this window continues from. */
  cursor(): TrackCursor {
    return this.#builder.numbering();
  }

  /** Applies a new meta: a new init version when the bytes differ; a discontinuity once media was seen. */
  setMeta(meta: FragmentMeta): void {
    if (this.#disposed) return;
    this.#hold.dropOrphans();
    this.#hold.release(true);
    const initSegment = meta.initSegment;
    const sameInit =
      initSegment !== undefined &&
      this.#init !== undefined &&
      this.#init.timescale === meta.timescale &&
      sameBytes(this.#init.bytes, initSegment);
    // A follower's same init (a rung's new encoder session) keeps the timeline: its timestamps decide.
    if (this.#builder.hasHistory && !(sameInit && this.#follower.hasLeader)) this.#breakTimeline();
    if (initSegment === undefined) {
      this.#init = undefined;
    } else if (
      this.#init === undefined ||
      this.#init.timescale !== meta.timescale ||
      !sameBytes(this.#init.bytes, initSegment)
    ) {
      this.#init = {
        version: initId(initSegment, meta.timescale),
        bytes: initSegment,
        codec: meta.codec,
        timescale: meta.timescale,
        meta,
      };
      this.#store.addInit(this.#init, this.#builder.open);
    }
    this.#changed();
  }

  /** Adds one fragment (one `moof`+`mdat`). */
  append(fragment: Fragment): void {
    if (this.#ended || this.#disposed) return;
    if (this.#hold.take(fragment)) return;
    this.#appendNow(fragment);
    for (const hold of this.holds) hold.release(false);
  }

  /** The discontinuity sequence this window's next segment opens on. */
  get nextDiscontinuitySequence(): number {
    return this.#builder.nextDiscontinuitySequence;
  }

  /** Whether this window has received media up to `timeS` (seconds). */
  receivedTo(timeS: number): boolean {
    const init = this.#init;
    return init !== undefined && this.#lastEndDts !== undefined && this.#lastEndDts / init.timescale >= timeS - EPS_S;
  }

  #appendNow(fragment: Fragment): void {
    const init = this.#init;
    if (init === undefined) {
      this.#dropped += 1;
      return;
    }
    const ts = init.timescale;
    const timeS = fragment.pts / ts;
    if (this.#follower.covers(timeS) || this.#beforeLeader(timeS, fragment.duration / ts)) {
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
      !this.#follower.skipTo(this.#lastEndDts / ts, timeS)
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
    const startsPicture = this.kind === 'audio' || fragment.flags.keyframe;
    const builder = this.#builder;
    let forced = false;
    const open = builder.open;
    if (open !== undefined) {
      if (startsPicture && this.#follower.shouldCut(timeS)) {
        builder.closeSegment();
      } else if (!startsPicture && builder.durationS() >= MAX_SEGMENT_TARGETS * this.#targetS) {
        this.#forcedCuts += 1;
        this.#warn('no keyframe for too long: segment cut without one', { kind: this.kind, msn: open.msn });
        builder.closeSegment();
        forced = true;
      }
    }
    if (builder.open === undefined) {
      if ((!startsPicture && !forced) || this.#follower.beforeLeadersTimeline(timeS)) {
        this.#dropped += 1;
        return;
      }
      const head = this.#follower.segmentHead(timeS);
      const dates = {
        ingestTimeMs: fragment.ingestTimeMs,
        leaderDateMs: this.#follower.leaderDateAt(timeS),
        anchor: this.#dateAnchor,
      };
      builder.openSegment(init, timeS, dates, head);
    }
    builder.append(fragment, this.kind === 'audio' ? fragment.flags.independent : fragment.flags.keyframe);
    this.#fragments += 1;
  }

  /** The subscriber lost fragments: the part in progress ends here (the next one starts independent). */
  gap(): void {
    if (this.#disposed) return;
    this.#hold.release(true);
    this.#gaps += 1;
    this.#builder.closePart();
  }

  /** Finishes the last segment and marks the playlist ended (EXT-X-ENDLIST). */
  end(): void {
    if (this.#ended || this.#disposed) return;
    this.#hold.release(true);
    if (this.#builder.open !== undefined) this.#builder.closeSegment();
    this.#ended = true;
    for (const hold of this.holds) hold.release(true);
    this.#changed();
  }

  /** The name is published again: the playlist goes on after a discontinuity. */
  resume(): void {
    if (!this.#ended || this.#disposed) return;
    this.#ended = false;
    this.#builder.breakTimeline();
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
    this.#follower.reset();
    this.#changed();
  }

  /** Frees the media and releases every waiter with `closed`. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#hold.clear();
    for (const hold of this.holds) hold.release(true);
    this.holds.clear();
    this.#disposed = true;
    this.#ended = true;
    this.#store.clear();
    this.#builder.clear();
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

  /** The longest of its recent complete segments, seconds; 0 with none. */
  get longestRecentS(): number {
    return this.#view.longestRecentS;
  }

  /** MSN of the last complete segment (one below the first MSN when there is none). */
  get lastCompleteMsn(): number {
    const last = this.#store.last;
    if (last !== undefined) return last.msn;
    return (this.#builder.open?.msn ?? this.#builder.nextMsn) - 1;
  }

  /** The last published part, or undefined before the first. */
  latestPart(): { msn: number; index: number } | undefined {
    const open = this.#builder.open;
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
    const open = this.#builder.open;
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
    const open = this.#builder.open;
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
    const open = this.#builder.open;
    if (open !== undefined) {
      if (msn === open.msn) return index <= open.parts.length + lookahead ? 'pending' : 'never';
      if (msn === open.msn + 1) return index <= lookahead ? 'pending' : 'never';
      return 'never';
    }
    return msn === this.#builder.nextMsn && index <= lookahead ? 'pending' : 'never';
  }

  /** Adds the bytes this window holds (segments, inits, the open segment, held fragments) to `tally`. */
  tallyBytes(tally: RetainedBytes): void {
    this.#store.tallyBytes(tally);
    this.#builder.tallyBytes(tally);
    for (const fragment of this.#hold.fragments) tally.add(fragment.payload);
  }

  /** The init version `version` if a retained segment (or the current init) uses it. */
  initVersion(version: number): InitVersion | undefined {
    return this.#store.initVersion(version);
  }

  /** Where the next part will appear (EXT-X-PRELOAD-HINT), or undefined once ended. */
  nextPartHint(): { msn: number; index: number } | undefined {
    if (this.#ended || this.#disposed || this.#init === undefined) return undefined;
    const open = this.#builder.open;
    if (open === undefined) return { msn: this.#builder.nextMsn, index: 0 };
    if (!this.#builder.partInProgress && this.#follower.cutIsDue()) return { msn: open.msn + 1, index: 0 };
    return { msn: open.msn, index: open.parts.length };
  }

  /** The segments the playlist lists now: the DVR window (at least four target durations). */
  listing(): Listing {
    const builder = this.#builder;
    const open = builder.open !== undefined && builder.open.parts.length > 0 ? builder.open : undefined;
    return this.#store.listing(open, builder.nextMsn, builder.discontinuitySequence);
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
    return measureBitrate(this.listing().segments, this.#builder.open, this.#targetS);
  }

  /**
   * MSN and discontinuity sequence of the segment holding presentation time `timeS` (or of the
   * oldest segment of the current timeline when `timeS` is earlier), for aligning a follower.
   */
  locate(timeS: number): { msn: number; discontinuitySequence: number } | undefined {
    return this.#view.locate(timeS);
  }

  /** Whether a segment starts in (`afterS`, `untilS`] for a follower whose open segment is `msn` on timeline `discontinuitySequence` (`leaderBoundary`). */
  hasBoundary(afterS: number, untilS: number, msn?: number, discontinuitySequence?: number): boolean {
    return this.#view.hasBoundary(afterS, untilS, msn, discontinuitySequence);
  }

  /** Where segment `msn` lies, while it is retained (the open one included). */
  leaderSegment(msn: number): LeaderSegment | undefined {
    return this.#view.segment(msn);
  }

  /**
   * The leader moved on: a follower far behind it (a paused or stopped rung) lists the leader's
   * complete segments as GAP segments (leader-follower.ts).
   */
  follow(): void {
    if (this.#ended || this.#disposed || this.#init === undefined) return;
    const fromS = this.#lastEndDts !== undefined ? this.#lastEndDts / this.#init.timescale : this.#follower.coveredS;
    if (fromS === undefined || !this.#follower.follow(fromS)) return;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
  }

  /** Whether this window has ever opened a segment. */
  get hasMedia(): boolean {
    return this.#builder.hasHistory;
  }

  /** With `startAtLeader`, before the first segment: whether the fragment at `timeS` comes before a leader boundary. */
  #beforeLeader(timeS: number, durationS: number): boolean {
    if (!this.#startAtLeader || this.#builder.hasHistory) return false;
    const leader = this.#leader();
    if (leader === undefined) {
      // A mirrored track waited (and held its media) in wall-clock time: it starts without a leader.
      if (this.#holdForLeader) return false;
      // The leader may appear a little later.
      this.#firstSeenS ??= timeS;
      return timeS - this.#firstSeenS < LEADER_WAIT_TARGETS * this.#targetS;
    }
    if (leader.ended) return false;
    // The first fragment at or after a leader boundary (the one a follower cuts at) starts the track.
    return !leader.hasBoundary(timeS - durationS + EPS_S, timeS + EPS_S);
  }

  /** Closes the media so far; the next segment carries EXT-X-DISCONTINUITY. */
  #breakTimeline(): void {
    // Audio held for this timeline's media gets no more of it: listed now, cut at its boundaries.
    // Media held after a jump is the new timeline's: it waits for the media that starts it.
    for (const hold of this.holds) if (!hold.ahead) hold.release(true);
    // A follower whose leader is already on a new timeline lists the leader's old segments it never
    // made as GAP, so its own new timeline starts at the leader's number.
    if (this.#builder.open !== undefined) this.#builder.closeSegment();
    this.#follower.fillOldTimeline();
    this.#builder.breakTimeline();
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
    this.#follower.timelineBroken();
  }

  #changed(): void {
    this.#version += 1;
    this.#group.touch();
    this.#waiters.wake();
  }
}
