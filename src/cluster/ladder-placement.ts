/**
 * `LadderPlacement`: exactly one transcode node runs each source's ladder. A node takes a source
 * by creating its lease in KV (only one create can succeed), renews it every heartbeat, and takes
 * no more sources than `maxSources`. A dead node stops renewing; its leases expire with the
 * bucket's TTL and the next node's heartbeat takes them over.
 */

import type { KV } from '@nats-io/kv';
import type { Logger } from '../core/log.ts';
import type { ClaimEntry } from './directory.ts';
import { tokenOf } from './names.ts';

/** What changed in one heartbeat. */
export type PlacementChange = { readonly gained: string[]; readonly lost: string[] };

/** The leases of one transcode node. */
export class LadderPlacement {
  readonly #kv: KV;
  readonly #nodeId: string;
  readonly #maxSources: number;
  readonly #logger: Logger;
  readonly #held = new Map<string, number>();

  /** Leases of `nodeId` in `kv`, at most `maxSources`. */
  constructor(kv: KV, nodeId: string, maxSources: number, logger: Logger) {
    this.#kv = kv;
    this.#nodeId = nodeId;
    this.#maxSources = maxSources;
    this.#logger = logger;
  }

  /** Whether this node runs `broadcast`'s ladder. */
  holds(broadcast: string): boolean {
    return this.#held.has(broadcast);
  }

  /** Sources whose ladder this node runs. */
  held(): string[] {
    return [...this.#held.keys()];
  }

  /** The most sources this node takes. */
  get maxSources(): number {
    return this.#maxSources;
  }

  /**
   * One heartbeat: renews the leases of sources still in `sources`, releases the others, and
   * takes free sources while below capacity.
   */
  async tick(sources: readonly string[]): Promise<PlacementChange> {
    const gained: string[] = [];
    const lost: string[] = [];
    const live = new Set(sources);
    const value = (): string => JSON.stringify({ node: this.#nodeId, sinceMs: Date.now() } satisfies ClaimEntry);
    for (const [broadcast, revision] of [...this.#held]) {
      const key = tokenOf(broadcast);
      if (!live.has(broadcast)) {
        this.#held.delete(broadcast);
        lost.push(broadcast);
        await this.#kv.delete(key, { previousSeq: revision }).catch(() => {});
        continue;
      }
      try {
        this.#held.set(broadcast, await this.#kv.update(key, value(), revision));
      } catch {
        // Gone without a successor (NATS lost its memory, or this node stalled past the TTL and
        // nobody took it): take it again; held by another node now: let it go.
        try {
          this.#held.set(broadcast, await this.#kv.create(key, value()));
        } catch {
          this.#held.delete(broadcast);
          lost.push(broadcast);
          this.#logger.warn('ladder lease lost', { broadcast });
        }
      }
    }
    for (const broadcast of sources) {
      if (this.#held.size >= this.#maxSources) break;
      if (this.#held.has(broadcast)) continue;
      try {
        this.#held.set(broadcast, await this.#kv.create(tokenOf(broadcast), value()));
        gained.push(broadcast);
        this.#logger.info('ladder lease taken', { broadcast });
      } catch {
        // Another node holds it.
      }
    }
    return { gained, lost };
  }

  /** Releases every lease (another node takes them at its next heartbeat). */
  async close(): Promise<void> {
    await this.tick([]);
  }
}
