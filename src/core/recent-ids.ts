/**
 * The most recent `limit` ids added (oldest forgotten first): for "this one is gone" marks that a
 * long-running service adds for ever (one per source session) and only ever needs for ids still
 * in flight, so that they do not grow without bound.
 */
export class RecentIds {
  readonly #ids = new Set<number>();
  readonly #limit: number;

  /** Remembers at most `limit` ids (default 10,000). */
  constructor(limit = 10_000) {
    this.#limit = limit;
  }

  /** Whether `id` was added and not yet forgotten. */
  has(id: number): boolean {
    return this.#ids.has(id);
  }

  /** Adds `id`, forgetting the oldest once over the limit. */
  add(id: number): void {
    this.#ids.delete(id);
    this.#ids.add(id);
    if (this.#ids.size > this.#limit) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
  }

  get size(): number {
    return this.#ids.size;
  }
}
