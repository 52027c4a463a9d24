/**
 * `LeaderFollower`: how a track follows its leader (audio -> its video, rung -> its source). It
 * decides where the track's segments are cut (at the leader's boundaries, or at the target
 * duration without a leader), gives a late-starting track its leader's numbering, and lists media
 * the track skipped or never produced as GAP on the leader's boundaries (gap-fill.ts; audio with a
 * silent frame gets silence instead: silence-fill.ts).
 */

import { FOLLOW_BEHIND_TARGETS, type LeaderSegment, leaderEndS } from './gap-fill.ts';
import type { SegmentBuilder } from './segment-builder.ts';
import { EPS_S, type GroupTiming, type InitVersion } from './track-media.ts';

/**
 * True when a leader segment boundary lies in (`afterS`, `untilS`]. With `msn` and
 * `discontinuitySequence`, the follower's open segment and its timeline: found by number (see
 * below); otherwise from the leader's recent segments of its current timeline (newest first, the
 * open one included).
 */
export function leaderBoundary(
  recent: () => Iterable<{ readonly msn: number; readonly startTimeS: number; readonly discontinuity: boolean }>,
  segment: (msn: number) => LeaderSegment | undefined,
  afterS: number,
  untilS: number,
  msn?: number,
  discontinuitySequence?: number,
): boolean {
  // By number while the leader's segment `msn` is on the follower's timeline: the boundary is where
  // the leader's next segment starts, however far behind the follower is (a rung late under load),
  // and none while the leader's next segment is a new timeline (a rung still making the old
  // timeline's media after its source's publisher restarted). A follower whose own timeline broke
  // first (its number still below the leader's new timeline) cuts by time.
  if (msn !== undefined) {
    const own = segment(msn);
    if (own !== undefined && own.discontinuitySequence === discontinuitySequence) {
      const next = segment(msn + 1);
      if (next === undefined) return false;
      if (next.discontinuity === true) return false;
      if (next.startTimeS > afterS) return next.startTimeS <= untilS;
    }
  }
  for (const seg of recent()) {
    if (seg.startTimeS <= afterS) return false;
    if (seg.discontinuity) return false;
    if (seg.startTimeS <= untilS) return true;
  }
  return false;
}

/** What a follower reads from its leader (a track window). */
export type Leader = {
  readonly ended: boolean;
  /** MSN of the last complete segment. */
  readonly lastCompleteMsn: number;
  /** The longest of its recent complete segments, seconds (0 with none). */
  readonly longestRecentS: number;
  /** Where segment `msn` lies, while it is retained. */
  leaderSegment(msn: number): LeaderSegment | undefined;
  /**
   * True when a segment of the current timeline starts in (`afterS`, `untilS`]; with `msn` (the
   * follower's open segment, on timeline `discontinuitySequence`) still on the leader's old
   * timeline, its next segment of that one.
   */
  hasBoundary(afterS: number, untilS: number, msn?: number, discontinuitySequence?: number): boolean;
  /** MSN and discontinuity sequence of the segment holding `timeS`. */
  locate(timeS: number): { msn: number; discontinuitySequence: number } | undefined;
};

/** What a leader follower works with. */
export type LeaderFollowerOptions = {
  /** The follower's segments. */
  builder: SegmentBuilder;
  /** The leader (ended or not), undefined without one. */
  leader: () => Leader | undefined;
  /** The follower's init in effect. */
  init: () => InitVersion | undefined;
  /** The follower's own target duration, seconds. */
  targetS: number;
  group: GroupTiming;
  warn: (message: string, fields: Record<string, unknown>) => void;
};

/** A follower waits at most this many target durations for its leader's boundary. */
const FOLLOW_CAP_TARGETS = 2;

/** The cutting and GAP state of one track relative to its leader. */
export class LeaderFollower {
  readonly #builder: SegmentBuilder;
  readonly #leader: () => Leader | undefined;
  readonly #init: () => InitVersion | undefined;
  readonly #targetS: number;
  readonly #group: GroupTiming;
  readonly #warn: (message: string, fields: Record<string, unknown>) => void;
  /**
   * Media from `#coveredFromS` (where the track's own media ended when GAPs began) to `#coveredS`
   * (seconds) is listed, as GAP or media: later-arriving fragments of it are dropped. Media before
   * that span is not late but a new run of timestamps (a publisher whose clock started again).
   */
  #coveredFromS: number | undefined;
  #coveredS: number | undefined;
  /** Missing media is being listed as GAP on the leader's boundaries. */
  #following = false;

