/**
 * The source's video bitrate as the bypass rule reads it: bytes of the samples of the source's
 * first whole GOP (from its first keyframe to the next) over that GOP's media duration. Measured
 * once per source format; a source that never sends a second keyframe only has a partial figure.
 */

/** What the measure reads of a sample. */
export type MeasuredSample = {
  readonly data: Uint8Array;
  readonly dts: number;
  readonly duration: number;
  readonly keyframe: boolean;
};

/** Bitrate of a source's first whole GOP. */
export class GopBitrate {
  #startTicks: number | undefined;
  #endTicks = 0;
  #bytes = 0;
  #timescale = 1;
  #bps: number | undefined;

  /** Starts again (a new source format). */
  reset(): void {
    this.#startTicks = undefined;
    this.#endTicks = 0;
    this.#bytes = 0;
    this.#bps = undefined;
  }

  /** Adds the samples of one source fragment, in decode order, with their `timescale`. */
  push(samples: readonly MeasuredSample[], timescale: number): void {
    if (this.#bps !== undefined) return;
    this.#timescale = timescale;
    for (const s of samples) {
      if (this.#startTicks === undefined) {
        if (!s.keyframe) continue;
        this.#startTicks = s.dts;
      } else if (s.keyframe && s.dts > this.#startTicks) {
        this.#bps = this.#rate(s.dts);
        return;
      }
      this.#bytes += s.data.byteLength;
      this.#endTicks = Math.max(this.#endTicks, s.dts + s.duration);
    }
  }

  /** Bits/s of the first whole GOP, once the second keyframe arrived. */
  get bps(): number | undefined {
    return this.#bps;
  }

  /** Bits/s of what arrived since the first keyframe (the whole GOP's once complete); undefined before any. */
  partialBps(): number | undefined {
    if (this.#bps !== undefined) return this.#bps;
    if (this.#startTicks === undefined || this.#endTicks <= this.#startTicks) return undefined;
    return this.#rate(this.#endTicks);
  }

  /** Media seconds measured so far. */
  get seconds(): number {
    return this.#startTicks === undefined ? 0 : Math.max(0, this.#endTicks - this.#startTicks) / this.#timescale;
  }

  #rate(endTicks: number): number {
    return (this.#bytes * 8 * this.#timescale) / (endTicks - this.#startTicks!);
  }
}
