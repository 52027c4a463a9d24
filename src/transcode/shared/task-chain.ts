/**
 * The task chain of a shared decoder: its tasks run one after another, a failing task is reported
 * and never poisons the chain, and each source fragment is let through once however many
 * renditions submit it.
 */

/** Tasks run in order, with fragments deduplicated by decode timestamp. */
export class TaskChain {
  readonly #onError: (error: unknown) => void;
  #tail: Promise<void> = Promise.resolve();
  #lastSubmittedDts = -Infinity;
  /** The fragments submitted at `#lastSubmittedDts` (a muxer may give two fragments one decode time). */
  #atLastDts: object[] = [];

  /** An empty chain; `onError` is told of every failing task. */
  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  /** Settles once every task chained so far has. */
  get tail(): Promise<void> {
    return this.#tail;
  }

  /** Chains `task` after every earlier one. */
  step(task: () => Promise<void>): Promise<void> {
    this.#tail = this.#tail.then(task).catch(this.#onError);
    return this.#tail;
  }

  /**
   * Chains `task` for `fragment` (decode time `dts`, the same object for every submitter) unless it
   * was submitted already or one after it was. A later fragment at the same decode time is a new
   * one (ffmpeg's per-frame fragmenting of a remuxed stream repeats a decode time before each
   * keyframe), not a repeat.
   */
  submitOnce(dts: number, fragment: object, task: () => Promise<void>): Promise<void> {
    if (dts < this.#lastSubmittedDts) return this.#tail;
    if (dts === this.#lastSubmittedDts && this.#atLastDts.includes(fragment)) return this.#tail;
    if (dts > this.#lastSubmittedDts) this.#atLastDts = [];
    this.#lastSubmittedDts = dts;
    this.#atLastDts.push(fragment);
    return this.step(task);
  }

  /** Forgets the submitted timestamps (the fragments of a new init restart them). */
  restartTimestamps(): void {
    this.#lastSubmittedDts = -Infinity;
    this.#atLastDts = [];
  }
}