  /** A follower that has listed no GAP. */
  constructor(options: LeaderFollowerOptions) {
    this.#builder = options.builder;
    this.#leader = options.leader;
    this.#init = options.init;
    this.#targetS = options.targetS;
    this.#group = options.group;
    this.#warn = options.warn;
  }

  /** Whether the track has a leader that has not ended. */
  get hasLeader(): boolean {
    return this.#activeLeader() !== undefined;
  }

  /** Where the GAPs listed so far end, seconds, or undefined. */
  get coveredS(): number | undefined {
    return this.#coveredS;
  }

  /** Whether media at `timeS` is already listed as GAP (a late fragment of it is dropped). */
  covers(timeS: number): boolean {
    return (
      this.#coveredS !== undefined &&
      timeS < this.#coveredS - EPS_S &&
      (this.#coveredFromS === undefined || timeS >= this.#coveredFromS - EPS_S)
    );
  }

  /** The timeline broke: nothing is covered any more. */
  timelineBroken(): void {
    this.#coveredFromS = undefined;
    this.#coveredS = undefined;
  }

  /** The track is published again: no GAP state is kept. */
  reset(): void {
    this.timelineBroken();
    this.#following = false;
  }

  /** Decides whether a fragment that may start a segment (keyframe, or any audio) at `timeS` cuts. */
  shouldCut(timeS: number): boolean {
    const open = this.#builder.open!;
    const segS = this.#builder.durationS();
    const leader = this.#activeLeader();
    if (leader === undefined) return segS >= this.#targetS - EPS_S;
    // Cut at the leader's boundary once it is known; a leader that lags (or stalls) is waited for,
    // within a cap set by the leader's own segments: not by the group's target duration, which the
    // follower's capped segments raise (one missed boundary would lengthen every later cap).
    const capS = FOLLOW_CAP_TARGETS * Math.max(this.#targetS, leader.longestRecentS);
    if (leader.hasBoundary(open.startTimeS + EPS_S, timeS + EPS_S, open.msn, open.discontinuitySequence)) return true;
    if (segS < capS) return false;
    // The leader stalled, or its boundary passed where this track had no keyframe: later numbers
    // may no longer match the leader's.
    this.#warn("segment cut at the cap, not on its leader's boundary", { msn: open.msn, durationS: segS });
    return true;
  }

  /** Whether the next segment-starting fragment is expected to cut (for the preload hint). */
  cutIsDue(): boolean {
    const open = this.#builder.open!;
    const segS = this.#builder.durationS();
    const leader = this.#activeLeader();
    if (leader === undefined) return segS >= this.#targetS - EPS_S;
    return leader.hasBoundary(
      open.startTimeS + EPS_S,
      open.startTimeS + segS + EPS_S,
      open.msn,
      open.discontinuitySequence,
    );
  }

  /**
   * Before a segment opens at `timeS`: a track that starts late takes its leader's numbering, so
   * MSNs line up across playlists. After missing media the leader's segments up to this one are
   * listed as GAP, and the leader's segment holding `timeS` is returned: the new segment takes its
   * start and PROGRAM-DATE-TIME (its head listed as GAP parts). So is a new timeline whose first
   * media comes after the start of its leader's (a rung that dropped the first GOP after its
   * source restarted): the leader's segments before it are GAP.
   */
  segmentHead(timeS: number): LeaderSegment | undefined {
    const builder = this.#builder;
    if (!builder.hasHistory) {
      const at = this.#leader()?.locate(timeS);
      if (at !== undefined) builder.alignTo(at);
    }
    const head =
      (this.#following && builder.hasHistory) || this.#startsLeadersTimeline() ? this.#fillGaps(timeS) : undefined;
    this.#following = false;
    this.#mirrorDiscontinuity(timeS);
    return head;
  }

  /**
   * The leader's PROGRAM-DATE-TIME of media time `timeS`: the date of its segment holding `timeS`
   * (or of the nearest one of its current timeline) plus the media time since that segment's start;
   * undefined without a leader or a segment within a capped distance of `timeS`.
   */
  leaderDateAt(timeS: number): number | undefined {
    const leader = this.#activeLeader();
    const at = leader?.locate(timeS);
    const seg = at === undefined ? undefined : leader?.leaderSegment(at.msn);
    // Only a segment of the timeline the new segment is on: a follower whose timeline broke before
    // its leader's (audio of a restarted publisher that came first) finds the leader's old timeline
    // at the same media times, whose dates lie in the past.
    if (seg === undefined || seg.discontinuitySequence !== this.#builder.nextDiscontinuitySequence) return undefined;
    const capS = FOLLOW_CAP_TARGETS * Math.max(this.#targetS, this.#group.targetDurationS);
    if (Math.abs(timeS - seg.startTimeS) > seg.durationS + capS) return undefined;
    return seg.programDateTimeMs + (timeS - seg.startTimeS) * 1000;
  }

  /**
   * The track's media jumped from `fromS` to `timeS`: the skipped media is listed as GAP on the
   * leader's boundaries (the open segment padded with GAP parts). False when no leader places it.
   */
  skipTo(fromS: number, timeS: number): boolean {
    const leader = this.#activeLeader();
    const open = this.#builder.open;
    if (leader === undefined) return false;
    if (open !== undefined) {
      const own = leader.leaderSegment(open.msn);
      if (own === undefined) return false;
      this.#coveredFromS ??= fromS;
      const endS = leaderEndS(own);
      this.#builder.pad(Math.min(endS, timeS) - fromS);
      if (timeS < endS - EPS_S) return true;
      this.#builder.closeSegment();
      this.#coveredS = endS;
    }
    this.#coveredFromS ??= fromS;
    this.#following = true;
    return true;
  }

  /**
   * The leader moved on and the track's listed media ends at `fromS`. A track whose media ends more
   * than `FOLLOW_BEHIND_TARGETS` target durations before its leader's complete media (a paused or
   * stopped rung; a merely slow one stays closer) lists the leader's complete segments as GAP
   * segments, and goes on doing so at each call until its own media comes back. True when it
   * follows (its next fragment starts a new run of timestamps).
   */
  follow(fromS: number): boolean {
    const builder = this.#builder;
    const leader = this.#activeLeader();
    const open = builder.open;
    if (!builder.hasHistory || leader === undefined || leader.lastCompleteMsn < (open?.msn ?? builder.nextMsn)) {
      return false;
    }
    const last = leader.leaderSegment(leader.lastCompleteMsn);
    if (last === undefined) return false;
    // Media times compare only on one timeline: a leader already on a later one (its publisher came
    // back, maybe with its clock at 0) is ahead of the follower's media however its times read.
    const laterTimeline = (last.discontinuitySequence ?? 0) > builder.discontinuitySequence;
    if (
      !this.#following &&
      !laterTimeline &&
      leaderEndS(last) - fromS < FOLLOW_BEHIND_TARGETS * this.#group.targetDurationS
    ) {
      return false;
    }
    if (open !== undefined) {
      const own = leader.leaderSegment(open.msn);
      if (own === undefined || !own.complete) return false;
      this.#coveredFromS ??= fromS;
      builder.pad(leaderEndS(own) - fromS);
      builder.closeSegment();
      this.#coveredS = leaderEndS(own);
    }
    this.#coveredFromS ??= fromS;
    if (!this.#following) this.#warn('no media: listing GAP segments after the leader', { at: fromS });
    this.#following = true;
    this.#fillGaps(Number.POSITIVE_INFINITY);
    return true;
  }

  /**
   * Before the track's timeline breaks (a new encoder session after its source restarted): where
   * the leader already went on to a new timeline, the leader's segments of the old one from this
   * track's next number on (media the track never made: a rung that lagged when its source's
   * publisher went away) are listed as GAP, so the track's new timeline starts at the leader's
   * number. Nothing when the leader is still on the old timeline.
   */
  fillOldTimeline(): void {
    const leader = this.#activeLeader();
    const init = this.#init();
    if (leader === undefined || init === undefined || !this.#builder.hasHistory) return;
    const old: LeaderSegment[] = [];
    for (let msn = this.#builder.nextMsn; ; msn++) {
      const seg = leader.leaderSegment(msn);
      if (seg === undefined) return;
      if (seg.discontinuity === true) break;
      if (!seg.complete) return;
      old.push(seg);
    }
    if (old.length > 0)
      this.#warn("listing the leader's last segments as GAP before a new timeline", { count: old.length });
    for (const seg of old) this.#builder.addGap(seg, init);
  }

  /**
   * Before the follower's next segment is listed (a GAP one, or one whose media starts at `timeS`
   * inside the leader's segment of the same number): where that leader segment starts a timeline
   * the follower has not started (the leader's media jumped and the follower listed the jump as GAP,
   * or restarted while the follower's media went on), the follower's segment starts one too. Matching
   * content in variants must have matching Discontinuity Sequence Numbers (RFC 8216 6.2.4): players
   * map each variant's timestamps by them. True when it did.
   */
  #mirrorDiscontinuity(timeS?: number): boolean {
    const builder = this.#builder;
    const seg = this.#activeLeader()?.leaderSegment(builder.nextMsn);
    if (seg?.discontinuity !== true || seg.discontinuitySequence === undefined || !builder.hasHistory) return false;
    if (seg.discontinuitySequence <= builder.nextDiscontinuitySequence) return false;
    // Media of the old timeline that a lagging follower lists under the new one's number is no jump
    // (a follower's own frames may start a little before its leader's: Opus frames on their grid).
    const slackS = Math.max(EPS_S, this.#group.partTargetS);
    if (timeS !== undefined && (timeS < seg.startTimeS - slackS || timeS >= leaderEndS(seg) - EPS_S)) return false;
    builder.breakTimeline();
    return true;
  }

  /**
   * Whether media at `timeS` that would start the follower's new timeline lies before the start of
   * the leader's segment of that number, which starts the same timeline: media the leader's
   * timeline does not have (audio of a publisher session that dropped again before its video
   * came). Such media is dropped: listed, it would take the leader's number at other times.
   */
  beforeLeadersTimeline(timeS: number): boolean {
    if (!this.#startsLeadersTimeline()) return false;
    const seg = this.#activeLeader()?.leaderSegment(this.#builder.nextMsn);
    const slackS = Math.max(EPS_S, this.#group.partTargetS);
    return seg !== undefined && timeS < seg.startTimeS - slackS;
  }

  /** Whether the follower's next segment starts a new timeline and its leader's segment of that number is on it. */
  #startsLeadersTimeline(): boolean {
    const builder = this.#builder;
    if (!builder.hasHistory || builder.nextDiscontinuitySequence === builder.discontinuitySequence) return false;
    const seg = this.#activeLeader()?.leaderSegment(builder.nextMsn);
    return seg?.discontinuity === true && seg.discontinuitySequence === builder.nextDiscontinuitySequence;
  }

  #activeLeader(): Leader | undefined {
    const leader = this.#leader();
    return leader === undefined || leader.ended ? undefined : leader;
  }

  /** Lists the leader's segments from the next MSN that end by `untilS` as GAP; returns the one holding `untilS`. */
  #fillGaps(untilS: number): LeaderSegment | undefined {
    const leader = this.#activeLeader();
    const init = this.#init();
    if (leader === undefined || init === undefined) return undefined;
    for (;;) {
      const seg = leader.leaderSegment(this.#builder.nextMsn);
      if (seg === undefined || seg.startTimeS > untilS + EPS_S) return undefined;
      if (!seg.complete || leaderEndS(seg) > untilS + EPS_S) return seg;
      // On the leader's new timeline, what is covered starts with this GAP segment: the track's
      // own media at these times (a new session of it, timed like the leader's) is already listed.
      if (this.#mirrorDiscontinuity()) this.#coveredFromS = seg.startTimeS;
      this.#builder.addGap(seg, init);
      this.#coveredS = leaderEndS(seg);
    }
  }
}
