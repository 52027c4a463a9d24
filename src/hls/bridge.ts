/**
 * `HlsBridge`: consumes every broadcast of a `FragmentBroadcasterRegistry` (sources and rungs) and
 * serves them as LL-HLS through `handle(path, query, signal)`, a framework-free request handler.
 * It validates the options and composes the pieces: the broadcast table (consuming), the init
 * descriptions, the master builder and the responder (serving).
 */

import { describeInit as containerDescribeInit } from '../container/index.ts';
import { argumentError, errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import { AUDIO_TRACK, VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { BroadcastTable, type HlsTrack } from './broadcast-table.ts';
import { type InitDescriber, InitDescriptions } from './init-description.ts';
import { MasterBuilder } from './master.ts';
import { PlaybackAccess } from './playback-access.ts';
import { Responder } from './responder.ts';
import { errorResponse, type HlsResponse, parseHlsFile, splitHlsPath } from './routes.ts';
import { RetainedBytes, type TrackKind } from './track-media.ts';

/** Options of an `HlsBridge`. */
export type HlsBridgeOptions = {
  registry: FragmentBroadcasterRegistry;
  /** Segment target (`--hls-target-duration`), ms. Default 2000. */
  targetDurationMs?: number;
  /** Part target (`--hls-part-target`), ms. Default 200. */
  partTargetMs?: number;
  /** Sliding window (`--hls-dvr-window`), ms. Default 120000. */
  dvrWindowMs?: number;
  /** How long a blocking request is held before 503, ms. Default three advertised target durations (RFC 8216bis 6.2.5.2). */
  blockingTimeoutMs?: number;
  /** How long an ended broadcast stays served (ENDLIST) before it is freed, ms. Default 30000. */
  lingerMs?: number;
  /** Reads init segments for CODECS / RESOLUTION / FRAME-RATE. Default: the container's `describeInit`. */
  describeInit?: InitDescriber;
  /** Declared BANDWIDTH of source variants (`--source-bandwidth-kbps`), instead of the measured peak. */
  sourceBandwidthKbps?: number;
  /**
   * A rung the overload policy paused: left out of the master playlist, and its playlist lists GAP
   * segments after its source's.
   */
  isRungHidden?: (source: string, rendition: string) => boolean;
  /** A rung whose encoder failed and has not recovered: left out of the master playlist only. */
  isRungFailed?: (source: string, rendition: string) => boolean;
  /**
   * The audio rendition (an audio-only rung of the same source, e.g. `audio-aac-64k`) a video
   * rung's variant references in the master; the source's audio when it returns undefined or that
   * rendition has no playable segment yet. Opus renditions are listed as their own variants.
   */
  rungAudio?: (source: string, rendition: string) => string | undefined;
  metrics?: LvqrMetrics;
  logger?: Logger;
  /**
   * Secret of playback tokens (`--playback-secret`): every request then needs `?exp=&sig=` signed
   * for its source broadcast, and playlists carry the token on every URI (see `playbackToken`).
   */
  playbackSecret?: string;
  /** Wall clock, ms. Default `Date.now`. */
  now?: () => number;
};

/** One track in `broadcasts()`. */
export type HlsTrackSummary = {
  readonly track: string;
  readonly kind: TrackKind;
  readonly codec: string | undefined;
  readonly width: number | undefined;
  readonly height: number | undefined;
  readonly frameRate: number | undefined;
  /** Measured average bitrate (AVERAGE-BANDWIDTH), bits/s. */
  readonly bitrateBps: number;
  /** Measured peak segment bitrate (BANDWIDTH), bits/s. */
  readonly peakBitrateBps: number;
  /** True while no segment is complete (figures estimated from parts). */
  readonly bitrateEstimated: boolean;
  /** Complete segments listed in the playlist. */
  readonly segments: number;
  readonly mediaSequence: number;
  readonly lastMsn: number | undefined;
  readonly lastPart: number | undefined;
  readonly discontinuitySequence: number;
  /** The current init's id (`init-<id>.mp4`, a hash of its bytes: init-id.ts). */
  readonly initVersion: number | undefined;
  readonly ended: boolean;
  /** Fragments appended, dropped (before an init / keyframe), lag gaps seen. */
  readonly fragments: number;
  readonly droppedFragments: number;
  /** Audio fragments of a mirrored track waiting for its video's media to reach them. */
  readonly heldFragments: number;
  readonly lagGaps: number;
  /** Blocking requests held on this playlist now. */
  readonly heldRequests: number;
  /** Media bytes this track's window holds (its DVR window, the grace after it, the open segment, inits). */
  readonly retainedBytes: number;
};

/** One broadcast in `broadcasts()` (JSON-able, for `/api/v1/broadcasts`). */
export type HlsBroadcastSummary = {
  readonly name: string;
  readonly origin: 'ingest' | 'rendition';
  readonly source: string | undefined;
  readonly rendition: string | undefined;
  /** Every track ended (playlists carry EXT-X-ENDLIST until the broadcast is freed). */
  readonly ended: boolean;
  /** Listed in its source's master playlist right now. */
  readonly inMaster: boolean;
  readonly targetDurationS: number;
  readonly partTargetS: number;
  readonly tracks: readonly HlsTrackSummary[];
};

const TRACK_ID: Record<TrackKind, string> = { video: VIDEO_TRACK, audio: AUDIO_TRACK };

function retainedOf(window: HlsTrack['window']): number {
  const tally = new RetainedBytes();
  window.tallyBytes(tally);
  return tally.bytes;
}

/** LL-HLS packager over a registry: playlists, segments and parts for every broadcast and rung. */
export class HlsBridge {
  readonly #registry: FragmentBroadcasterRegistry;
  readonly #logger: Logger;
  readonly #table: BroadcastTable;
  readonly #descriptions: InitDescriptions;
  readonly #master: MasterBuilder;
  readonly #responder: Responder;
  readonly #access: PlaybackAccess | undefined;
  #offCreated: (() => void) | undefined;
  #started = false;
  #closed = false;

  /** A bridge over `options.registry`; call `start()` to begin consuming. */
  constructor(options: HlsBridgeOptions) {
    const targetMs = options.targetDurationMs ?? 2000;
    const partTargetMs = options.partTargetMs ?? 200;
    const dvrMs = options.dvrWindowMs ?? 120_000;
    if (!(targetMs > 0)) throw argumentError('targetDurationMs', 'a positive number', targetMs);
    if (!(partTargetMs > 0 && partTargetMs <= targetMs)) {
      throw argumentError('partTargetMs', `a positive number <= targetDurationMs (${targetMs})`, partTargetMs);
    }
    if (!(dvrMs >= targetMs)) throw argumentError('dvrWindowMs', `a number >= targetDurationMs (${targetMs})`, dvrMs);
    const blockingMs = options.blockingTimeoutMs;
    if (blockingMs !== undefined && !(blockingMs > 0)) {
      throw argumentError('blockingTimeoutMs', 'a positive number', blockingMs);
    }
    const lingerMs = options.lingerMs ?? 30_000;
    if (!(lingerMs >= 0)) throw argumentError('lingerMs', 'a number >= 0', lingerMs);
    const kbps = options.sourceBandwidthKbps;
    if (kbps !== undefined && !(kbps > 0)) throw argumentError('sourceBandwidthKbps', 'a positive number', kbps);
    const secret = options.playbackSecret;
    if (secret !== undefined && secret === '') throw argumentError('playbackSecret', 'a non-empty string', secret);
    this.#access = secret === undefined ? undefined : new PlaybackAccess(secret, options.now);
    this.#registry = options.registry;
    const logger = options.logger ?? silentLogger;
    this.#logger = logger;
    const descriptions = new InitDescriptions(options.describeInit ?? containerDescribeInit, logger);
    this.#descriptions = descriptions;
    const table = new BroadcastTable({
      targetDurationMs: targetMs,
      partTargetMs,
      dvrWindowMs: dvrMs,
      lingerMs,
      now: options.now ?? Date.now,
      logger,
      isRungPaused: options.isRungHidden ?? (() => false),
    });
    this.#table = table;
    const master = new MasterBuilder({
      broadcasts: table,
      describer: descriptions,
      sourceBandwidthBps: kbps === undefined ? undefined : kbps * 1000,
      isRungHidden: (source, rendition) =>
        (options.isRungHidden?.(source, rendition) ?? false) || (options.isRungFailed?.(source, rendition) ?? false),
      rungAudio: options.rungAudio ?? (() => undefined),
      logger,
    });
    this.#master = master;
    this.#responder = new Responder({
      timing: (b) => table.groupOf(b),
      master: (b) => master.render(b),
      reports: (b) => master.reports(b),
      blockingTimeoutMs: blockingMs,
      metrics: options.metrics,
      isClosed: () => this.#closed,
    });
  }

  /** Subscribes to every existing and future `0.mp4` / `1.mp4` entry of the registry. Idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#offCreated = this.#registry.onEntryCreated((broadcast, track, broadcaster) =>
      this.#table.attach(broadcast, track, broadcaster),
    );
    for (const entry of this.#registry.entries()) this.#table.attach(entry.broadcast, entry.track, entry.broadcaster);
  }

  /** Stops consuming, frees every broadcast and answers held requests (503). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#offCreated?.();
    this.#offCreated = undefined;
    this.#table.close();
  }

  /**
   * Answers `GET /hls/<broadcast>/<file>` (the `/hls/` prefix is optional). Blocking playlist
   * requests (`_HLS_msn`, `_HLS_part`) and requests for the next part are held until the media
   * exists, `blockingTimeoutMs` passes (503) or `signal` aborts (499). With a playback secret the
   * token is checked first (401 / 400 / 403) and playlists carry it on every URI. Never throws.
   */
  handle(path: string, query?: URLSearchParams, signal?: AbortSignal): Promise<HlsResponse> {
    const access = this.#access;
    if (access === undefined) return this.#serve(path, query, signal);
    const split = splitHlsPath(path);
    if (split === undefined) return this.#serve(path, query, signal);
    return access
      .authorize(split.broadcast, this.#table.get(split.broadcast), query)
      .then((token) =>
        typeof token === 'string'
          ? this.#serve(path, query, signal).then((response) => access.sign(response, token))
          : token,
      )
      .catch((error: unknown) => this.#failed(path, error));
  }

  /**
   * The playback-token check of `handle` alone, for files served beside the HLS layer (thumbnails):
   * `undefined` when the request may be answered, else the 401 / 400 / 403 answer. Never throws.
   */
  async authorize(path: string, query?: URLSearchParams): Promise<HlsResponse | undefined> {
    const access = this.#access;
    const split = splitHlsPath(path);
    if (access === undefined || split === undefined) return undefined;
    try {
      const token = await access.authorize(split.broadcast, this.#table.get(split.broadcast), query);
      return typeof token === 'string' ? undefined : token;
    } catch (error) {
      return this.#failed(path, error);
    }
  }

  #serve(path: string, query: URLSearchParams | undefined, signal: AbortSignal | undefined): Promise<HlsResponse> {
    try {
      const split = splitHlsPath(path);
      const file = split === undefined ? undefined : parseHlsFile(split.file);
      const b = split === undefined ? undefined : this.#table.get(split.broadcast);
      if (split === undefined || file === undefined || b === undefined) {
        let message = `no HLS resource at ${path}`;
        if (split !== undefined)
          message = b === undefined ? `no broadcast '${split.broadcast}'` : `no file '${split.file}'`;
        return Promise.resolve(errorResponse('hls.not_found', message));
      }
      // A held request resolves through one continuation: no async frames between its waiter and the caller.
      const response = this.#responder.serve(b, file, query, signal);
      return response instanceof Promise
        ? response.catch((error: unknown) => this.#failed(path, error))
        : Promise.resolve(response);
    } catch (error) {
      return Promise.resolve(this.#failed(path, error));
    }
  }

  #failed(path: string, error: unknown): HlsResponse {
    this.#logger.error('hls request failed', { path, error: errorMessage(error) });
    return errorResponse('hls.unavailable', 'internal error');
  }

  /** The media bytes every window holds, and the memory blocks behind them (`RetainedBytes`). */
  retainedBytes(): { bytes: number; bufferBytes: number } {
    const tally = new RetainedBytes();
    for (const b of this.#table.values()) for (const t of b.tracks.values()) t.window.tallyBytes(tally);
    return { bytes: tally.bytes, bufferBytes: tally.bufferBytes };
  }

  /** Per-broadcast figures for `/api/v1/broadcasts`, sources first then rungs, by name. */
  broadcasts(): HlsBroadcastSummary[] {
    const out: HlsBroadcastSummary[] = [];
    for (const b of this.#table.values()) {
      const group = this.#table.groupOf(b);
      const tracks: HlsTrackSummary[] = [];
      for (const kind of ['video', 'audio'] as const) {
        const t = b.tracks.get(kind);
        if (t !== undefined) tracks.push(this.#trackSummary(t));
      }
      const origin = b.origin;
      out.push({
        name: b.name,
        origin: origin.kind,
        source: origin.kind === 'rendition' ? origin.source : undefined,
        rendition: origin.kind === 'rendition' ? origin.rendition : undefined,
        ended: this.#table.isEnded(b.name),
        inMaster: this.#master.listed(b),
        targetDurationS: group.targetDurationS,
        partTargetS: group.partTargetS,
        tracks,
      });
    }
    return out.sort((a, b) =>
      a.origin === b.origin ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.origin === 'ingest' ? -1 : 1,
    );
  }

  #trackSummary(t: HlsTrack): HlsTrackSummary {
    const w = t.window;
    const init = w.init;
    const description = init === undefined ? undefined : this.#descriptions.describe(init, t.kind);
    const rate = w.bitrate();
    const listing = w.listing();
    const latest = w.latestPart();
    const counters = w.counters;
    return {
      track: TRACK_ID[t.kind],
      kind: t.kind,
      codec: description?.codec,
      width: description?.width,
      height: description?.height,
      frameRate: t.kind === 'video' && init !== undefined ? this.#descriptions.frameRate(init) : undefined,
      bitrateBps: Math.round(rate.averageBps),
      peakBitrateBps: Math.round(rate.peakBps),
      bitrateEstimated: rate.estimated,
      segments: listing.segments.length,
      mediaSequence: listing.mediaSequence,
      lastMsn: latest?.msn,
      lastPart: latest?.index,
      discontinuitySequence: listing.discontinuitySequence,
      initVersion: init?.version,
      ended: w.ended,
      fragments: counters.fragments,
      droppedFragments: counters.dropped,
      heldFragments: counters.held,
      lagGaps: counters.gaps,
      heldRequests: w.waiterCount,
      retainedBytes: retainedOf(w),
    };
  }
}
