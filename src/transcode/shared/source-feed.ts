/**
 * A rendition's side of its source's shared decoder: the lease, the init segment the rendition
 * believes in, and back-pressure (a fragment is submitted, then the rendition waits while its own
 * queue is above the soft limit).
 */

import type { Fragment, FragmentMeta } from '../../fragment/fragment.ts';
import type { DrainQueue } from './drain-queue.ts';
import type { SessionLease } from './session-sources.ts';

/** What a rendition feeds: its source's shared decoder. */
export interface FedSource {
  /** Decodes `fragment` unless another rendition already submitted it. */
  submit(fragment: Fragment, init: Uint8Array | undefined): Promise<void>;
  /** Switches to a new init once; later calls for it are no-ops. */
  reconfigure(meta: FragmentMeta): Promise<void>;
  /** Flushes the decoder once at the end of the source. */
  finish(): Promise<void>;
}

/** What the feed needs of the rendition's queue. */
export type FeedQueue = Pick<DrainQueue<unknown>, 'waitWhile' | 'settled' | 'stop'>;

/** Feeds one rendition's source fragments to its shared decoder. */
export class SourceFeed<Source extends FedSource> {
  readonly #queue: FeedQueue;
  readonly #softLimit: number;
  #lease: SessionLease<Source> | undefined;
  #init: Uint8Array | undefined;

  /** A feed not yet started; `submit` waits while `queue` holds more than `softLimit` items. */
  constructor(queue: FeedQueue, softLimit: number) {
    this.#queue = queue;
    this.#softLimit = softLimit;
  }

  /** The shared decoder, between `start` and `stop`. */
  get source(): Source | undefined {
    return this.#lease?.source;
  }

  /** Holds `lease`, starting at the init of `meta`. */
  start(lease: SessionLease<Source>, meta: FragmentMeta): void {
    this.#lease = lease;
    this.#init = meta.initSegment;
  }

  /** Submits `fragment`, then holds the caller while the queue is above the soft limit. */
  async submit(fragment: Fragment): Promise<void> {
    const source = this.#lease?.source;
    if (source === undefined) return;
    await source.submit(fragment, this.#init);
    await this.#queue.waitWhile((length) => length > this.#softLimit);
  }

  /** Switches the source to the init of `meta` (the decoder marks the boundary in the queue). */
  async reconfigure(meta: FragmentMeta): Promise<void> {
    const source = this.#lease?.source;
    if (source === undefined) return;
    await source.reconfigure(meta);
    this.#init = meta.initSegment;
  }

  /**
   * At the end of the source: flushes the decoder, waits until the queue is drained and stops it,
   * runs `close` (the rendition's encoder), then lets go of the decoder. False when never started.
   */
  async stop(close: () => Promise<void>): Promise<boolean> {
    const lease = this.#lease;
    if (lease === undefined) return false;
    await lease.source.finish();
    await this.#queue.settled();
    this.#queue.stop();
    await close();
    lease.release();
    this.#lease = undefined;
    return true;
  }
}
