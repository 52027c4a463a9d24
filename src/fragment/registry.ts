/**
 * `FragmentBroadcasterRegistry`: the meeting point of ingest, transcode and HLS. One broadcaster
 * per (broadcast, track); callbacks announce created and removed entries synchronously.
 */

import { errorMessage } from '../core/errors.ts';
import {
  type BroadcasterOptions,
  type BroadcastOrigin,
  FragmentBroadcaster,
  type FragmentSubscription,
  type SubscribeOptions,
  type TrackNumbering,
} from './broadcaster.ts';
import type { FragmentMeta } from './fragment.ts';

/** Called with the entry's key and broadcaster. */
export type EntryCallback = (broadcast: string, track: string, broadcaster: FragmentBroadcaster) => void;

/** Options of a registry. */
export type RegistryOptions = {
  /** Defaults for every broadcaster the registry creates. */
  broadcaster?: Omit<BroadcasterOptions, 'origin'>;
  /** Receives errors thrown by entry callbacks (they never reach the caller of getOrCreate/remove). */
  onCallbackError?: (error: unknown, broadcast: string, track: string) => void;
};

/** Options of `getOrCreate`, used only when the entry is new. */
export type GetOrCreateOptions = {
  /** Who produces the track (transcoder outputs are tagged so they are never re-transcoded). */
  origin?: BroadcastOrigin;
  /** Where a packager's numbering of the track starts (a track mirrored mid-stream). */
  numbering?: TrackNumbering;
};

function keyOf(broadcast: string, track: string): string {
  return `${broadcast}\u0000${track}`;
}

/** Map of (broadcast, track) to broadcaster with created/removed callbacks. */
export class FragmentBroadcasterRegistry {
  readonly #entries = new Map<string, { broadcast: string; track: string; broadcaster: FragmentBroadcaster }>();
  readonly #created: EntryCallback[] = [];
  readonly #removed: EntryCallback[] = [];
  readonly #options: RegistryOptions;

  /** Creates an empty registry. */
  constructor(options: RegistryOptions = {}) {
    this.#options = options;
  }

  /**
   * Returns the broadcaster for (broadcast, track), creating it with `meta` if absent. Created
   * callbacks run synchronously, once per fresh key, before this returns; they may re-enter.
   */
  getOrCreate(
    broadcast: string,
    track: string,
    meta: FragmentMeta,
    options: GetOrCreateOptions = {},
  ): FragmentBroadcaster {
    const key = keyOf(broadcast, track);
    const existing = this.#entries.get(key);
    if (existing !== undefined) return existing.broadcaster;
    const broadcaster = new FragmentBroadcaster(track, meta, {
      ...this.#options.broadcaster,
      ...(options.origin === undefined ? {} : { origin: options.origin }),
      ...(options.numbering === undefined ? {} : { numbering: options.numbering }),
    });
    this.#entries.set(key, { broadcast, track, broadcaster });
    this.#fire(this.#created, broadcast, track, broadcaster);
    return broadcaster;
  }

  /** The broadcaster for (broadcast, track), or undefined. */
  get(broadcast: string, track: string): FragmentBroadcaster | undefined {
    return this.#entries.get(keyOf(broadcast, track))?.broadcaster;
  }

  /** Subscribes to (broadcast, track), or undefined if there is no such entry. */
  subscribe(broadcast: string, track: string, options?: SubscribeOptions): FragmentSubscription | undefined {
    return this.get(broadcast, track)?.subscribe(options);
  }

  /**
   * Removes the entry, closes its broadcaster (subscribers drain, then end) and runs the removed
   * callbacks. Returns the removed broadcaster, or undefined if there was none.
   */
  remove(broadcast: string, track: string): FragmentBroadcaster | undefined {
    const key = keyOf(broadcast, track);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    entry.broadcaster.close();
    this.#fire(this.#removed, broadcast, track, entry.broadcaster);
    return entry.broadcaster;
  }

  /** Every (broadcast, track) key, in creation order. */
  keys(): Array<[broadcast: string, track: string]> {
    return [...this.#entries.values()].map((e) => [e.broadcast, e.track]);
  }

  /** Every entry with its broadcaster, in creation order. */
  entries(): Array<{ broadcast: string; track: string; broadcaster: FragmentBroadcaster }> {
    return [...this.#entries.values()];
  }

  /** Payload bytes queued for every subscriber of every entry. */
  queuedBytes(): number {
    let bytes = 0;
    for (const e of this.#entries.values()) bytes += e.broadcaster.queuedBytes;
    return bytes;
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  /** Runs `callback` for every entry created from now on; returns the unsubscribe function. */
  onEntryCreated(callback: EntryCallback): () => void {
    return this.#register(this.#created, callback);
  }

  /** Runs `callback` for every entry removed from now on; returns the unsubscribe function. */
  onEntryRemoved(callback: EntryCallback): () => void {
    return this.#register(this.#removed, callback);
  }

  #register(list: EntryCallback[], callback: EntryCallback): () => void {
    list.push(callback);
    return () => {
      const index = list.indexOf(callback);
      if (index !== -1) list.splice(index, 1);
    };
  }

  #fire(list: EntryCallback[], broadcast: string, track: string, broadcaster: FragmentBroadcaster): void {
    for (const callback of [...list]) {
      try {
        callback(broadcast, track, broadcaster);
      } catch (error) {
        if (this.#options.onCallbackError !== undefined) this.#options.onCallbackError(error, broadcast, track);
        else console.warn(`registry callback failed for ${broadcast}/${track}: ${errorMessage(error)}`);
      }
    }
  }
}
