/**
 * `FragmentSubscription`: one reader of a broadcaster, with its own bounded queue. A reader that
 * falls behind drops whole groups of pictures from the front (resuming at an independent
 * fragment, never mid-GOP) and counts them as lagged; meta changes travel in the queue, so
 * `meta` always describes the fragment `next()` returned last.
 */

import type { Fragment, FragmentMeta } from './fragment.ts';

/** What a subscription reads of its broadcaster. */
export interface SubscriptionSource {
  readonly trackId: string;
  readonly meta: FragmentMeta;
  readonly metaVersion: number;
  /** Resolves with the meta once it carries an init segment, or `undefined` at the end or on abort. */
  waitForInit(signal?: AbortSignal): Promise<FragmentMeta | undefined>;
}

/** The broadcaster's side of a subscription: told when it closes and when it skips fragments. */
export type SubscriptionHooks = {
  onClose(subscription: FragmentSubscription): void;
  onLag(count: number): void;
};

/** A meta change queued between fragments, applied in stream order. */
export type MetaChange = { readonly meta: FragmentMeta; readonly version: number };
type QueueItem = Fragment | MetaChange;

function isMetaChange(item: QueueItem): item is MetaChange {
  return (item as MetaChange).version !== undefined;
}

/** A reader of one broadcaster. Read with `next()` or `for await`; `undefined` marks the end. */
export class FragmentSubscription implements AsyncIterable<Fragment> {
  readonly #source: SubscriptionSource;
  readonly #hooks: SubscriptionHooks;
  readonly #capacity: number;
  readonly #maxBytes: number;
  /** Items from `#head` on are queued; consumed slots before it hold undefined until compaction. */
  #queue: Array<QueueItem | undefined> = [];
  #head = 0;
  #fragments = 0;
  #bytes = 0;
  #meta: FragmentMeta;
  #metaVersion: number;
  #lagged = 0;
  #skippedBeforeInit = 0;
  #waitingForIndependent = false;
  #ended = false;
  #closed = false;
  #wake: (() => void) | undefined;
  #closedPromise: Promise<undefined> | undefined;
  #resolveClosed: (() => void) | undefined;

  /** A subscription of `source` (made by `FragmentBroadcaster.subscribe`). */
  constructor(
    source: SubscriptionSource,
    hooks: SubscriptionHooks,
    meta: FragmentMeta,
    metaVersion: number,
    capacity: number,
    maxBytes: number,
  ) {
    this.#source = source;
    this.#hooks = hooks;
    this.#meta = meta;
    this.#metaVersion = metaVersion;
    this.#capacity = capacity;
    this.#maxBytes = maxBytes;
  }

  /** Track id of the broadcaster. */
  get trackId(): string {
    return this.#source.trackId;
  }

  /** The meta in effect for the fragment `next()` returned last (updated in stream order). */
  get meta(): FragmentMeta {
    return this.#meta;
  }

  /** Bumps each time the meta in effect changes (a new init segment = a discontinuity). */
  get metaVersion(): number {
    return this.#metaVersion;
  }

  /** Fragments this subscriber skipped because it fell behind. */
  get lagged(): number {
    return this.#lagged;
  }

  /** Fragments dropped by `waitForInit` because they came before any init segment. */
  get skippedBeforeInit(): number {
    return this.#skippedBeforeInit;
  }

  /** Fragments waiting in this subscriber's queue. */
  get queued(): number {
    return this.#fragments;
  }

  /** Payload bytes waiting in this subscriber's queue. */
  get queuedBytes(): number {
    return this.#bytes;
  }

  /** True once the end was returned or the subscription was closed. */
  get done(): boolean {
    return this.#closed || (this.#ended && this.#fragments === 0);
  }

  /** Takes the producer's current meta now, as LVQR's `refresh_meta` (skips in-order meta updates). */
  refreshMeta(): FragmentMeta {
    this.#meta = this.#source.meta;
    this.#metaVersion = this.#source.metaVersion;
    return this.#meta;
  }

