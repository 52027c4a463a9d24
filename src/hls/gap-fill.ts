/**
 * GAP media of a follower (a rung): media it skipped or never produced is listed with its leader's
 * (the source's) segment boundaries, as EXT-X-GAP segments and GAP=YES parts (RFC 8216bis 4.4.4.7,
 * 4.4.4.9), so the follower's media sequence numbers and PROGRAM-DATE-TIMEs stay those of its leader.
 */

import { EPS_S, type HlsPart, type HlsSegment, type InitVersion } from './track-media.ts';

/** A follower whose media ends this many target durations before its leader's is following it with GAPs. */
export const FOLLOW_BEHIND_TARGETS = 3;

/** Where one segment of a leader lies. */
export type LeaderSegment = {
  readonly msn: number;
  readonly startTimeS: number;
  readonly durationS: number;
  readonly programDateTimeMs: number;
  /** False for the segment being built (its duration still grows). */
  readonly complete: boolean;
  /** It starts a new timeline (EXT-X-DISCONTINUITY before it). */
  readonly discontinuity?: boolean;
  /** Its Discontinuity Sequence Number (which timeline it is on). */
  readonly discontinuitySequence?: number;
};

/** End of a leader segment's media, seconds (infinite while it is being built). */
export function leaderEndS(seg: LeaderSegment): number {
  return seg.complete ? seg.startTimeS + seg.durationS : Number.POSITIVE_INFINITY;
}

/** GAP=YES parts covering `durationS` of segment `msn` from part `firstIndex`, none longer than `partTargetS`. */
export function gapParts(msn: number, firstIndex: number, durationS: number, partTargetS: number): HlsPart[] {
  const count = Math.max(1, Math.ceil(durationS / partTargetS - EPS_S));
  const parts: HlsPart[] = [];
  for (let i = 0; i < count; i++) {
    parts.push({
      msn,
      index: firstIndex + i,
      durationS: durationS / count,
      independent: false,
      gap: true,
      bytes: new Uint8Array(0),
    });
  }
  return parts;
}

/** A complete EXT-X-GAP segment in place of the leader's segment `seg`. */
export function gapSegment(
  seg: LeaderSegment,
  init: InitVersion,
  timelineS: number,
  discontinuity: boolean,
  discontinuitySequence: number,
): HlsSegment {
  return {
    msn: seg.msn,
    discontinuity,
    discontinuitySequence,
    init,
    programDateTimeMs: seg.programDateTimeMs,
    startTimeS: seg.startTimeS,
    timelineS,
    durationS: seg.durationS,
    byteLength: 0,
    parts: [],
    bytes: undefined,
    gap: true,
  };
}
