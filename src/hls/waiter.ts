/**
 * The held requests of one track window: each waits for a check to hold, its timeout, its abort
 * signal or the window's disposal. `wake()` runs at every published change.
 */

/** What a blocking wait ended with. */
export type WaitOutcome = 'ready' | 'timeout' | 'aborted' | 'closed';

/**
 * A held request: released by a change that satisfies `check`, its timeout, its signal (it is the
 * abort listener itself) or disposal. One object per request, no closures: a wake-up releases
 * hundreds at once.
 */
class Waiter {
  readonly check: () => boolean;
  readonly #waiters: Set<Waiter>;
  readonly #signal: AbortSignal | undefined;
  #resolve: ((outcome: WaitOutcome) => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    waiters: Set<Waiter>,
    check: () => boolean,
    signal: AbortSignal | undefined,
    resolve: (outcome: WaitOutcome) => void,
  ) {
    this.#waiters = waiters;
    this.check = check;
    this.#signal = signal;
    this.#resolve = resolve;
  }

  /** Joins the waiter set and starts the timeout and the abort watch. */
  hold(timeoutMs: number): void {
    this.#waiters.add(this);
    this.#timer = setTimeout(expire, timeoutMs, this);
    this.#signal?.addEventListener('abort', this, { once: true });
  }

  /** The signal's abort listener. */
  handleEvent(): void {
    this.finish('aborted');
  }

  /** Settles the wait once; later calls do nothing. */
  finish(outcome: WaitOutcome): void {
    const resolve = this.#resolve;
    if (resolve === undefined) return;
    this.#resolve = undefined;
    this.#waiters.delete(this);
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this);
    resolve(outcome);
  }
}

function expire(waiter: Waiter): void {
  waiter.finish('timeout');
}

/** The blocking requests held on one window. */
export class WaiterSet {
  readonly #waiters = new Set<Waiter>();

  /** Held requests. */
  get size(): number {
    return this.#waiters.size;
  }

  /** Resolves once `check()` holds (checked at each `wake()`), or with `timeout`, `aborted` or `closed`. */
  wait(check: () => boolean, timeoutMs: number, signal: AbortSignal | undefined): Promise<WaitOutcome> {
    if (check()) return Promise.resolve('ready');
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => new Waiter(this.#waiters, check, signal, resolve).hold(timeoutMs));
  }

  /** Releases (`ready`) every waiter whose check now holds. */
  wake(): void {
    if (this.#waiters.size === 0) return;
    for (const waiter of this.#waiters) {
      if (waiter.check()) waiter.finish('ready');
    }
  }

  /** Releases every waiter with `closed`. */
  closeAll(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.finish('closed');
  }
}