  /**
   * Resolves with the meta once it carries an init segment (at once if it already does).
   * Resolves `undefined` if the stream ends or `signal` aborts first.
   */
  async waitForInit(signal?: AbortSignal): Promise<FragmentMeta | undefined> {
    if (this.#meta.initSegment !== undefined) return this.#meta;
    if (this.#closed) return undefined;
    const meta = await Promise.race([this.#source.waitForInit(signal), this.#whenClosed()]);
    if (meta === undefined || this.#closed) return undefined;
    this.#skipToInit();
    return this.#meta;
  }

  /** The next fragment, or `undefined` at the end (after every queued fragment was delivered). */
  async next(signal?: AbortSignal): Promise<Fragment | undefined> {
    for (;;) {
      const item = this.#shift();
      if (item !== undefined) return item;
      if (this.#ended || this.#closed || signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        this.#wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      this.#wake = undefined;
    }
  }

  /** A queued fragment without waiting, or `undefined` if none is queued. */
  tryNext(): Fragment | undefined {
    return this.#shift();
  }

  /** Resolves when this subscription is closed (lets waits end without an abort listener each). */
  #whenClosed(): Promise<undefined> {
    this.#closedPromise ??= new Promise<undefined>((resolve) => {
      this.#resolveClosed = () => resolve(undefined);
    });
    return this.#closedPromise;
  }

  /** Stops reading: the queue is dropped and `next()` returns `undefined`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#resolveClosed?.();
    this.#queue = [];
    this.#head = 0;
    this.#fragments = 0;
    this.#bytes = 0;
    this.#hooks.onClose(this);
    this.#notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Fragment> {
    try {
      for (;;) {
        const fragment = await this.next();
        if (fragment === undefined) return;
        yield fragment;
      }
    } finally {
      this.close();
    }
  }

  /** Producer side: a fragment was emitted. Returns false when this subscriber skipped it. */
  push(fragment: Fragment): boolean {
    if (this.#closed) return false;
    if (this.#waitingForIndependent) {
      if (!fragment.flags.independent) {
        this.#countLag(1);
        return false;
      }
      this.#waitingForIndependent = false;
    }
    const size = fragment.payload.byteLength;
    if (this.#fragments + 1 > this.#capacity || this.#bytes + size > this.#maxBytes) {
      this.#shed(fragment);
      if (this.#waitingForIndependent) {
        this.#countLag(1);
        return false;
      }
    }
    this.#queue.push(fragment);
    this.#fragments += 1;
    this.#bytes += size;
    this.#notify();
    return true;
  }

  /** Producer side: the meta changed after the fragments pushed so far. */
  pushMeta(change: MetaChange): void {
    if (this.#closed) return;
    this.#queue.push(change);
    this.#notify();
  }

  /** Producer side: the producer closed; the reader gets what is queued, then `undefined`. */
  end(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #shift(): Fragment | undefined {
    while (this.#head < this.#queue.length) {
      const item = this.#take();
      if (isMetaChange(item)) {
        this.#meta = item.meta;
        this.#metaVersion = item.version;
        continue;
      }
      this.#fragments -= 1;
      this.#bytes -= item.payload.byteLength;
      this.#compact();
      return item;
    }
    this.#compact();
    return undefined;
  }

  /**
   * The item at `#head`, consumed: its slot lets go of it at once (a reader that stays a few items
   * behind never empties the queue, and its consumed fragments would stay alive until compaction).
   */
  #take(): QueueItem {
    const item = this.#queue[this.#head]!;
    this.#queue[this.#head] = undefined;
    this.#head += 1;
    return item;
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * Makes room for `incoming`: drops the oldest group of pictures (everything up to the next
   * independent fragment in the queue). If no later independent fragment is queued, drops the
   * whole queue and waits for the next independent fragment, so a reader never resumes mid-GOP.
   */
  #shed(incoming: Fragment): void {
    let cut = -1;
    for (let i = this.#head + 1; i < this.#queue.length; i++) {
      const item = this.#queue[i]!;
      if (!isMetaChange(item) && item.flags.independent) {
        cut = i;
        break;
      }
    }
    const end = cut === -1 ? this.#queue.length : cut;
    let dropped = 0;
    while (this.#head < end) {
      const item = this.#take();
      if (isMetaChange(item)) {
        this.#meta = item.meta;
        this.#metaVersion = item.version;
      } else {
        dropped += 1;
        this.#fragments -= 1;
        this.#bytes -= item.payload.byteLength;
      }
    }
    this.#compact();
    this.#countLag(dropped);
    if (cut === -1) {
      this.#waitingForIndependent = !incoming.flags.independent;
    } else if (this.#fragments + 1 > this.#capacity || this.#bytes + incoming.payload.byteLength > this.#maxBytes) {
      this.#shed(incoming);
    }
  }

  #countLag(count: number): void {
    if (count <= 0) return;
    this.#lagged += count;
    this.#hooks.onLag(count);
  }

  /** Drops fragments queued before the first init segment (nothing can decode them) and applies it. */
  #skipToInit(): void {
    while (this.#meta.initSegment === undefined && this.#head < this.#queue.length) {
      const item = this.#take();
      if (isMetaChange(item)) {
        this.#meta = item.meta;
        this.#metaVersion = item.version;
      } else {
        this.#fragments -= 1;
        this.#bytes -= item.payload.byteLength;
        this.#skippedBeforeInit += 1;
      }
    }
    this.#compact();
    if (this.#meta.initSegment === undefined) {
      this.#meta = this.#source.meta;
      this.#metaVersion = this.#source.metaVersion;
    }
  }
}
