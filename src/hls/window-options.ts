/**
 * What a `TrackWindow` (window.ts) is made with, and the limits it keeps: how long a segment may
 * run without a keyframe, how long a track waits for its leader and how much media it holds for it.
 */

import type { GroupTiming, MediaSlabs, TrackCursor, TrackKind } from './track-media.ts';

/** Options of a track window whose leader is an `L` (a `TrackWindow`: `TrackWindowOptions`). */
export type WindowOptions<L> = {
  kind: TrackKind;
  targetDurationMs: number;
  partTargetMs: number;
  dvrWindowMs: number;
  group: GroupTiming;
  /** The track whose segment boundaries this one follows (audio -> video, rung -> source). */
  leader?: () => L | undefined;
  /** Numbering to continue from. */
  start?: TrackCursor;
  /**
   * Whether the first segment waits for its leader: media is dropped until the leader has a segment
   * starting at (or, for audio, within) the fragment, so that the track's segments line up with its
   * leader's from the first one (a track mirrored mid-stream). Without a leader it starts at once.
   */
  startAtLeader?: boolean;
  /**
   * A follower that arrives ahead of its leader waits for it (a mirror in a cluster, which gets
   * each track on its own subject, from the node that makes it: audio ahead of its video, a rung
   * from the transcode node ahead of its source from the ingest node), so that where its segments
   * start and are cut never depends on which track arrived first (follower-hold.ts).
   */
  holdForLeader?: boolean;
  /** Wall clock, ms (PROGRAM-DATE-TIME when a fragment has no ingest time). */
  now?: () => number;
  /** Told about forced cuts and timestamp regressions. */
  onWarning?: (message: string, fields: Record<string, unknown>) => void;
  /** Where media is copied; a bridge shares one pair among its windows. Default: a pair of its own. */
  slabs?: MediaSlabs;
};

/** Segments are force-cut (without a keyframe) past this many target durations. */
export const MAX_SEGMENT_TARGETS = 10;
/**
 * A track that starts at its leader's boundaries waits this many target durations for a leader to
 * appear: of media for a local track, of wall-clock time for a mirrored one (a replayed backlog
 * arrives at once, in any order across tracks), which holds that much media meanwhile.
 */
export const LEADER_WAIT_TARGETS = 3;
/** Media held for its leader (mirrored audio, or a follower's jump) is held at most this many target durations of it. */
export const HOLD_TARGETS = 2;
