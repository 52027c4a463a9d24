/**
 * A rendition's work queue: items are handled one at a time by a single drain loop, started on
 * push and restarted while items remain; waiters are woken as the queue drains, so producers can
 * hold back while it is long and a stopping rendition can wait until it is empty.
 */

/** A queue drained by one async loop at a time. */
export class DrainQueue<T> {
  readonly #handle: (item: T) => Promise<void>;
  #items: T[] = [];
  #draining = false;
  #drained: Array<() => void> = [];
  #stopped = false;

  /** An empty queue; `handle` processes each item in order (and calls `wake` when it made room). */
  constructor(handle: (item: T) => Promise<void>) {
    this.#handle = handle;
  }

  /** Items waiting to be handled. */
  get length(): number {
    return this.#items.length;
  }

  /** The waiting items, oldest first. */
  get items(): readonly T[] {
    return this.#items;
  }

  /** Whether `stop` was called: nothing more is drained after the current loop. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Appends `item` and starts the drain loop unless it runs. */
  push(item: T): void {
    this.#items.push(item);
    this.#pump();
  }

  /** Removes the waiting items `match` selects and returns them. */
  remove<U extends T>(match: (item: T) => item is U): U[];
  /** Removes the waiting items `match` selects and returns them. */
  remove(match: (item: T) => boolean): T[];
  remove(match: (item: T) => boolean): T[] {
    const removed = this.#items.filter(match);
    this.#items = this.#items.filter((item) => !match(item));
    return removed;
  }

  /** Resolves once `full(length)` is false after a drain step, or the queue is stopped. */
  async waitWhile(full: (length: number) => boolean): Promise<void> {
    while (full(this.#items.length) && !this.#stopped) await this.#nextDrained();
  }

  /** Resolves once every item is handled and no drain loop runs. */
  async settled(): Promise<void> {
    while (this.#items.length > 0 || this.#draining) await this.#nextDrained();
  }

  /** Stops draining after the current loop (waiters are woken by the next `wake`). */
  stop(): void {
    this.#stopped = true;
  }

  /** Wakes every waiter (each checks its condition again). */
  wake(): void {
    for (const resolve of this.#drained.splice(0)) resolve();
  }

  #nextDrained(): Promise<void> {
    return new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  #pump(): void {
    if (this.#draining) return;
    this.#draining = true;
    void this.#drain().finally(() => {
      this.#draining = false;
      if (this.#items.length > 0 && !this.#stopped) this.#pump();
      else this.wake();
    });
  }

  async #drain(): Promise<void> {
    for (let item = this.#items.shift(); item !== undefined; item = this.#items.shift()) await this.#handle(item);
  }
}
