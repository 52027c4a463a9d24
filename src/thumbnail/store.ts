/**
 * `ThumbnailStore`: the newest source keyframe of every ingest broadcast as a small JPEG, rendered
 * on request and at most once per `refreshMs` per broadcast and width.
 *
 * Two sources of pictures, newest first:
 * - the ladder's keyframe tap (`offerFrame`): the ladder decodes every source once anyway and hands
 *   a clone of a source keyframe at most once a second; the store keeps the newest one (one
 *   decoded frame per broadcast) until a newer one replaces it;
 * - the newest keyframe sample of the source's video track (watched here for every ingest
 *   broadcast; one sample per broadcast is kept), decoded on request by a short-lived decoder when
 *   no tapped frame is as recent (no ladder, a source the ladder refuses or has paused).
 *
 * Concurrent requests for one broadcast and width share one render. Per broadcast the store keeps
 * the JPEGs of the last few widths asked for (at most `MAX_WIDTHS`) with their times, and drops
 * everything when the broadcast leaves the registry.
 */

import { describeInit, readSamples } from '../container/index.ts';
import { errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import { VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { FragmentSubscription } from '../fragment/subscription.ts';
import type { VideoFramePort, WebCodecs } from '../webcodecs/index.ts';
import { decodeKeyframe, type KeyframeSample } from './decode-keyframe.ts';
import { encodeJpeg } from './jpeg.ts';
import { type I420, i420ToRgba, readI420, thumbnailSize } from './picture.ts';

/** A rendered thumbnail. */
export type Thumbnail = {
  jpeg: Uint8Array;
  width: number;
  height: number;
  /** When it was rendered (the store's clock, ms). */
  renderedAtMs: number;
};

/** What a request gets: a thumbnail, or why there is none. */
export type ThumbnailAnswer = { thumbnail: Thumbnail } | { missing: string };

/** Per-broadcast figures for the API. */
export type ThumbnailStatus = {
  broadcast: string;
  renders: number;
  /** Where the last render's picture came from. */
  lastSource: 'ladder' | 'decoder' | undefined;
  lastRenderMs: number | undefined;
  lastError: string | undefined;
};

/** Options of a `ThumbnailStore`. */
export type ThumbnailStoreOptions = {
  registry: FragmentBroadcasterRegistry;
  /** WebCodecs for decoding keyframes on request (loaded on first need); absent: tapped frames only. */
  webcodecs?: (() => Promise<WebCodecs | undefined>) | undefined;
  logger?: Logger;
  /** Least time between two renders of one broadcast and width (default 1000 ms). */
  refreshMs?: number;
  now?: () => number;
};

/** Widths whose JPEGs are kept per broadcast. */
const MAX_WIDTHS = 4;
/** A tapped frame this much older than the newest source keyframe is passed over for a decode. */
const TAP_STALE_MS = 3000;

type Entry = {
  /**
   * The newest tapped keyframe's pixels, copied: a decoded frame kept for seconds would hold a
   * buffer of its decoder's picture pool until a full collection (see RungTranscoder.renewFrameHandles).
   */
  tapped: { picture: Promise<I420>; atMs: number } | undefined;
  keyframe: (KeyframeSample & { atMs: number }) | undefined;
  /** The init the keyframe's decoder settings come from. */
  init: { segment: Uint8Array; track: Omit<KeyframeSample, 'data'> | undefined } | undefined;
  rendered: Map<number, Thumbnail & { pictureAtMs: number }>;
  inflight: Map<number, Promise<ThumbnailAnswer>>;
  subscription: FragmentSubscription | undefined;
  status: ThumbnailStatus;
};

/** Whether `frame` is a WebCodecs frame whose pixels can be read. */
function hasPixels(frame: { close(): void }): frame is VideoFramePort {
  const f = frame as Partial<VideoFramePort>;
  return typeof f.copyTo === 'function' && typeof f.allocationSize === 'function' && typeof f.clone === 'function';
}

/** Keeps and renders the thumbnails of every ingest broadcast of a registry. */
export class ThumbnailStore {
  readonly #entries = new Map<string, Entry>();
  readonly #logger: Logger;
  readonly #refreshMs: number;
  readonly #now: () => number;
  readonly #loadCodecs: (() => Promise<WebCodecs | undefined>) | undefined;
  #codecs: Promise<WebCodecs | undefined> | undefined;
  readonly #off: Array<() => void>;

  /** Watches every ingest video track of `options.registry`. */
  constructor(options: ThumbnailStoreOptions) {
    this.#logger = options.logger ?? silentLogger;
    this.#refreshMs = options.refreshMs ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#loadCodecs = options.webcodecs;
    const { registry } = options;
    this.#off = [
      registry.onEntryCreated((broadcast, track, broadcaster) => {
        if (track !== VIDEO_TRACK || broadcaster.origin.kind !== 'ingest') return;
        this.#drop(broadcast);
        const entry = this.#newEntry(broadcast);
        this.#entries.set(broadcast, entry);
        entry.subscription = broadcaster.subscribe();
        void this.#watch(entry, entry.subscription);
      }),
      registry.onEntryRemoved((broadcast, track, broadcaster) => {
        if (track !== VIDEO_TRACK || broadcaster.origin.kind !== 'ingest') return;
        this.#drop(broadcast);
      }),
    ];
  }

  /**
   * Takes a decoded source keyframe of `broadcast` (the store owns and closes it). Frames without
   * readable pixels (codec test doubles) are closed and ignored.
   */
  offerFrame(broadcast: string, frame: { close(): void }): void {
    const entry = this.#entries.get(broadcast);
    if (entry === undefined || !hasPixels(frame)) {
      frame.close();
      return;
    }
    const picture = readI420(frame).finally(() => frame.close());
    // A frame the copy fails on is reported when a thumbnail is asked of it.
    picture.catch(() => {});
    entry.tapped = { picture, atMs: this.#now() };
  }

  /** The thumbnail of `broadcast` at `width` (see `thumbnailSize`), or why there is none. */
  thumbnail(broadcast: string, width: number): Promise<ThumbnailAnswer> {
    const entry = this.#entries.get(broadcast);
    if (entry === undefined) return Promise.resolve({ missing: `no broadcast ${broadcast}` });
    const newest = Math.max(entry.tapped?.atMs ?? -Infinity, entry.keyframe?.atMs ?? -Infinity);
    if (newest === -Infinity) return Promise.resolve({ missing: `no keyframe of ${broadcast} yet` });
    const cached = entry.rendered.get(width);
    if (cached !== undefined && (cached.pictureAtMs >= newest || this.#now() - cached.renderedAtMs < this.#refreshMs)) {
      return Promise.resolve({ thumbnail: cached });
    }
    let pending = entry.inflight.get(width);
    if (pending === undefined) {
      pending = this.#render(entry, width).finally(() => entry.inflight.delete(width));
      entry.inflight.set(width, pending);
    }
    return pending;
  }

  /** Render figures per broadcast. */
  status(): ThumbnailStatus[] {
    return [...this.#entries.values()].map((e) => ({ ...e.status }));
  }

  /** Stops watching and frees every frame (idempotent). */
  close(): void {
    for (const off of this.#off.splice(0)) off();
    for (const broadcast of [...this.#entries.keys()]) this.#drop(broadcast);
  }

  #newEntry(broadcast: string): Entry {
    return {
      tapped: undefined,
      keyframe: undefined,
      init: undefined,
      rendered: new Map(),
      inflight: new Map(),
      subscription: undefined,
      status: { broadcast, renders: 0, lastSource: undefined, lastRenderMs: undefined, lastError: undefined },
    };
  }

  #drop(broadcast: string): void {
    const entry = this.#entries.get(broadcast);
    if (entry === undefined) return;
    this.#entries.delete(broadcast);
    entry.subscription?.close();
    entry.tapped = undefined;
    entry.keyframe = undefined;
    entry.rendered.clear();
  }

  /** Keeps the first sample of every keyframe fragment of the source, with its decoder settings. */
  async #watch(entry: Entry, subscription: FragmentSubscription): Promise<void> {
    try {
      for await (const fragment of subscription) {
        if (!fragment.flags.keyframe) continue;
        const meta = subscription.meta;
        if (meta.initSegment === undefined) continue;
        if (entry.init?.segment !== meta.initSegment) {
          const video = describeInit(meta.initSegment).find((t) => t.kind === 'video');
          const track =
            video?.description === undefined
              ? undefined
              : {
                  codec: video.codec,
                  description: video.description,
                  width: video.width ?? 0,
                  height: video.height ?? 0,
                };
          entry.init = { segment: meta.initSegment, track };
        }
        const first = readSamples(fragment.payload)[0];
        if (entry.init.track === undefined || first === undefined || !first.keyframe) continue;
        entry.keyframe = { ...entry.init.track, data: first.data.slice(), atMs: this.#now() };
      }
    } catch (error) {
      this.#logger.warn('thumbnail: source watch ended', {
        broadcast: entry.status.broadcast,
        error: errorMessage(error),
      });
    }
  }

  async #render(entry: Entry, width: number): Promise<ThumbnailAnswer> {
    const { tapped, keyframe, status } = entry;
    const useTap = tapped !== undefined && (keyframe === undefined || tapped.atMs + TAP_STALE_MS >= keyframe.atMs);
    const pictureAtMs = (useTap ? tapped?.atMs : keyframe?.atMs) ?? 0;
    const stale = entry.rendered.get(width);
    try {
      let thumbnail: Thumbnail;
      if (useTap) {
        thumbnail = await this.#encodePicture(await tapped.picture, width);
      } else {
        const codecs = await this.#webcodecs();
        if (codecs === undefined || keyframe === undefined) {
          return stale === undefined ? { missing: 'no decoder for thumbnails here' } : { thumbnail: stale };
        }
        thumbnail = await decodeKeyframe(codecs, keyframe, (frame) => this.#encode(frame, width));
      }
      status.renders += 1;
      status.lastSource = useTap ? 'ladder' : 'decoder';
      status.lastRenderMs = thumbnail.renderedAtMs;
      status.lastError = undefined;
      entry.rendered.delete(width);
      entry.rendered.set(width, { ...thumbnail, pictureAtMs });
      while (entry.rendered.size > MAX_WIDTHS) entry.rendered.delete(entry.rendered.keys().next().value!);
      return { thumbnail };
    } catch (error) {
      status.lastError = errorMessage(error);
      this.#logger.warn('thumbnail render failed', { broadcast: status.broadcast, error: status.lastError });
      return stale === undefined ? { missing: `thumbnail failed: ${status.lastError}` } : { thumbnail: stale };
    }
  }

  async #encode(frame: VideoFramePort, requested: number): Promise<Thumbnail> {
    return this.#encodePicture(await readI420(frame), requested);
  }

  async #encodePicture(picture: I420, requested: number): Promise<Thumbnail> {
    const { width, height } = thumbnailSize(picture.width, picture.height, requested);
    const jpeg = await encodeJpeg(i420ToRgba(picture, width, height));
    return { jpeg, width, height, renderedAtMs: this.#now() };
  }

  #webcodecs(): Promise<WebCodecs | undefined> {
    this.#codecs ??= (this.#loadCodecs?.() ?? Promise.resolve(undefined)).catch((error: unknown) => {
      this.#logger.warn('thumbnail: no decoder', { error: errorMessage(error) });
      return undefined;
    });
    return this.#codecs;
  }
}
