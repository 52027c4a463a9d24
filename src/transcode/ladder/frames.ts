/**
 * What travels from the shared decoder to the rungs: decoded frames with their source timing, and
 * the format boundary of a new init. Timestamps are ticks of the source's timescale.
 */

import type { VideoFrameLike } from '../codecs.ts';
import type { SourceVideo } from './plan.ts';

/** Source timing and keyframe decisions of one decoded frame. */
export type FrameMeta = {
  /** Ticks of `timescale` (the source's, at the time the frame was decoded). */
  pts: number;
  duration: number;
  timescale: number;
  ingestTimeMs: number;
  /**
   * When a realtime pipeline would reach this frame: its arrival plus its offset inside its source
   * fragment (a fragment holding a whole GOP brings seconds of frames at once), and not before the
   * frame ahead of it is done (`DueSchedule` in load.ts). 0 when unknown.
   */
  dueMs: number;
  sourceKey: boolean;
  /** Every rung encodes this frame as a keyframe (decided once, so identical in every rung). */
  forceKey: boolean;
};

/** What a rung needs to re-plan at a source format change. */
export type SourceFormat = { generation: number; video: SourceVideo };

/** A frame a rung owns (and must close), with its meta. */
export type QueuedFrame = { frame: VideoFrameLike; meta: FrameMeta };

/**
 * An item of a rung's queue: a frame to encode, the boundary where the source switched to a new
 * init, or the point where the overload policy paused the rung (its encoder is closed there).
 */
export type QueueItem = QueuedFrame | { format: SourceFormat } | { suspend: true };

/** Whether `item` is a frame (not a marker). */
export function isFrame(item: QueueItem): item is QueuedFrame {
  return (item as QueuedFrame).frame !== undefined;
}

/** Ticks of `timescale` to whole microseconds (the codecs' clock). */
export function ticksToUs(ticks: number, timescale: number): number {
  return Math.round((ticks * 1_000_000) / timescale);
}
