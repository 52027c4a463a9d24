/**
 * `FragmentBroadcaster`: single-producer, multi-subscriber fan-out of `Fragment`s for one
 * (broadcast, track). `emit` never blocks or awaits; each subscriber has its own bounded queue.
 */

import { argumentError } from '../core/errors.ts';
import type { Fragment, FragmentMeta } from './fragment.ts';
import { FragmentSubscription, type MetaChange, type SubscriptionHooks } from './subscription.ts';

export { FragmentSubscription } from './subscription.ts';

/** Default per-subscriber queue bound in fragments (as LVQR's ring buffer). */
export const DEFAULT_SUBSCRIBER_CAPACITY = 1024;
/** Default per-subscriber queue bound in payload bytes. */
export const DEFAULT_SUBSCRIBER_MAX_BYTES = 64 * 1024 * 1024;

/** What produced a broadcaster's fragments: a publisher, or a transcoder output (never re-transcoded). */
export type BroadcastOrigin = (
  | { readonly kind: 'ingest' }
  | { readonly kind: 'rendition'; readonly source: string; readonly rendition: string; readonly transcoder: string }
) & {
  /** Set on a track mirrored from another node of a cluster: the node that produces it. */
  readonly mirroredFrom?: string;
};

/**
 * Where an LL-HLS packager's numbering of a track starts, when the track began before this process
 * saw it (a cluster edge mirroring a broadcast): its first segment's media sequence number and
 * discontinuity sequence (and, when the producer sent it, where its timeline's PROGRAM-DATE-TIMEs
 * are counted from: a date in ms at a media time in seconds), or `leader` for a track that takes its
 * leader's (audio: its video; a rung: its source) and starts at one of its leader's segment
 * boundaries.
 */
export type TrackNumbering =
  | {
      readonly msn: number;
      readonly discontinuitySequence: number;
      readonly dateAnchor?: { readonly dateMs: number; readonly timeS: number };
    }
  | 'leader';

/** Options of a broadcaster. */
export type BroadcasterOptions = {
  /** Per-subscriber queue bound in fragments. */
  capacity?: number;
  /** Per-subscriber queue bound in payload bytes. */
  maxBytes?: number;
  /** Tag of who produces this track; defaults to ingest. */
  origin?: BroadcastOrigin;
  /** Where a packager's numbering starts; undefined: at 0 with the track's first media. */
  numbering?: TrackNumbering;
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

/** Single-producer, multi-subscriber fan-out for one (broadcast, track). */
export class FragmentBroadcaster {
  readonly trackId: string;
  readonly origin: BroadcastOrigin;
  /** Where a packager's numbering of this track starts (undefined: at 0). */
  readonly numbering: TrackNumbering | undefined;
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
  #withdrawn = false;

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
    this.numbering = options.numbering;
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

  /** Payload bytes queued for its subscribers, summed. */
  get queuedBytes(): number {
    let bytes = 0;
    for (const sub of this.#subscribers) bytes += sub.queuedBytes;
    return bytes;
  }

  /** Live subscribers. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True after `withdraw()`: consumers drop what they kept of this stream instead of ending it. */
  get withdrawn(): boolean {
    return this.#withdrawn;
  }

  /** Sends `fragment` to every subscriber without waiting; returns how many queued it. */
  emit(fragment: Fragment): number {
    if (this.#closed) return 0;
    this.#emitted += 1;
    this.#emittedBytes += fragment.payload.byteLength;
    this.#lastEmitMs = Date.now();
    let reached = 0;
    for (const sub of this.#subscribers) {
      if (sub.push(fragment)) reached += 1;
    }
    return reached;
  }

  /** Replaces the meta; subscribers see it in stream order and listeners are told at once. */
  setMeta(meta: FragmentMeta): void {
    if (this.#closed) return;
    this.#meta = meta;
    this.#metaVersion += 1;
    const change: MetaChange = { meta, version: this.#metaVersion };
    for (const sub of this.#subscribers) sub.pushMeta(change);
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
      this.#hooks,
      this.#meta,
      this.#metaVersion,
      options.capacity ?? this.#capacity,
      options.maxBytes ?? this.#maxBytes,
    );
    if (this.#closed) sub.end();
    else this.#subscribers.add(sub);
    return sub;
  }

  /** Ends the stream: subscribers drain what is queued, then read `undefined`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const sub of this.#subscribers) sub.end();
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

  /**
   * Ends the stream as `close()` does, and withdraws it: what was emitted is not to be kept or
   * served (a rung the bypass rule leaves to its source). No-op once closed.
   */
  withdraw(): void {
    if (this.#closed) return;
    this.#withdrawn = true;
    this.close();
  }

  /** What every subscription tells this broadcaster. */
  readonly #hooks: SubscriptionHooks = {
    onClose: (sub) => {
      this.#subscribers.delete(sub);
    },
    onLag: (count) => {
      this.#laggedSkips += count;
      this.#onLaggedSkip?.(count, this.trackId);
    },
  };
}
