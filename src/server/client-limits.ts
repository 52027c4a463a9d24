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
