/**
 * When a source's decoder should be replaced to give a backlog's memory back. The addon's decoded
 * pictures come from FFmpeg's buffer pool of the decoder, which grows to the most frames ever out
 * at once and never shrinks while the decoder lives: after 60 of a 720p decoder's frames were held at
 * once, it stayed 31-37 MB up for good (bench/decoder-pool.ts), and a ladder whose 480p rung fell
 * 55 frames behind ended 135 MB higher than with the decoder renewed (bench/RESULTS.md, "Memory
 * under overload"). In realtime a rung holds 0-2. Frames closed but not yet collected count as out:
 * the rungs renew the handles of queued frames before each collection so that these are few
 * (RungTranscoder.renewFrameHandles); what a real backlog left is given back here.
 */

/**
 * Frames one rung may have held at once before the decoder is replaced once that backlog is gone.
 * The hour's soak under overload (bench/RESULTS.md, "Memory under overload") never had a rung hold
 * more than 4 (`lvqr_transcode_held_frames`): its backlogs sit in the compressed fragments before
 * the decoder, so a lower threshold would not have renewed anything there.
 */
export const RENEW_AFTER_HELD_FRAMES = 16;

/** The backlog is gone when no rung holds more frames than this. */
const RENEW_WHEN_HELD_AT_MOST = 2;

/**
 * Least time between two renewals of one decoder, ms: a rung that falls behind and catches up
 * every GOP would otherwise renew it (and run a full collection) every GOP.
 */
const RENEW_MIN_INTERVAL_MS = 10_000;

/** Watches how many frames the rungs of one decoder hold, and says when to renew it. */
export class DecoderRenewal {
  readonly #now: () => number;
  /** The most frames one rung held at once since the decoder was made. */
  #highWater = 0;
  #renewedAtMs = Number.NEGATIVE_INFINITY;
  #count = 0;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Times the decoder was renewed. */
  get count(): number {
    return this.#count;
  }

  /** The most frames one rung held at once since the decoder was made. */
  get highWater(): number {
    return this.#highWater;
  }

  /** A rung holds `frames` now. */
  noteHeld(frames: number): void {
    if (frames > this.#highWater) this.#highWater = frames;
  }

  /** Whether rungs held many frames at once, hold few now, and the last renewal is long enough ago. */
  due(rungs: Iterable<{ readonly queuedFrames: number }>): boolean {
    if (this.#highWater < RENEW_AFTER_HELD_FRAMES) return false;
    if (this.#now() - this.#renewedAtMs < RENEW_MIN_INTERVAL_MS) return false;
    for (const rung of rungs) if (rung.queuedFrames > RENEW_WHEN_HELD_AT_MOST) return false;
    return true;
  }

  /** The decoder was renewed now. */
  renewed(): void {
    this.#count += 1;
    this.#renewedAtMs = this.#now();
  }

  /** A new decoder (made for any reason) starts with an empty pool. */
  newDecoder(): void {
    this.#highWater = 0;
  }
}
