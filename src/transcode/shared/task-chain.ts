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

  /** Chains `task` for the fragment at `dts` unless one at or after it was submitted already. */
  submitOnce(dts: number, task: () => Promise<void>): Promise<void> {
    if (dts <= this.#lastSubmittedDts) return this.#tail;
    this.#lastSubmittedDts = dts;
    return this.step(task);
  }

  /** Forgets the submitted timestamps (the fragments of a new init restart them). */
  restartTimestamps(): void {
    this.#lastSubmittedDts = -Infinity;
  }
}
