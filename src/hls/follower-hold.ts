/**
 * `FollowerHold`: the fragments of a follower track (audio for its video, a rung for its source)
 * that wait for its leader's media before they are listed, so that the leader's segments and
 * timelines decide where they go. A mirrored follower waits until its leader's media reaches it
 * (two edges that got the tracks in different orders cut the same segments); a follower whose
 * media jumped forward, or stepped back onto a new timeline, ahead of its leader's waits until the
 * leader's media gets there. Each wait is capped at `HOLD_TARGETS` target durations of media. The
 * track window appends what is released.
 */

import type { Fragment } from '../fragment/fragment.ts';
import { EPS_S } from './track-media.ts';
import { HOLD_TARGETS, LEADER_WAIT_TARGETS } from './window-options.ts';

/** What a hold reads of its leader (a track window). */
export interface HoldLeader {
  readonly ended: boolean;
  /** The discontinuity sequence the leader's next segment opens on. */
  readonly nextDiscontinuitySequence: number;
  /** Whether the leader has received media up to `timeS` (seconds). */
  receivedTo(timeS: number): boolean;
  /** The holds waiting for this leader's media: it releases them as its media comes. */
  readonly holds: Set<FollowerHold>;
}

/** What a hold reads of, and does to, its own track. */
export interface HoldTrack {
  readonly kind: string;
  /** Timescale of the init in effect; undefined without one. */
  timescale(): number | undefined;
  /** Decode time of the last fragment listed, and where it ended (ticks); undefined after a break. */
  lastDts(): number | undefined;
  lastEndDts(): number | undefined;
  /** The discontinuity sequence the track's next segment opens on. */
  nextDiscontinuitySequence(): number;
  /** Whether the track ever opened a segment. */
  hasHistory(): boolean;
  leader(): HoldLeader | undefined;
  /** Lists a released fragment. */
  append(fragment: Fragment): void;
  /** Counts fragments dropped unlisted. */
  drop(count: number): void;
  warn(message: string, fields: Record<string, unknown>): void;
}

/** How a hold behaves. */
export type FollowerHoldOptions = {
  track: HoldTrack;
  /** A mirrored follower: wait for the leader's media at all times (not only after a jump). */
  holdForLeader: boolean;
  /** Before the first segment, wait a while for a leader that is not there yet. */
  startAtLeader: boolean;
  targetS: number;
  partTargetS: number;
  now: () => number;
};

/** The waiting fragments of one follower track. */
export class FollowerHold {
  readonly #track: HoldTrack;
  readonly #holdForLeader: boolean;
  readonly #startAtLeader: boolean;
  readonly #targetS: number;
  readonly #partTargetS: number;
  readonly #now: () => number;
  /** Fragments waiting, oldest first. */
  readonly #held: Fragment[] = [];
  /** What is held is media after a jump or a step back, waiting for the leader's (`#holdAhead`). */
  #ahead = false;
  /**
   * What is held is media of a new timeline (its timestamps went back) that came before the
   * leader's: released only once the leader's timeline moved past this discontinuity sequence.
   */
  #timeline: number | undefined;
  /** With `holdForLeader`: when the first fragment came with no leader yet, wall-clock ms. */
  #firstSeenMs: number | undefined;

  constructor(options: FollowerHoldOptions) {
    this.#track = options.track;
    this.#holdForLeader = options.holdForLeader;
    this.#startAtLeader = options.startAtLeader;
    this.#targetS = options.targetS;
    this.#partTargetS = options.partTargetS;
    this.#now = options.now;
  }

  /** The fragments waiting, oldest first. */
  get fragments(): readonly Fragment[] {
    return this.#held;
  }

  /** Whether what waits is media ahead of the leader's (after a jump or a step back): a break of the leader's timeline does not release it. */
  get ahead(): boolean {
    return this.#ahead;
  }

  /** Takes `fragment` if it must wait; false when it may be listed now. */
  take(fragment: Fragment): boolean {
    return this.#holdForMirror(fragment) || this.#holdAhead(fragment);
  }

