/**
 * `LeaderView`: what a track window shows the tracks that follow it (`Leader` in
 * leader-follower.ts): where its segments lie, which one holds a media time, where the next
 * boundary is. It reads the window's open segment and its store; it keeps no state of its own.
 */

import type { LeaderSegment } from './gap-fill.ts';
import { leaderBoundary } from './leader-follower.ts';
import type { SegmentStore } from './segment-store.ts';
import { EPS_S, type HlsSegment } from './track-media.ts';

/** How many recent leader segments a boundary lookup by time scans. */
const LEADER_SCAN = 8;

/** The leader-facing reads of one track window. */
export class LeaderView {
  readonly #store: SegmentStore;
  readonly #open: () => HlsSegment | undefined;

  /** A view of `store` and the segment `open()` returns (the one being built). */
  constructor(store: SegmentStore, open: () => HlsSegment | undefined) {
    this.#store = store;
    this.#open = open;
  }

  /** The longest of the recent complete segments (`LEADER_SCAN` of them), seconds; 0 with none. */
  get longestRecentS(): number {
    let longest = 0;
    for (const seg of this.#store.recent(LEADER_SCAN)) longest = Math.max(longest, seg.durationS);
    return longest;
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

  /** Whether a boundary lies in (`afterS`, `untilS`] for a follower whose open segment is `msn` on timeline `discontinuitySequence` (`leaderBoundary`). */
  hasBoundary(afterS: number, untilS: number, msn?: number, discontinuitySequence?: number): boolean {
    return leaderBoundary(
      () => this.#recent(LEADER_SCAN),
      (m) => this.segment(m),
      afterS,
      untilS,
      msn,
      discontinuitySequence,
    );
  }

  /** Where segment `msn` lies, while it is retained (the open one included). */
  segment(msn: number): LeaderSegment | undefined {
    const open = this.#open();
    const seg = open !== undefined && open.msn === msn ? open : this.#store.segment(msn);
    if (seg === undefined) return undefined;
    const { startTimeS, durationS, programDateTimeMs, discontinuity, discontinuitySequence } = seg;
    return {
      msn,
      startTimeS,
      durationS,
      programDateTimeMs,
      complete: seg !== open,
      discontinuity,
      discontinuitySequence,
    };
  }

  /** The open segment then up to `limit` recent complete ones, newest first. */
  *#recent(limit: number): Generator<HlsSegment> {
    const open = this.#open();
    if (open !== undefined) yield open;
    yield* this.#store.recent(limit);
  }
}
