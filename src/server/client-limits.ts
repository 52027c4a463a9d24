/**
 * Per-client limits: how many things one client address may hold at once (publisher connections,
 * held LL-HLS blocking requests). One misbehaving client then cannot take what every other client
 * needs. A client whose address the runtime cannot tell is not limited here (global limits still apply).
 */

/** Counts what each client holds and refuses above `max`. */
export class PerClientLimit {
  /** Most held at once by one client. */
  readonly max: number;
  readonly #held = new Map<string, number>();

  /** A limit of `max` per client (`Infinity` for none). */
  constructor(max: number) {
    if (!(max >= 1)) throw new TypeError(`max must be at least 1, got ${max}`);
    this.max = max;
  }

  /** Takes a slot for `client`: a release function (idempotent), or undefined when at the limit. */
  acquire(client: string | undefined): (() => void) | undefined {
    if (client === undefined) return () => {};
    const held = this.#held.get(client) ?? 0;
    if (held >= this.max) return undefined;
    this.#held.set(client, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.#held.get(client) ?? 1) - 1;
      if (now <= 0) this.#held.delete(client);
      else this.#held.set(client, now);
    };
  }

  /** How many slots `client` holds. */
  held(client: string): number {
    return this.#held.get(client) ?? 0;
  }

  /** Clients holding at least one slot. */
  get clients(): number {
    return this.#held.size;
  }
}

/**
 * Per-client count of long-lived things that know when they are over (`ended`), such as publisher
 * connections: ended ones are forgotten lazily, so no release call can be missed.
 */
export class PerClientSet<T extends { readonly ended: boolean }> {
  /** Most live at once for one client. */
  readonly max: number;
  readonly #live = new Map<string, Set<T>>();

  /** A limit of `max` per client (`Infinity` for none). */
  constructor(max: number) {
    if (!(max >= 1)) throw new TypeError(`max must be at least 1, got ${max}`);
    this.max = max;
  }

  /** Whether `client` may start one more. */
  hasRoom(client: string | undefined): boolean {
    return client === undefined || this.live(client) < this.max;
  }

  /** Records `item` for `client` (after `hasRoom`). */
  add(client: string | undefined, item: T): void {
    if (client === undefined) return;
    let set = this.#live.get(client);
    if (set === undefined) {
      if (this.#live.size >= 1024) this.#sweep();
      set = new Set();
      this.#live.set(client, set);
    }
    set.add(item);
  }

  /** How many of `client`'s items have not ended. */
  live(client: string): number {
    const set = this.#live.get(client);
    if (set === undefined) return 0;
    for (const item of set) if (item.ended) set.delete(item);
    if (set.size === 0) this.#live.delete(client);
    return set.size;
  }

  #sweep(): void {
    for (const client of [...this.#live.keys()]) this.live(client);
  }
}