  /**
   * With `holdForLeader`: a follower (audio, a rung) waits until its leader's media reaches its
   * end, at most `HOLD_TARGETS` target durations of it, so two edges that got the tracks in
   * different orders start and cut the same segments: a follower that cuts before its leader's
   * boundary is known misses it. True when `fragment` is held.
   */
  #holdForMirror(fragment: Fragment): boolean {
    const ts = this.#track.timescale();
    if (!this.#holdForLeader || ts === undefined) return false;
    const leader = this.#track.leader();
    if (leader === undefined && this.#awaitsLeader()) {
      // The leader is not there yet (a mirrored video waits for a segment's start): keep the newest
      // media, so that the track can still start at the leader's first boundary once it comes.
      this.#held.push(fragment);
      while (
        (fragment.pts + fragment.duration - this.#held[0]!.pts) / ts >
        LEADER_WAIT_TARGETS * this.#targetS + EPS_S
      ) {
        this.#held.shift();
        this.#track.drop(1);
      }
      return true;
    }
    if (leader === undefined || leader.ended) {
      this.release(true);
      return false;
    }
    const endS = (fragment.pts + fragment.duration) / ts;
    if (this.#held.length === 0 && leader.receivedTo(endS)) return false;
    this.#held.push(fragment);
    leader.holds.add(this);
    this.release(false);
    return true;
  }

  /**
   * A follower whose media jumped forward (a publisher that came back from a blip with its clock
   * running on) ahead of its leader's (audio that reached the server before its video) waits, at
   * most `HOLD_TARGETS` target durations of media, until the leader's media gets there: the
   * leader's jump then decides where the skipped time ends and the new timeline starts, so the
   * follower's segments keep its numbers and timelines. So does a follower whose timestamps went
   * back (a publisher that came back with its clock at 0) while its leader is still on the old
   * timeline, until the leader's timeline moves on too: its times say nothing before that (the
   * leader's old media lies at other times), and media of the new timeline that the leader's does
   * not have (audio of a session that dropped again before its video came) is found then and
   * dropped. True when `fragment` is held.
   */
  #holdAhead(fragment: Fragment): boolean {
    if (this.#held.length > 0) {
      // Behind media already held: in order.
      this.#held.push(fragment);
      this.release(false);
      return true;
    }
    const track = this.#track;
    const ts = track.timescale();
    const leader = track.leader();
    const lastDts = track.lastDts();
    const lastEndDts = track.lastEndDts();
    if (ts === undefined || leader === undefined || leader.ended || lastEndDts === undefined) return false;
    if (lastDts !== undefined && fragment.dts < lastDts) {
      const leaderTimeline = leader.nextDiscontinuitySequence;
      // The leader already went on to a later timeline (its publisher's media came first): no wait.
      if (leaderTimeline > track.nextDiscontinuitySequence()) return false;
      this.#timeline = leaderTimeline;
    } else {
      if (fragment.dts - lastEndDts <= this.#partTargetS * ts) return false;
      if (leader.receivedTo((fragment.pts + fragment.duration) / ts)) return false;
    }
    this.#held.push(fragment);
    this.#ahead = true;
    leader.holds.add(this);
    return true;
  }

  /** With `startAtLeader`, before the first segment and no leader yet: whether the wall-clock wait for one goes on. */
  #awaitsLeader(): boolean {
    if (!this.#startAtLeader || this.#track.hasHistory()) return false;
    const now = this.#now();
    this.#firstSeenMs ??= now;
    return now - this.#firstSeenMs < LEADER_WAIT_TARGETS * this.#targetS * 1000;
  }

  /**
   * A new session begins (a new init) while media of a new timeline waits for the leader's, which
   * never came (the publisher's session dropped again before its video got there): that media has
   * no place in the leader's timelines and is dropped, counted.
   */
  dropOrphans(): void {
    const leader = this.#track.leader();
    if (this.#timeline === undefined || leader === undefined || leader.ended) return;
    if (leader.nextDiscontinuitySequence > this.#timeline) return;
    this.#track.warn('media of a new timeline its leader never reached: dropped', {
      kind: this.#track.kind,
      fragments: this.#held.length,
    });
    this.#track.drop(this.#held.length);
    this.#forget(leader);
  }

  /** Lists the fragments the leader's media has reached (every one with `all`, and any over the cap). */
  release(all: boolean): void {
    const leader = this.#track.leader();
    const ts = this.#track.timescale();
    while (this.#held.length > 0) {
      const first = this.#held[0]!;
      if (!all && ts !== undefined && leader !== undefined && !leader.ended) {
        const last = this.#held.at(-1)!;
        const heldS = (last.pts + last.duration - first.pts) / ts;
        const reached =
          (this.#timeline === undefined || leader.nextDiscontinuitySequence > this.#timeline) &&
          leader.receivedTo((first.pts + first.duration) / ts);
        if (!reached && heldS <= HOLD_TARGETS * this.#targetS + EPS_S) return;
      }
      this.#held.shift();
      this.#track.append(first);
    }
    this.#forget(leader);
  }

  /** Drops what waits, uncounted (the track is disposed). */
  clear(): void {
    this.#forget(this.#track.leader());
  }

  #forget(leader: HoldLeader | undefined): void {
    this.#held.length = 0;
    this.#ahead = false;
    this.#timeline = undefined;
    leader?.holds.delete(this);
  }
}
