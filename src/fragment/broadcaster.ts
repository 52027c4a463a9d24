/**
 * `FragmentBroadcaster`: single-producer, multi-subscriber fan-out of `Fragment`s for one
 * (broadcast, track). `emit` never blocks or awaits; each subscriber has its own bounded queue.
 */

import { argumentError } from '../core/errors.ts';
import type { Fragment, FragmentMeta } from './fragment.ts';

/** Default per-subscriber queue bound in fragments (as LVQR's ring buffer). */
export const DEFAULT_SUBSCRIBER_CAPACITY = 1024;
/** Default per-subscriber queue bound in payload bytes. */
export const DEFAULT_SUBSCRIBER_MAX_BYTES = 64 * 1024 * 1024;

/** What produced a broadcaster's fragments: a publisher, or a transcoder output (never re-transcoded). */
export type BroadcastOrigin =
  | { readonly kind: 'ingest' }
  | { readonly kind: 'rendition'; readonly source: string; readonly rendition: string; readonly transcoder: string };

/** Options of a broadcaster. */
export type BroadcasterOptions = {
  /** Per-subscriber queue bound in fragments. */
  capacity?: number;
  /** Per-subscriber queue bound in payload bytes. */
  maxBytes?: number;
  /** Tag of who produces this track; defaults to ingest. */
  origin?: BroadcastOrigin;
  /** Called once per fragment a lagging subscriber skips (feeds the lagged-skips metric). */
  onLaggedSkip?: (count: number, trackId: string) => void;
};

/** Options of one subscription. */
export type SubscribeOptions = {
  /** Queue bound in fragments (defaults to the broadcaster's). */
  capacity?: number;
  /** Queue bound in payload bytes (defaults to the broadcaster's). */
  maxBytes?: number;
};

type MetaChange = { readonly meta: FragmentMeta; readonly version: number };
type QueueItem = Fragment | MetaChange;

function isMetaChange(item: QueueItem): item is MetaChange {
  return (item as MetaChange).version !== undefined;
}

/** A reader of one broadcaster. Read with `next()` or `for await`; `undefined` marks the end. */
export class FragmentSubscription implements AsyncIterable<Fragment> {
  readonly #source: FragmentBroadcaster;
  readonly #capacity: number;
  readonly #maxBytes: number;
  #queue: QueueItem[] = [];
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

