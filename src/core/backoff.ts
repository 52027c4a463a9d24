/**
 * Exponential back-off after failures: the first delayed retry waits `baseMs`, each further
 * consecutive failure doubles the wait, up to `maxMs`; a success starts over.
 */

/** Delay before retry number `failures` (1 = the first failure): `baseMs * 2^(failures-1)`, capped. */
export function backoffDelayMs(failures: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
}

/** Tunables of a `Backoff`. */
export type BackoffOptions = {
  /** First delay, ms. */
  baseMs: number;
  /** Longest delay, ms. */
  maxMs: number;
  /** Clock, ms. */
  now: () => number;
  /**
   * Consecutive failures retried without a delay (default 0). A decoder or encoder restarts only
   * at a keyframe, which already spaces its retries by a GOP; waiting on the wall clock as well
   * loses the next keyframe whenever media arrives in a burst (a backlog after a stall).
   */
  immediateRetries?: number;
};

/** Consecutive failures of one thing (a decoder, an encoder) and when it may be tried again. */
export class Backoff {
  readonly #options: BackoffOptions;
  #failures = 0;
  #retryAtMs = 0;

  /** A back-off with no failure recorded. */
  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** Records a failure; returns the delay before the next attempt, ms. */
  fail(): number {
    this.#failures += 1;
    const delayed = this.#failures - (this.#options.immediateRetries ?? 0);
    const delayMs = delayed <= 0 ? 0 : backoffDelayMs(delayed, this.#options.baseMs, this.#options.maxMs);
    this.#retryAtMs = this.#options.now() + delayMs;
    return delayMs;
  }

  /** Records a success: the next failure waits `baseMs` again. */
  succeed(): void {
    this.#failures = 0;
  }

  /** Whether the delay after the last failure is still running. */
  get waiting(): boolean {
    return this.#options.now() < this.#retryAtMs;
  }

  /** Failures since the last success. */
  get failures(): number {
    return this.#failures;
  }
}
