/**
 * `SegmentMarker`: where an edge's LL-HLS packager will cut a source's video into segments, worked
 * out by the producer so that every edge numbers the same media alike, whenever it joined. It
 * applies the packager's rules for a video track without a leader (a segment starts at the first
 * keyframe once the open one holds a target duration; a new init or a timestamp that goes back or
 * jumps forward by more than a part target starts a new timeline, at the next keyframe) to the
 * fragments as they are published, and tells which keyframes start a segment, with its media
 * sequence number and discontinuity sequence.
 */

import type { Fragment } from '../fragment/fragment.ts';
import { EPS_S } from '../hls/track-media.ts';

/**
 * Numbering of the segment a keyframe starts, and where its timeline's PROGRAM-DATE-TIMEs are
 * counted from (the ingest time, ms, of the timeline's first segment at its media time, seconds), as
 * the packager counts them; absent when that fragment had no ingest time.
 */
export type SegmentMark = {
  readonly msn: number;
  readonly discontinuitySequence: number;
  readonly dateAnchor?: { readonly dateMs: number; readonly timeS: number };
};

/** The packager's segment targets, ms (`--hls-target-duration`, `--hls-part-target`). */
export type SegmentTargets = { readonly targetDurationMs: number; readonly partTargetMs: number };

/** Follows one video track's published fragments and marks the keyframes that start segments. */
export class SegmentMarker {
  readonly #targetS: number;
  readonly #partTargetS: number;
  #nextMsn = 0;
  #discSeq = 0;
  #hasHistory = false;
  /** Ticks in the open segment, or undefined between segments. */
  #openTicks: number | undefined;
  #pendingDiscontinuity = false;
  #lastDts: number | undefined;
  #lastEndDts: number | undefined;
  #dateAnchor: SegmentMark['dateAnchor'];

  /** A marker for the packager's `targets`. */
  constructor(targets: SegmentTargets) {
    this.#targetS = targets.targetDurationMs / 1000;
    this.#partTargetS = targets.partTargetMs / 1000;
  }

  /**
   * Goes on after `last`, the last segment an earlier producer of the track marked (a new ingest
   * node after a failover, a republished name): the next segment is the one after it, on a new
   * timeline, as on an edge that kept the track.
   */
  continueFrom(last: { readonly msn: number; readonly discontinuitySequence: number }): void {
    if (this.#hasHistory) return;
    this.#nextMsn = last.msn + 1;
    this.#discSeq = last.discontinuitySequence;
    this.#hasHistory = true;
    this.#breakTimeline();
  }

  /** The track's init changed: the next keyframe starts a new timeline. */
  newInit(): void {
    this.#breakTimeline();
  }

  /** Takes the next published fragment; returns its segment's numbering when it starts one. */
  mark(fragment: Fragment, timescale: number): SegmentMark | undefined {
    if (this.#lastDts !== undefined && fragment.dts < this.#lastDts) {
      this.#breakTimeline();
    } else if (this.#lastEndDts !== undefined && fragment.dts - this.#lastEndDts > this.#partTargetS * timescale) {
      this.#breakTimeline();
    }
    this.#lastDts = fragment.dts;
    this.#lastEndDts = fragment.dts + fragment.duration;
    let mark: SegmentMark | undefined;
    const open = this.#openTicks;
    const cut = open !== undefined && fragment.flags.keyframe && open / timescale >= this.#targetS - EPS_S;
    if (open === undefined || cut) {
      if (!fragment.flags.keyframe) return undefined;
      if (this.#pendingDiscontinuity || !this.#hasHistory) {
        this.#dateAnchor =
          fragment.ingestTimeMs > 0 ? { dateMs: fragment.ingestTimeMs, timeS: fragment.pts / timescale } : undefined;
      }
      if (this.#pendingDiscontinuity && this.#hasHistory) this.#discSeq += 1;
      this.#pendingDiscontinuity = false;
      mark = {
        msn: this.#nextMsn,
        discontinuitySequence: this.#discSeq,
        ...(this.#dateAnchor === undefined ? {} : { dateAnchor: this.#dateAnchor }),
      };
      this.#nextMsn += 1;
      this.#hasHistory = true;
      this.#openTicks = 0;
    }
    this.#openTicks = (this.#openTicks ?? 0) + fragment.duration;
    return mark;
  }

  #breakTimeline(): void {
    this.#openTicks = undefined;
    this.#pendingDiscontinuity = true;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
  }
}