  /** @internal Use `FragmentBroadcaster.subscribe`. */
  constructor(
    source: FragmentBroadcaster,
    meta: FragmentMeta,
    metaVersion: number,
    capacity: number,
    maxBytes: number,
  ) {
    this.#source = source;
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
    this.#source._detach(this);
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

  /** @internal Called by the broadcaster on emit. Returns false when the fragment was skipped. */
  _push(fragment: Fragment): boolean {
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

  /** @internal Called by the broadcaster when the meta changes. */
  _pushMeta(change: MetaChange): void {
    if (this.#closed) return;
    this.#queue.push(change);
    this.#notify();
  }

  /** @internal Called by the broadcaster when the producer closes. */
  _end(): void {
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
      const item = this.#queue[this.#head]!;
      this.#head += 1;
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
    for (let i = this.#head; i < end; i++) {
      const item = this.#queue[i]!;
      if (isMetaChange(item)) {
        this.#meta = item.meta;
        this.#metaVersion = item.version;
      } else {
        dropped += 1;
        this.#fragments -= 1;
        this.#bytes -= item.payload.byteLength;
      }
    }
    this.#head = end;
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
    this.#source._countLag(count);
  }

  /** Drops fragments queued before the first init segment (nothing can decode them) and applies it. */
  #skipToInit(): void {
    while (this.#meta.initSegment === undefined && this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!;
      this.#head += 1;
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

/** Single-producer, multi-subscriber fan-out for one (broadcast, track). */
export class FragmentBroadcaster {
  readonly trackId: string;
  readonly origin: BroadcastOrigin;
  readonly #capacity: number;
  readonly #maxBytes: number;
  readonly #onLaggedSkip: ((count: number, trackId: string) => void) | undefined;
  readonly #subscribers = new Set<FragmentSubscription>();
  readonly #metaListeners = new Set<(meta: FragmentMeta, version: number) => void>();
  readonly #closeListeners = new Set<() => void>();
  #meta: FragmentMeta;
  #metaVersion = 0;
  #emitted = 0;
  #emittedBytes = 0;
  #lastEmitMs = 0;
  #laggedSkips = 0;
  #closed = false;

  /** Creates a broadcaster for `trackId` with its initial meta. */
  constructor(trackId: string, meta: FragmentMeta, options: BroadcasterOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_SUBSCRIBER_CAPACITY;
    const maxBytes = options.maxBytes ?? DEFAULT_SUBSCRIBER_MAX_BYTES;
    if (!Number.isInteger(capacity) || capacity < 1) throw argumentError('capacity', 'an integer >= 1', capacity);
    if (!(maxBytes > 0)) throw argumentError('maxBytes', 'a positive number', maxBytes);
    this.trackId = trackId;
    this.#meta = meta;
    this.#capacity = capacity;
    this.#maxBytes = maxBytes;
    this.origin = options.origin ?? { kind: 'ingest' };
    this.#onLaggedSkip = options.onLaggedSkip;
  }

  /** Current producer-side meta. */
  get meta(): FragmentMeta {
    return this.#meta;
  }

  /** Bumps at every meta change. */
  get metaVersion(): number {
    return this.#metaVersion;
  }

  /** Fragments emitted since creation. */
  get emittedCount(): number {
    return this.#emitted;
  }

  /** Payload bytes emitted since creation. */
  get emittedBytes(): number {
    return this.#emittedBytes;
  }

  /** Wall-clock ms of the last emit (0 if none). */
  get lastEmitMs(): number {
    return this.#lastEmitMs;
  }

  /** Fragments skipped by lagging subscribers, summed over all of them. */
  get laggedSkips(): number {
    return this.#laggedSkips;
  }

  /** Live subscribers. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends `fragment` to every subscriber without waiting; returns how many queued it. */
  emit(fragment: Fragment): number {
    if (this.#closed) return 0;
    this.#emitted += 1;
    this.#emittedBytes += fragment.payload.byteLength;
    this.#lastEmitMs = Date.now();
    let reached = 0;
    for (const sub of this.#subscribers) {
      if (sub._push(fragment)) reached += 1;
    }
    return reached;
  }

  /** Replaces the meta; subscribers see it in stream order and listeners are told at once. */
  setMeta(meta: FragmentMeta): void {
    if (this.#closed) return;
    this.#meta = meta;
    this.#metaVersion += 1;
    const change: MetaChange = { meta, version: this.#metaVersion };
    for (const sub of this.#subscribers) sub._pushMeta(change);
    for (const listener of [...this.#metaListeners]) {
      try {
        listener(meta, this.#metaVersion);
      } catch {
        // A listener's failure must not reach the producer.
      }
    }
  }

  /** Sets a new init segment (keeps codec and timescale unless given). */
  setInitSegment(initSegment: Uint8Array, codec?: string, timescale?: number): void {
    this.setMeta({ codec: codec ?? this.#meta.codec, timescale: timescale ?? this.#meta.timescale, initSegment });
  }

  /** Calls `listener` at each meta change; returns the unsubscribe function. */
  onMeta(listener: (meta: FragmentMeta, version: number) => void): () => void {
    this.#metaListeners.add(listener);
    return () => this.#metaListeners.delete(listener);
  }

  /** Calls `listener` once when the producer closes (at once if closed); returns the unsubscribe function. */
  onClose(listener: () => void): () => void {
    if (this.#closed) {
      listener();
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** Resolves with the meta once it has an init segment; `undefined` on close or abort. */
  waitForInit(signal?: AbortSignal): Promise<FragmentMeta | undefined> {
    if (this.#meta.initSegment !== undefined) return Promise.resolve(this.#meta);
    if (this.#closed || signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const finish = (value: FragmentMeta | undefined): void => {
        offMeta();
        offClose();
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      };
      const onAbort = (): void => finish(undefined);
      const offMeta = this.onMeta((meta) => {
        if (meta.initSegment !== undefined) finish(meta);
      });
      const offClose = this.onClose(() => finish(undefined));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A new subscriber that sees every fragment emitted from now on, starting with the current meta. */
  subscribe(options: SubscribeOptions = {}): FragmentSubscription {
    const sub = new FragmentSubscription(
      this,
      this.#meta,
      this.#metaVersion,
      options.capacity ?? this.#capacity,
      options.maxBytes ?? this.#maxBytes,
    );
    if (this.#closed) sub._end();
    else this.#subscribers.add(sub);
    return sub;
  }

  /** Ends the stream: subscribers drain what is queued, then read `undefined`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const sub of this.#subscribers) sub._end();
    this.#subscribers.clear();
    this.#metaListeners.clear();
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    for (const listener of listeners) {
      try {
        listener();
      } catch {
        // A listener's failure must not reach the producer.
      }
    }
  }

  /** @internal */
  _detach(sub: FragmentSubscription): void {
    this.#subscribers.delete(sub);
  }

  /** @internal */
  _countLag(count: number): void {
    this.#laggedSkips += count;
    this.#onLaggedSkip?.(count, this.trackId);
  }
}
