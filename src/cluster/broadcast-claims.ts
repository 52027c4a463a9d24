/**
 * `BroadcastClaims`: broadcast names are unique across the cluster. An ingest node claims a name
 * in KV before it lets a publisher in (a name held by another node is refused with 409
 * `ingest.published_elsewhere`), keeps the claim while the broadcast is live or in its grace
 * period, and withdraws it when the broadcast ends. A dead node's claims expire with their entries.
 */

import type { KV } from '@nats-io/kv';
import { errorMessage, LvqrError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { type ClaimEntry, parseEntry } from './directory.ts';
import { tokenOf } from './names.ts';

/** The claims of one ingest node. */
export class BroadcastClaims {
  readonly #kv: KV;
  readonly #nodeId: string;
  readonly #logger: Logger;
  /** Names held, with the revision of the claim written last. */
  readonly #held = new Map<string, number>();

  /** Claims of `nodeId` in `kv`. */
  constructor(kv: KV, nodeId: string, logger: Logger) {
    this.#kv = kv;
    this.#nodeId = nodeId;
    this.#logger = logger;
  }

  /** Names this node holds. */
  held(): string[] {
    return [...this.#held.keys()];
  }

  /**
   * Claims `broadcast` for this node (or confirms its claim). Throws `LvqrError`
   * `ingest.published_elsewhere` when another node holds it, `cluster.unavailable` when NATS does
   * not answer.
   */
  async claim(broadcast: string): Promise<void> {
    const key = tokenOf(broadcast);
    const value = JSON.stringify({ node: this.#nodeId, sinceMs: Date.now() } satisfies ClaimEntry);
    try {
      this.#held.set(broadcast, await this.#kv.create(key, value));
      return;
    } catch (error) {
      const current = await this.#kv.get(key).catch(() => null);
      if (current === null) {
        throw new LvqrError('cluster.unavailable', `the cluster directory did not answer: ${errorMessage(error)}`);
      }
      const holder = current.operation === 'PUT' ? parseEntry<ClaimEntry>(current.value)?.node : undefined;
      if (holder !== undefined && holder !== this.#nodeId) {
        throw new LvqrError('ingest.published_elsewhere', `broadcast ${broadcast} is published on node ${holder}`);
      }
      this.#held.set(broadcast, await this.#kv.put(key, value));
    }
  }

  /** Keeps the claims of `live` (the broadcasts publishing or in grace here) and withdraws the rest. */
  async refresh(live: readonly string[]): Promise<void> {
    const wanted = new Set(live);
    for (const [broadcast, revision] of [...this.#held]) {
      const key = tokenOf(broadcast);
      if (!wanted.has(broadcast)) {
        this.#held.delete(broadcast);
        await this.#kv.delete(key, { previousSeq: revision }).catch(() => {});
        continue;
      }
      const value = JSON.stringify({ node: this.#nodeId, sinceMs: Date.now() } satisfies ClaimEntry);
      try {
        this.#held.set(broadcast, await this.#kv.update(key, value, revision));
      } catch {
        // Expired (NATS was away) or taken: claim it again unless another node holds it now.
        try {
          await this.claim(broadcast);
        } catch (error) {
          this.#held.delete(broadcast);
          this.#logger.warn('broadcast name lost to another node', { broadcast, error: errorMessage(error) });
        }
      }
    }
  }

  /** Withdraws every claim. */
  async close(): Promise<void> {
    await this.refresh([]);
  }
}
