/**
 * `IngestManager`: turns publisher byte streams (HTTP bodies, WebSocket messages) into registry
 * tracks. One publisher per broadcast; a publisher that goes away leaves its broadcast in a grace
 * period during which a new connection continues it (a new init = a discontinuity downstream).
 */

import { Fmp4StreamParser, type ParsedTrack, type ParserEvent } from '../container/index.ts';
import { errorMessage, LvqrError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import type { FragmentMeta } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { type AuthOutcome, checkIngestAuth, type IngestAuthConfig } from './auth.ts';
import { validateBroadcastName } from './names.ts';

/** Transport a publisher uses. */
export type IngestTransport = 'http' | 'ws' | 'internal';

/** Why a connection ended. */
export type EndReason = 'eof' | 'disconnect' | 'error' | 'idle' | 'shutdown';

/** Ingest limits. */
export type IngestLimits = {
  /** Largest `moof`/`mdat` box accepted (default 16 MiB). */
  maxBoxBytes: number;
  /** Largest `moov` accepted (default 4 MiB). */
  maxInitBytes: number;
  /** Largest WebSocket message accepted (default 8 MiB). */
  maxMessageBytes: number;
  /** Most broadcasts publishing (or in grace) at once (default 64). */
  maxBroadcasts: number;
};

/** Options of the ingest manager. */
export type IngestOptions = {
  registry: FragmentBroadcasterRegistry;
  limits?: Partial<IngestLimits>;
  auth?: IngestAuthConfig;
  /** How long a broadcast outlives its publisher, waiting for a reconnect (default 5 s). */
  graceMs?: number;
  /** A connection that sends nothing for this long is closed (default 15 s). */
  idleTimeoutMs?: number;
  logger?: Logger;
  metrics?: LvqrMetrics;
  now?: () => number;
};

/** Default limits. */
export const DEFAULT_INGEST_LIMITS: IngestLimits = {
  maxBoxBytes: 16 * 1024 * 1024,
  maxInitBytes: 4 * 1024 * 1024,
  maxMessageBytes: 8 * 1024 * 1024,
  maxBroadcasts: 64,
};

/** What the API reports about a publishing broadcast. */
export type IngestInfo = {
  broadcast: string;
  state: 'live' | 'grace';
  transport: IngestTransport | undefined;
  connectedAtMs: number | undefined;
  bytes: number;
  fragments: number;
  connections: number;
  tracks: Array<{ track: string; kind: string; codec: string; supported: boolean; width?: number; height?: number }>;
  lastError: string | undefined;
};

/** The meta this producer published for a track; `frameRate` is filled in once the parser measures it. */
type TrackMeta = { -readonly [K in keyof FragmentMeta]: FragmentMeta[K] };

/** A published track: its broadcaster, the parser's track (updated in place) and the meta published for it. */
type TrackEntry = { broadcaster: FragmentBroadcaster; info: ParsedTrack; meta: TrackMeta };

type PublishState = {
  broadcast: string;
  parser: Fmp4StreamParser;
  tracks: Map<string, TrackEntry>;
  active: IngestConnection | undefined;
  graceTimer: ReturnType<typeof setTimeout> | undefined;
  bytes: number;
  fragments: number;
  connections: number;
  lastError: string | undefined;
};

/** One publisher connection. Feed it bytes with `push`; call `end` when the transport ends. */
export class IngestConnection {
  readonly broadcast: string;
  readonly transport: IngestTransport;
  readonly connectedAtMs: number;
  /** Called when the connection idles out; the transport should close itself. */
  onIdle: (() => void) | undefined;
  /** Called when the server shuts down (`IngestManager.close`); the transport should close itself. */
  onShutdown: (() => void) | undefined;
  /** Called once when the connection ends, whatever the reason (e.g. to release a per-client slot). */
  onEnded: (() => void) | undefined;
  readonly #manager: IngestManager;
  readonly #state: PublishState;
  readonly #idleTimeoutMs: number;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #ended = false;
  #bytes = 0;
  #fragments = 0;

  /** @internal Use `IngestManager.open`. */
  constructor(
    manager: IngestManager,
    state: PublishState,
    transport: IngestTransport,
    idleTimeoutMs: number,
    nowMs: number,
  ) {
    this.#manager = manager;
    this.#state = state;
    this.broadcast = state.broadcast;
    this.transport = transport;
    this.connectedAtMs = nowMs;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#armIdle();
  }

  /** Bytes received on this connection. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Fragments published from this connection. */
  get fragments(): number {
    return this.#fragments;
  }

  /** True after `end`. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Parses `chunk` and publishes what it completes. Throws the parser's `ContainerError` on bad
   * input (the caller answers the publisher and calls `end('error')`).
   */
  push(chunk: Uint8Array): void {
    if (this.#ended) throw new LvqrError('ingest.truncated', 'connection already ended');
    this.#armIdle();
    this.#bytes += chunk.byteLength;
    this.#state.bytes += chunk.byteLength;
    this.#manager._countBytes(this.transport, chunk.byteLength);
    let events: ParserEvent[];
    try {
      events = this.#state.parser.push(chunk);
    } catch (error) {
      this.#state.lastError = errorMessage(error);
      throw error;
    }
    this.#fragments += this.#manager._publish(this.#state, events);
  }

  /**
   * Publishes already-parsed events (an in-process source such as the test pattern): same
   * registry tracks, same one-publisher rule, grace and end as a network publisher.
   */
  publishEvents(events: readonly ParserEvent[]): void {
    if (this.#ended) return;
    this.#armIdle();
    this.#fragments += this.#manager._publish(this.#state, events);
  }

  /**
   * The publisher's stream ended cleanly (an HTTP body that is complete): publishes what the
   * parser still holds and ends the connection with `eof`. Throws the parser's `ContainerError`
   * (`ingest.truncated`) when the stream stopped inside a box; the caller then calls `end('error')`.
   */
  finish(): void {
    if (this.#ended) return;
    let events: ParserEvent[];
    try {
      events = this.#state.parser.end();
    } catch (error) {
      this.#state.lastError = errorMessage(error);
      throw error;
    }
    this.#fragments += this.#manager._publish(this.#state, events);
    this.end('eof');
  }

  /** Ends this connection; the broadcast enters its grace period. Idempotent. */
  end(reason: EndReason): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#idleTimer);
    this.#manager._disconnected(this.#state, this, reason);
    this.onEnded?.();
    // The transport did not end this connection itself: tell it to let the publisher go.
    if (reason === 'shutdown') this.onShutdown?.();
  }

  #armIdle(): void {
    clearTimeout(this.#idleTimer);
    if (this.#idleTimeoutMs <= 0) return;
    this.#idleTimer = setTimeout(() => {
      if (this.#ended) return;
      this.#state.lastError = `no data for ${this.#idleTimeoutMs} ms`;
      this.#manager._countRejected('ingest.idle_timeout');
      this.end('idle');
      this.onIdle?.();
    }, this.#idleTimeoutMs);
  }
}

/** Accepts publishers and feeds their streams into the registry. */
export class IngestManager {
  readonly #registry: FragmentBroadcasterRegistry;
  readonly #limits: IngestLimits;
  readonly #auth: IngestAuthConfig | undefined;
  readonly #graceMs: number;
  readonly #idleTimeoutMs: number;
  readonly #logger: Logger;
  readonly #metrics: LvqrMetrics | undefined;
  readonly #now: () => number;
  readonly #states = new Map<string, PublishState>();
  #closed = false;

  /** Creates a manager publishing into `options.registry`. */
  constructor(options: IngestOptions) {
    this.#registry = options.registry;
    this.#limits = { ...DEFAULT_INGEST_LIMITS, ...options.limits };
    this.#auth = options.auth;
    this.#graceMs = options.graceMs ?? 5000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 15_000;
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics;
    this.#now = options.now ?? Date.now;
  }

  /** The limits in force. */
  get limits(): Readonly<IngestLimits> {
    return this.#limits;
  }

  /** Checks the presented token (Authorization header value) for `broadcast`. */
  authorize(broadcast: string, presented: string | undefined): AuthOutcome {
    return checkIngestAuth(this.#auth, broadcast, presented);
  }

  /**
   * Opens a publisher connection for `broadcast`. Throws `LvqrError` with `ingest.bad_name`,
   * `ingest.already_publishing` (someone is connected, or the name is a transcoder output) or
   * `ingest.limit`.
   */
  open(broadcast: string, transport: IngestTransport): IngestConnection {
    if (this.#closed) throw new LvqrError('ingest.limit', 'the server is shutting down');
    validateBroadcastName(broadcast);
    let state = this.#states.get(broadcast);
    if (state?.active !== undefined) {
      this.#countRejected('ingest.already_publishing');
      throw new LvqrError('ingest.already_publishing', `broadcast ${broadcast} already has a publisher`);
    }
    for (const track of ['0.mp4', '1.mp4']) {
      if (this.#registry.get(broadcast, track)?.origin.kind === 'rendition') {
        this.#countRejected('ingest.already_publishing');
        throw new LvqrError('ingest.already_publishing', `broadcast ${broadcast} is a transcoder output`);
      }
    }
    if (state === undefined) {
      if (this.#states.size >= this.#limits.maxBroadcasts) {
        this.#countRejected('ingest.limit');
        throw new LvqrError('ingest.limit', `at most ${this.#limits.maxBroadcasts} broadcasts may publish at once`);
      }
      state = {
        broadcast,
        parser: this.#newParser(),
        tracks: new Map(),
        active: undefined,
        graceTimer: undefined,
        bytes: 0,
        fragments: 0,
        connections: 0,
        lastError: undefined,
      };
      this.#states.set(broadcast, state);
    } else {
      clearTimeout(state.graceTimer);
      state.graceTimer = undefined;
    }
    const connection = new IngestConnection(this, state, transport, this.#idleTimeoutMs, this.#now());
    state.active = connection;
    state.connections += 1;
    this.#logger.info('publisher connected', { broadcast, transport, resumed: state.connections > 1 });
    return connection;
  }

  /** Broadcasts publishing or in their grace period. */
  list(): IngestInfo[] {
    return [...this.#states.values()].map((s) => ({
      broadcast: s.broadcast,
      state: s.active !== undefined ? 'live' : 'grace',
      transport: s.active?.transport,
      connectedAtMs: s.active?.connectedAtMs,
      bytes: s.bytes,
      fragments: s.fragments,
      connections: s.connections,
      tracks: [...s.tracks.entries()].map(([track, t]) => ({
        track,
        kind: t.info.kind,
        codec: t.info.codec,
        supported: t.info.supported !== false,
        ...(t.info.width === undefined ? {} : { width: t.info.width }),
        ...(t.info.height === undefined ? {} : { height: t.info.height }),
      })),
      lastError: s.lastError,
    }));
  }

  /** Ends every broadcast now (no grace). */
  close(): void {
    this.#closed = true;
    for (const state of [...this.#states.values()]) {
      state.active?.end('shutdown');
      this.#finish(state);
    }
  }

  /** @internal */
  _publish(state: PublishState, events: readonly ParserEvent[]): number {
    let fragments = 0;
    for (const event of events) {
      if (event.type === 'init') {
        this.#applyInit(state, event.tracks);
      } else {
        const entry = state.tracks.get(event.fragment.trackId);
        if (entry === undefined) continue;
        carryFrameRate(entry);
        entry.broadcaster.emit(event.fragment);
        fragments += 1;
      }
    }
    // The parser may settle a frame rate after the last fragment (at the end of the stream).
    for (const entry of state.tracks.values()) carryFrameRate(entry);
    state.fragments += fragments;
    return fragments;
  }

  /** @internal */
  _disconnected(state: PublishState, connection: IngestConnection, reason: EndReason): void {
    if (state.active !== connection) return;
    state.active = undefined;
    // Fragments held for their duration are published now (with an estimated one).
    this._publish(state, state.parser.flush());
    // A cut mid-box leaves a partial box behind: start the next connection on a clean parser that
    // still knows the current init, so a segment-per-request publisher can go on.
    state.parser = this.#newParser(state.parser);
    this.#logger.info('publisher disconnected', { broadcast: state.broadcast, reason, graceMs: this.#graceMs });
    if (reason === 'shutdown' || this.#graceMs <= 0) {
      this.#finish(state);
      return;
    }
    state.graceTimer = setTimeout(() => this.#finish(state), this.#graceMs);
  }

  /** @internal */
  _countBytes(transport: IngestTransport, bytes: number): void {
    this.#metrics?.ingestBytes.inc({ transport }, bytes);
  }

  /** @internal */
  _countRejected(code: string): void {
    this.#countRejected(code);
  }

  #countRejected(code: string): void {
    this.#metrics?.ingestRejected.inc({ code });
  }

  #newParser(previous?: Fmp4StreamParser): Fmp4StreamParser {
    const parser = new Fmp4StreamParser({
      maxBoxBytes: this.#limits.maxBoxBytes,
      maxInitBytes: this.#limits.maxInitBytes,
      now: this.#now,
    });
    if (previous !== undefined) parser.continueFrom(previous);
    return parser;
  }

  #applyInit(state: PublishState, tracks: readonly ParsedTrack[]): void {
    const seen = new Set<string>();
    for (const info of tracks) {
      seen.add(info.trackId);
      const meta: TrackMeta = { codec: info.codec, timescale: info.timescale, initSegment: info.initSegment };
      if (info.frameRate !== undefined) meta.frameRate = info.frameRate;
      const existing = state.tracks.get(info.trackId);
      if (existing !== undefined && !existing.broadcaster.closed) {
        existing.info = info;
        existing.meta = meta;
        existing.broadcaster.setMeta(meta);
        continue;
      }
      const broadcaster = this.#registry.getOrCreate(state.broadcast, info.trackId, meta);
      if (broadcaster.meta !== meta) broadcaster.setMeta(meta);
      state.tracks.set(info.trackId, { broadcaster, info, meta });
    }
    for (const [track] of state.tracks) {
      if (!seen.has(track)) {
        state.tracks.delete(track);
        this.#registry.remove(state.broadcast, track);
      }
    }
    this.#logger.info('init segment', {
      broadcast: state.broadcast,
      tracks: tracks.map((t) => `${t.trackId}:${t.codec}${t.width ? ` ${t.width}x${t.height}` : ''}`).join(', '),
    });
  }

  #finish(state: PublishState): void {
    clearTimeout(state.graceTimer);
    if (this.#states.get(state.broadcast) !== state) return;
    this.#states.delete(state.broadcast);
    for (const [track, entry] of state.tracks) {
      if (this.#registry.get(state.broadcast, track) === entry.broadcaster)
        this.#registry.remove(state.broadcast, track);
    }
    state.tracks.clear();
    this.#logger.info('broadcast ended', {
      broadcast: state.broadcast,
      fragments: state.fragments,
      bytes: state.bytes,
    });
  }
}

/**
 * Copies a frame rate the parser measured after the init (it fills it in on its track object) into
 * the meta published for that init, on the same object: the init did not change, so neither does
 * the meta version (a new version would be a discontinuity downstream).
 */
function carryFrameRate(entry: TrackEntry): void {
  if (entry.meta.frameRate === undefined && entry.info.frameRate !== undefined) {
    entry.meta.frameRate = entry.info.frameRate;
  }
}
