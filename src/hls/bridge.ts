/**
 * `HlsBridge`: consumes every broadcast of a `FragmentBroadcasterRegistry` (sources and rungs) and
 * serves them as LL-HLS through `handle(path, query, signal)`, a framework-free request handler.
 */

import { describeInit as containerDescribeInit, readSamples } from '../container/index.ts';
import { argumentError, errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { BroadcastOrigin, FragmentBroadcaster, FragmentSubscription } from '../fragment/broadcaster.ts';
import { AUDIO_TRACK, type Fragment, VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { type MasterVariant, type RenditionReport, renderMasterPlaylist, renderMediaPlaylist } from './playlist.ts';
import {
  errorResponse,
  type HlsFile,
  type HlsResponse,
  mediaResponse,
  parseHlsFile,
  playlistResponse,
  relativeUri,
  splitHlsPath,
} from './routes.ts';
import { type GroupTiming, type InitVersion, type TrackCursor, type TrackKind, TrackWindow } from './window.ts';

/** One track as an init segment describes it (the fields of the container's `TrackInfo` used here). */
export type InitTrackDescription = {
  readonly kind: string;
  readonly codec: string;
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  readonly frameRate?: number | undefined;
};

/** Reads an init segment: the container's `describeInit` (an array) or any stand-in returning `{ tracks }`. */
export type InitDescriber = (
  init: Uint8Array,
) => readonly InitTrackDescription[] | { readonly tracks: readonly InitTrackDescription[] };

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
  /** A rung for which this returns true is left out of the master playlist (overload policy). */
  isRungHidden?: (source: string, rendition: string) => boolean;
  metrics?: LvqrMetrics;
  logger?: Logger;
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
  readonly initVersion: number | undefined;
  readonly ended: boolean;
  /** Fragments appended, dropped (before an init / keyframe), lag gaps seen. */
  readonly fragments: number;
  readonly droppedFragments: number;
  readonly lagGaps: number;
  /** Blocking requests held on this playlist now. */
  readonly heldRequests: number;
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

type TrackState = {
  readonly kind: TrackKind;
  readonly window: TrackWindow;
  readonly subs: Set<FragmentSubscription>;
  /** Id of the newest subscription; older ones drain first, then hand over. */
  session: number;
  /** Drains of this track, chained in creation order. */
  chain: Promise<void>;
};

type BroadcastState = {
  readonly name: string;
  origin: BroadcastOrigin;
  readonly tracks: Map<TrackKind, TrackState>;
  linger: ReturnType<typeof setTimeout> | undefined;
};

type Description = {
  codec: string;
  width: number | undefined;
  height: number | undefined;
  frameRate: number | undefined;
};

type FrameRateProbe = { durations: number[]; done: boolean };

/** Timing shared by a source and its rungs. */
class Group implements GroupTiming {
  targetDurationS: number;
  partTargetS: number;
  version = 0;

  constructor(targetDurationMs: number, partTargetMs: number) {
    this.targetDurationS = Math.max(1, Math.ceil(targetDurationMs / 1000 - 0.001));
    this.partTargetS = partTargetMs / 1000;
  }

  observeSegment(durationS: number): void {
    // RFC 8216 4.3.3.1: each EXTINF rounded to the nearest integer must not exceed the target.
    const rounded = Math.round(durationS);
    if (rounded > this.targetDurationS) this.targetDurationS = rounded;
  }

  observePart(durationS: number): void {
    if (durationS > this.partTargetS + 0.0005) this.partTargetS = Math.ceil(durationS * 1000) / 1000;
  }

  touch(): void {
    this.version += 1;
  }
}

const TRACK_KIND: Record<string, TrackKind> = { [VIDEO_TRACK]: 'video', [AUDIO_TRACK]: 'audio' };
const TRACK_ID: Record<TrackKind, string> = { video: VIDEO_TRACK, audio: AUDIO_TRACK };
/** Numbering of freed names is remembered for this many tracks. */
const MAX_TOMBSTONES = 4096;
/** A part request is held when the part is at most this many parts past the live edge. */
const PART_LOOKAHEAD = 1;
/** Sample durations read to measure a frame rate the init does not state. */
const FRAME_RATE_SAMPLES = 32;

function advancePartLimit(partTargetS: number): number {
  return partTargetS < 1 ? Math.ceil(3 / partTargetS) : 3;
}

function parseDirective(value: string | null): number | undefined | 'bad' {
  if (value === null) return undefined;
  return /^(0|[1-9][0-9]{0,14})$/.test(value) ? Number(value) : 'bad';
}

/** LL-HLS packager over a registry: playlists, segments and parts for every broadcast and rung. */
export class HlsBridge {
  readonly #registry: FragmentBroadcasterRegistry;
  readonly #targetMs: number;
  readonly #partTargetMs: number;
  readonly #dvrMs: number;
  readonly #blockingTimeoutMs: number | undefined;
  readonly #lingerMs: number;
  readonly #describeInit: InitDescriber;
  readonly #sourceBandwidthBps: number | undefined;
  readonly #isRungHidden: (source: string, rendition: string) => boolean;
  readonly #metrics: LvqrMetrics | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #broadcasts = new Map<string, BroadcastState>();
  /** Source name -> names of its rungs. */
  readonly #rungs = new Map<string, Set<string>>();
  readonly #groups = new Map<string, Group>();
  readonly #tombstones = new Map<string, TrackCursor>();
  readonly #descriptions = new WeakMap<InitVersion, Description>();
  readonly #probes = new WeakMap<InitVersion, FrameRateProbe>();
  /** The media playlist answers of a window's current state (full and delta), shared by every request. */
  readonly #cache = new WeakMap<TrackWindow, { key: string; full?: HlsResponse; delta?: HlsResponse }>();
  #offCreated: (() => void) | undefined;
  #started = false;
  #closed = false;
  #held = 0;
  #heldFlush = false;
  #onClosed: () => void = () => {};
  /** Resolves (undefined) when `close()` runs. */
  readonly #closedSignal = new Promise<undefined>((resolve) => {
    this.#onClosed = () => resolve(undefined);
  });

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
    this.#registry = options.registry;
    this.#targetMs = targetMs;
    this.#partTargetMs = partTargetMs;
    this.#dvrMs = dvrMs;
    this.#blockingTimeoutMs = blockingMs;
    this.#lingerMs = lingerMs;
    this.#describeInit = options.describeInit ?? containerDescribeInit;
    this.#sourceBandwidthBps = kbps === undefined ? undefined : kbps * 1000;
    this.#isRungHidden = options.isRungHidden ?? (() => false);
    this.#metrics = options.metrics;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  /** Subscribes to every existing and future `0.mp4` / `1.mp4` entry of the registry. Idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#offCreated = this.#registry.onEntryCreated((broadcast, track, broadcaster) =>
      this.#attach(broadcast, track, broadcaster),
    );
    for (const entry of this.#registry.entries()) this.#attach(entry.broadcast, entry.track, entry.broadcaster);
  }

  /** Stops consuming, frees every broadcast and answers held requests (503). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClosed();
    this.#offCreated?.();
    this.#offCreated = undefined;
    for (const b of this.#broadcasts.values()) {
      if (b.linger !== undefined) clearTimeout(b.linger);
      for (const t of b.tracks.values()) {
        for (const sub of t.subs) sub.close();
        t.subs.clear();
        t.window.dispose();
      }
    }
    this.#broadcasts.clear();
    this.#rungs.clear();
    this.#groups.clear();
  }

  /**
   * Answers `GET /hls/<broadcast>/<file>` (the `/hls/` prefix is optional). Blocking playlist
   * requests (`_HLS_msn`, `_HLS_part`) and requests for the next part are held until the media
   * exists, `blockingTimeoutMs` passes (503) or `signal` aborts (499). Never throws.
   */
  handle(path: string, query?: URLSearchParams, signal?: AbortSignal): Promise<HlsResponse> {
    try {
      const split = splitHlsPath(path);
      const file = split === undefined ? undefined : parseHlsFile(split.file);
      const b = split === undefined ? undefined : this.#broadcasts.get(split.broadcast);
      if (split === undefined || file === undefined || b === undefined) {
        let message = `no HLS resource at ${path}`;
        if (split !== undefined)
          message = b === undefined ? `no broadcast '${split.broadcast}'` : `no file '${split.file}'`;
        return Promise.resolve(errorResponse(404, 'hls.not_found', message));
      }
      // A held request resolves through one continuation: no async frames between its waiter and the caller.
      const response = this.#serve(b, file, query, signal);
      return response instanceof Promise
        ? response.catch((error: unknown) => this.#failed(path, error))
        : Promise.resolve(response);
    } catch (error) {
      return Promise.resolve(this.#failed(path, error));
    }
  }

  #failed(path: string, error: unknown): HlsResponse {
    this.#logger.error('hls request failed', { path, error: errorMessage(error) });
    return errorResponse(503, 'hls.unavailable', 'internal error');
  }

  /** Per-broadcast figures for `/api/v1/broadcasts`, sources first then rungs, by name. */
  broadcasts(): HlsBroadcastSummary[] {
    const out: HlsBroadcastSummary[] = [];
    for (const b of this.#broadcasts.values()) {
      const group = this.#groupOf(b);
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
        ended: this.#allEnded(b),
        inMaster: origin.kind === 'rendition' ? this.#rungVisible(b) : this.#mainWindow(b)?.latestPart() !== undefined,
        targetDurationS: group.targetDurationS,
        partTargetS: group.partTargetS,
        tracks,
      });
    }
    return out.sort((a, b) =>
      a.origin === b.origin ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.origin === 'ingest' ? -1 : 1,
    );
  }

  // ---- consuming --------------------------------------------------------------------------

  #attach(name: string, track: string, broadcaster: FragmentBroadcaster): void {
    const kind = TRACK_KIND[track];
    if (kind === undefined || this.#closed) return;
    let b = this.#broadcasts.get(name);
    if (b === undefined) {
      b = { name, origin: broadcaster.origin, tracks: new Map(), linger: undefined };
      this.#broadcasts.set(name, b);
    } else {
      this.#unindexRung(b);
      b.origin = broadcaster.origin;
    }
    if (b.linger !== undefined) {
      clearTimeout(b.linger);
      b.linger = undefined;
    }
    if (b.origin.kind === 'rendition') {
      let set = this.#rungs.get(b.origin.source);
      if (set === undefined) {
        set = new Set();
        this.#rungs.set(b.origin.source, set);
      }
      set.add(name);
    }
    let t = b.tracks.get(kind);
    if (t === undefined) {
      t = { kind, window: this.#newWindow(b, kind), subs: new Set(), session: 0, chain: Promise.resolve() };
      b.tracks.set(kind, t);
    }
    const sub = broadcaster.subscribe();
    t.subs.add(sub);
    t.session += 1;
    const session = t.session;
    const state = t;
    const owner = b;
    t.chain = t.chain.then(() => this.#drain(owner, state, sub, session));
  }

  #newWindow(b: BroadcastState, kind: TrackKind): TrackWindow {
    const key = `${b.name}\u0000${kind}`;
    const start = this.#tombstones.get(key);
    this.#tombstones.delete(key);
    const leader =
      kind === 'video'
        ? () => this.#sourceOf(b)?.tracks.get('video')?.window
        : () => b.tracks.get('video')?.window ?? this.#sourceOf(b)?.tracks.get('video')?.window;
    return new TrackWindow({
      kind,
      targetDurationMs: this.#targetMs,
      partTargetMs: this.#partTargetMs,
      dvrWindowMs: this.#dvrMs,
      group: this.#groupOf(b),
      leader,
      ...(start === undefined ? {} : { start }),
      now: this.#now,
      onWarning: (message, fields) => this.#logger.warn(message, { broadcast: b.name, ...fields }),
    });
  }

  async #drain(b: BroadcastState, t: TrackState, sub: FragmentSubscription, session: number): Promise<void> {
    try {
      // The subscription cannot be aborted while it waits for an init: `close()` ends the wait instead.
      const meta = await Promise.race([sub.waitForInit(), this.#closedSignal]);
      if (meta === undefined || this.#closed) return;
      t.window.resume();
      t.window.setMeta(meta);
      let version = sub.metaVersion;
      let lagged = sub.lagged;
      for (;;) {
        const fragment = await sub.next();
        if (fragment === undefined || this.#closed) break;
        try {
          if (sub.metaVersion !== version) {
            version = sub.metaVersion;
            t.window.setMeta(sub.meta);
          }
          if (sub.lagged !== lagged) {
            this.#logger.warn('hls subscriber lagged; fragments skipped', {
              broadcast: b.name,
              track: t.kind,
              skipped: sub.lagged - lagged,
            });
            lagged = sub.lagged;
            t.window.gap();
          }
          t.window.append(fragment);
          if (t.kind === 'video') this.#probeFrameRate(t.window.init, fragment);
        } catch (error) {
          this.#logger.error('hls packaging failed for a fragment', {
            broadcast: b.name,
            track: t.kind,
            error: errorMessage(error),
          });
        }
      }
    } catch (error) {
      this.#logger.error('hls drain failed', { broadcast: b.name, track: t.kind, error: errorMessage(error) });
    } finally {
      sub.close();
      t.subs.delete(sub);
      if (!this.#closed && t.session === session) {
        t.window.end();
        this.#maybeLinger(b);
      }
    }
  }

  #allEnded(b: BroadcastState): boolean {
    for (const t of b.tracks.values()) if (!t.window.ended || t.subs.size > 0) return false;
    return true;
  }

  #maybeLinger(b: BroadcastState): void {
    if (b.linger !== undefined || !this.#allEnded(b)) return;
    b.linger = setTimeout(() => this.#free(b), this.#lingerMs);
  }

  #free(b: BroadcastState): void {
    if (this.#broadcasts.get(b.name) !== b) return;
    b.linger = undefined;
    this.#broadcasts.delete(b.name);
    this.#unindexRung(b);
    for (const t of b.tracks.values()) {
      for (const sub of t.subs) sub.close();
      this.#remember(`${b.name}\u0000${t.kind}`, t.window.cursor());
      t.window.dispose();
    }
    const groupName = this.#groupName(b);
    let used = false;
    for (const other of this.#broadcasts.values()) if (this.#groupName(other) === groupName) used = true;
    if (!used) this.#groups.delete(groupName);
    this.#logger.debug('hls broadcast freed', { broadcast: b.name });
  }

  #remember(key: string, cursor: TrackCursor): void {
    this.#tombstones.delete(key);
    this.#tombstones.set(key, cursor);
    while (this.#tombstones.size > MAX_TOMBSTONES) {
      const oldest = this.#tombstones.keys().next().value;
      if (oldest === undefined) break;
      this.#tombstones.delete(oldest);
    }
  }

  #unindexRung(b: BroadcastState): void {
    if (b.origin.kind !== 'rendition') return;
    const set = this.#rungs.get(b.origin.source);
    set?.delete(b.name);
    if (set?.size === 0) this.#rungs.delete(b.origin.source);
  }

  #groupName(b: BroadcastState): string {
    return b.origin.kind === 'rendition' ? b.origin.source : b.name;
  }

  #groupOf(b: BroadcastState): Group {
    const name = this.#groupName(b);
    let group = this.#groups.get(name);
    if (group === undefined) {
      group = new Group(this.#targetMs, this.#partTargetMs);
      this.#groups.set(name, group);
    }
    return group;
  }

  #sourceOf(b: BroadcastState): BroadcastState | undefined {
    return b.origin.kind === 'rendition' ? this.#broadcasts.get(b.origin.source) : undefined;
  }

  // ---- describing -------------------------------------------------------------------------

  #describe(init: InitVersion, kind: TrackKind): Description {
    const cached = this.#descriptions.get(init);
    if (cached !== undefined) return cached;
    let description: Description = { codec: init.codec, width: undefined, height: undefined, frameRate: undefined };
    try {
      const out = this.#describeInit(init.bytes);
      const tracks = 'tracks' in out ? out.tracks : out;
      const track = tracks.find((x) => x.kind === kind) ?? tracks[0];
      if (track !== undefined) {
        description = {
          codec: track.codec || init.codec,
          width: track.width,
          height: track.height,
          frameRate: track.frameRate,
        };
      }
    } catch (error) {
      this.#logger.debug('init segment not described; using the track meta', { error: errorMessage(error) });
    }
    this.#descriptions.set(init, description);
    return description;
  }

  /** Reads sample durations of the first fragments of a video init whose `moov` does not state a frame rate. */
  #probeFrameRate(init: InitVersion | undefined, fragment: Fragment): void {
    if (init === undefined || this.#describe(init, 'video').frameRate !== undefined) return;
    let probe = this.#probes.get(init);
    if (probe === undefined) {
      probe = { durations: [], done: false };
      this.#probes.set(init, probe);
    }
    if (probe.done) return;
    try {
      for (const sample of readSamples(fragment.payload)) probe.durations.push(sample.duration);
    } catch {
      probe.durations = [];
      probe.done = true;
      return;
    }
    if (probe.durations.length >= FRAME_RATE_SAMPLES) probe.done = true;
  }

  /** FRAME-RATE: what the init states, else the timescale over the median sample duration. */
  #frameRate(init: InitVersion): number | undefined {
    const stated = this.#describe(init, 'video').frameRate;
    if (stated !== undefined) return stated;
    const durations = this.#probes.get(init)?.durations;
    if (durations === undefined || durations.length < 3) return undefined;
    const median = [...durations].sort((a, b) => a - b)[Math.floor(durations.length / 2)]!;
    return median > 0 ? init.timescale / median : undefined;
  }

  // ---- serving ----------------------------------------------------------------------------

  #serve(
    b: BroadcastState,
    file: HlsFile,
    query: URLSearchParams | undefined,
    signal?: AbortSignal,
  ): HlsResponse | Promise<HlsResponse> {
    if (file.kind === 'master') return this.#master(b);
    const t = b.tracks.get(file.track);
    if (t === undefined) return errorResponse(404, 'hls.not_found', `broadcast '${b.name}' has no ${file.track} track`);
    const w = t.window;
    switch (file.kind) {
      case 'playlist':
        return this.#mediaPlaylist(b, t, query, signal);
      case 'init': {
        const init = file.version === undefined ? w.init : w.initVersion(file.version);
        if (init === undefined) return errorResponse(404, 'hls.not_found', 'no such init segment');
        return mediaResponse(t.kind, init.bytes, file.version !== undefined);
      }
      case 'segment': {
        const bytes = w.segment(file.msn)?.bytes;
        if (bytes === undefined) return errorResponse(404, 'hls.not_found', `no segment ${file.msn}`);
        return mediaResponse(t.kind, bytes, true);
      }
      case 'part':
        return this.#part(b, t, file.msn, file.index, signal);
    }
  }

  #part(
    b: BroadcastState,
    t: TrackState,
    msn: number,
    index: number,
    signal?: AbortSignal,
  ): HlsResponse | Promise<HlsResponse> {
    const w = t.window;
    if (w.partState(msn, index, PART_LOOKAHEAD) !== 'pending') return this.#partResponse(t, msn, index);
    return this.#hold(
      w,
      () => w.partState(msn, index, PART_LOOKAHEAD) !== 'pending',
      this.#timeoutMs(b),
      signal,
      () => this.#partResponse(t, msn, index),
    );
  }

  #partResponse(t: TrackState, msn: number, index: number): HlsResponse {
    const part = t.window.part(msn, index);
    if (part === undefined) return errorResponse(404, 'hls.not_found', `no part ${msn}.${index}`);
    return mediaResponse(t.kind, part.bytes, true);
  }

  #timeoutMs(b: BroadcastState): number {
    return this.#blockingTimeoutMs ?? 3000 * this.#groupOf(b).targetDurationS;
  }

  /** Holds a request until `check()` holds, then answers with `respond()`; else 503, 499 or 404. */
  #hold(
    w: TrackWindow,
    check: () => boolean,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    respond: () => HlsResponse,
  ): Promise<HlsResponse> {
    this.#countHeld(1);
    return w.waitUntil(check, timeoutMs, signal).then((outcome) => {
      this.#countHeld(-1);
      return outcome === 'ready' ? respond() : this.#holdFailure(outcome, timeoutMs);
    });
  }

  /** Keeps the held-requests gauge current with one write per burst (a wake-up releases many at once). */
  #countHeld(delta: number): void {
    this.#held += delta;
    const gauge = this.#metrics?.hlsHeldRequests;
    if (gauge === undefined || this.#heldFlush) return;
    this.#heldFlush = true;
    void Promise.resolve().then(() => {
      this.#heldFlush = false;
      gauge.set(this.#held);
    });
  }

  #holdFailure(outcome: 'timeout' | 'aborted' | 'closed', timeoutMs: number): HlsResponse {
    if (outcome === 'timeout') {
      return errorResponse(
        503,
        'hls.unavailable',
        `not available after ${timeoutMs} ms of blocking (RFC 8216bis 6.2.5.2)`,
      );
    }
    if (outcome === 'aborted') return errorResponse(499, 'hls.aborted', 'the client went away');
    return this.#closed
      ? errorResponse(503, 'hls.unavailable', 'the HLS bridge is closed')
      : errorResponse(404, 'hls.not_found', 'the broadcast is gone');
  }

  #mediaPlaylist(
    b: BroadcastState,
    t: TrackState,
    query: URLSearchParams | undefined,
    signal?: AbortSignal,
  ): HlsResponse | Promise<HlsResponse> {
    const w = t.window;
    const msn = parseDirective(query?.get('_HLS_msn') ?? null);
    const part = parseDirective(query?.get('_HLS_part') ?? null);
    const skipValue = query?.get('_HLS_skip') ?? null;
    if (msn === 'bad') return errorResponse(400, 'hls.bad_request', '_HLS_msn must be a decimal integer');
    if (part === 'bad') return errorResponse(400, 'hls.bad_request', '_HLS_part must be a decimal integer');
    if (part !== undefined && msn === undefined) {
      return errorResponse(400, 'hls.bad_request', '_HLS_part needs _HLS_msn (RFC 8216bis 6.2.5.2)');
    }
    if (skipValue !== null && skipValue !== 'YES' && skipValue !== 'v2') {
      return errorResponse(400, 'hls.bad_request', '_HLS_skip must be YES or v2');
    }
    if (w.init === undefined && !w.hasMedia) {
      return errorResponse(404, 'hls.not_found', `no init segment yet for ${b.name} ${t.kind}`);
    }
    if (msn !== undefined && !w.ended) {
      const group = this.#groupOf(b);
      const last = w.lastCompleteMsn;
      if (msn > last + 2) {
        return errorResponse(400, 'hls.bad_request', `_HLS_msn=${msn} is more than two segments past ${last}`);
      }
      if (part !== undefined) {
        const limit = advancePartLimit(group.partTargetS);
        const latest = w.latestPart();
        const ahead =
          latest === undefined || msn > latest.msn ? part + 1 : msn === latest.msn ? part - latest.index : 0;
        if (ahead > limit) {
          return errorResponse(400, 'hls.bad_request', `_HLS_part=${part} is more than ${limit} parts ahead`);
        }
      }
      if (!w.hasReached(msn, part)) {
        // Inline callbacks: a function bound to a name gets a name-setting wrapper under tsx, per request.
        return this.#hold(
          w,
          () => w.hasReached(msn, part),
          this.#timeoutMs(b),
          signal,
          () => this.#renderMedia(b, t, skipValue !== null),
        );
      }
    }
    return this.#renderMedia(b, t, skipValue !== null);
  }

  /** The playlist answer for the window's current state, rendered once and then shared. */
  #renderMedia(b: BroadcastState, t: TrackState, skip: boolean): HlsResponse {
    const group = this.#groupOf(b);
    const reports = t.kind === 'video' ? this.#reports(b) : [];
    const key = `${group.version}|${t.window.version}|${reports.map((r) => r.uri).join(',')}`;
    let entry = this.#cache.get(t.window);
    if (entry === undefined || entry.key !== key) {
      entry = { key };
      this.#cache.set(t.window, entry);
    }
    const cached = skip ? entry.delta : entry.full;
    if (cached !== undefined) return cached;
    const response = playlistResponse(
      renderMediaPlaylist({
        window: t.window,
        prefix: t.kind === 'audio' ? 'audio-' : '',
        targetDurationS: group.targetDurationS,
        partTargetS: group.partTargetS,
        reports,
        skip,
      }),
    );
    if (skip) entry.delta = response;
    else entry.full = response;
    return response;
  }

  /** EXT-X-RENDITION-REPORTs of a video playlist: the source and every rung in the master, but itself. */
  #reports(b: BroadcastState): RenditionReport[] {
    const sourceName = this.#groupName(b);
    const members: BroadcastState[] = [];
    const source = this.#broadcasts.get(sourceName);
    if (source !== undefined) members.push(source);
    members.push(...this.#visibleRungs(sourceName));
    const reports: RenditionReport[] = [];
    for (const member of members) {
      if (member === b) continue;
      const latest = member.tracks.get('video')?.window.latestPart();
      if (latest === undefined) continue;
      reports.push({
        uri: relativeUri(b.name, member.name, 'playlist.m3u8'),
        lastMsn: latest.msn,
        lastPart: latest.index,
      });
    }
    return reports;
  }

  #rungVisible(b: BroadcastState): boolean {
    const origin = b.origin;
    if (origin.kind !== 'rendition') return false;
    const w = b.tracks.get('video')?.window;
    if (w === undefined || w.ended || w.init === undefined || w.listing().segments.length === 0) return false;
    try {
      return !this.#isRungHidden(origin.source, origin.rendition);
    } catch (error) {
      this.#logger.warn('isRungHidden threw; showing the rung', { broadcast: b.name, error: errorMessage(error) });
      return true;
    }
  }

  #visibleRungs(source: string): BroadcastState[] {
    const names = this.#rungs.get(source);
    if (names === undefined) return [];
    const out: BroadcastState[] = [];
    for (const name of names) {
      const rung = this.#broadcasts.get(name);
      if (rung !== undefined && this.#rungVisible(rung)) out.push(rung);
    }
    return out;
  }

  /** The window a broadcast's master variant is built from: video, else audio. */
  #mainWindow(b: BroadcastState): TrackWindow | undefined {
    return b.tracks.get('video')?.window ?? b.tracks.get('audio')?.window;
  }

  #master(b: BroadcastState): HlsResponse {
    const video = b.tracks.get('video')?.window;
    const audioWindow = b.tracks.get('audio')?.window;
    const main = video ?? audioWindow;
    if (main === undefined || main.init === undefined || main.latestPart() === undefined) {
      return errorResponse(404, 'hls.not_found', `broadcast '${b.name}' has no media yet`);
    }
    // The audio group: this broadcast's audio, while it is live (or everything has ended).
    const audio =
      video !== undefined &&
      audioWindow?.init !== undefined &&
      audioWindow.latestPart() !== undefined &&
      (!audioWindow.ended || video.ended)
        ? audioWindow
        : undefined;
    const audioBitrate = audio?.bitrate();
    const audioCodec = audio?.init === undefined ? undefined : this.#describe(audio.init, 'audio').codec;

    const variant = (w: TrackWindow, uri: string, override: number | undefined): MasterVariant => {
      const init = w.init!;
      const kind = w === audioWindow ? 'audio' : 'video';
      const description = this.#describe(init, kind);
      const rate = w.bitrate();
      const withAudio = kind === 'video' && audio !== undefined;
      const peak = rate.peakBps + (withAudio ? (audioBitrate?.peakBps ?? 0) : 0);
      const average = rate.averageBps + (withAudio ? (audioBitrate?.averageBps ?? 0) : 0);
      const bandwidth = override ?? peak;
      return {
        uri,
        bandwidthBps: bandwidth,
        averageBandwidthBps: Math.min(average, bandwidth),
        codecs: withAudio && audioCodec !== undefined ? [description.codec, audioCodec] : [description.codec],
        width: kind === 'video' ? description.width : undefined,
        height: kind === 'video' ? description.height : undefined,
        frameRate: kind === 'video' ? this.#frameRate(init) : undefined,
        audio: withAudio,
      };
    };

    const sourceVariant = variant(
      main,
      main === video ? 'playlist.m3u8' : 'audio.m3u8',
      b.origin.kind === 'ingest' ? this.#sourceBandwidthBps : undefined,
    );
    const rungs = this.#visibleRungs(b.name)
      .map((rung) =>
        variant(rung.tracks.get('video')!.window, relativeUri(b.name, rung.name, 'playlist.m3u8'), undefined),
      )
      .sort((x, y) => y.bandwidthBps - x.bandwidthBps);
    return playlistResponse(
      renderMasterPlaylist({
        audioUri: audio === undefined ? undefined : 'audio.m3u8',
        variants: [sourceVariant, ...rungs],
      }),
    );
  }

  #trackSummary(t: TrackState): HlsTrackSummary {
    const w = t.window;
    const init = w.init;
    const description = init === undefined ? undefined : this.#describe(init, t.kind);
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
      frameRate: t.kind === 'video' && init !== undefined ? this.#frameRate(init) : undefined,
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
      lagGaps: counters.gaps,
      heldRequests: w.waiterCount,
    };
  }
}
