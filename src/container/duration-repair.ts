/**
 * `DurationRepair`: completes fragment drafts into fragments, and repairs the ones that end with
 * samples of zero duration (a muxer that does not know them yet). Such a draft is held until the
 * track's next decode time, and those samples share the time until it evenly; when none is coming
 * (`releaseAll`), each gets the median of the track's recent sample durations instead. The
 * durations are written into the payload's `trun`. This costs a one-fragment delay, only for such
 * streams.
 */

import { createFragment } from '../fragment/fragment.ts';
import type { FragmentDraft, FragmentEvent, OutputTrackId } from './parser-events.ts';

/** Positive sample durations remembered per track, to estimate one that never gets a next decode time. */
const RECENT_DURATIONS = 8;

/** The median of `durations` (the upper one of an even count); undefined when there are none. */
export function medianDuration(durations: readonly number[]): number | undefined {
  const sorted = [...durations].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Where completed fragments go, in stream order. */
export type FragmentSink = (event: FragmentEvent) => void;

/** Holds and completes the drafts of one stream (every track). */
export class DurationRepair {
  readonly #held = new Map<OutputTrackId, FragmentDraft>();
  readonly #recent = new Map<OutputTrackId, number[]>();

  /** Completes `draft` into `sink`, or holds it when it ends with zero-duration samples. */
  accept(draft: FragmentDraft, sink: FragmentSink): void {
    if (draft.samples.at(-1)!.duration === 0) this.#held.set(draft.trackId, draft);
    else this.#complete(draft, sink);
  }

  /** The next decode time of `trackId` is known: its held draft (if any) is completed up to it. */
  advance(trackId: OutputTrackId, nextDts: number, sink: FragmentSink): void {
    const held = this.#held.get(trackId);
    if (held !== undefined) this.#release(held, nextDts, sink);
  }

  /** Completes every held draft with estimated durations (no next decode time is coming). */
  releaseAll(sink: FragmentSink): void {
    for (const held of [...this.#held.values()]) this.#release(held, undefined, sink);
  }

  /** Forgets the recent durations (a new init); call `releaseAll` first. */
  reset(): void {
    this.#recent.clear();
  }

  #release(held: FragmentDraft, nextDts: number | undefined, sink: FragmentSink): void {
    this.#held.delete(held.trackId);
    const { samples } = held;
    let run = samples.length;
    while (run > 0 && samples[run - 1]!.duration === 0) run--;
    const count = samples.length - run;
    const start = samples[run]!.dts;
    let total: number;
    if (nextDts === undefined) {
      total = (medianDuration(this.#recent.get(held.trackId) ?? []) ?? 0) * count;
    } else {
      total = Math.max(0, Math.min(nextDts - start, 0xffff_ffff));
    }
    const view = new DataView(held.fields.payload.buffer, held.fields.payload.byteOffset);
    let dts = start;
    for (let i = run; i < samples.length; i++) {
      const s = samples[i]!;
      // Even shares; the rounding remainder goes to the last sample.
      const duration = i === samples.length - 1 ? start + total - dts : Math.floor(total / count);
      s.pts += dts - s.dts;
      s.dts = dts;
      s.duration = duration;
      view.setUint32(held.entriesOffset + i * held.entrySize, duration);
      dts += duration;
    }
    this.#complete(held, sink);
  }

  #complete({ trackId, fields, samples }: FragmentDraft, sink: FragmentSink): void {
    let duration = 0;
    let recent = this.#recent.get(trackId);
    if (recent === undefined) {
      recent = [];
      this.#recent.set(trackId, recent);
    }
    for (const s of samples) {
      duration += s.duration;
      if (s.duration > 0) recent.push(s.duration);
    }
    if (recent.length > RECENT_DURATIONS) recent.splice(0, recent.length - RECENT_DURATIONS);
    sink({ type: 'fragment', fragment: createFragment({ ...fields, duration }), samples });
  }
}
