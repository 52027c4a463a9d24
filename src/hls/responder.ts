/**
 * `Responder`: answers a request for one file of a broadcast: init segments, segments, parts, media
 * playlists and the master. Blocking playlist requests (`_HLS_msn`, `_HLS_part`) and requests for
 * the next part are held on the track window until the media exists, the timeout passes (503) or
 * the client goes away (499). A media playlist is rendered once per window state and shared.
 */

import type { LvqrMetrics } from '../metrics/index.ts';
import type { HlsBroadcast, HlsTrack } from './broadcast-table.ts';
import { type RenditionReport, renderMediaPlaylist } from './playlist.ts';
import { errorResponse, type HlsFile, type HlsResponse, mediaResponse, playlistResponse } from './routes.ts';
import type { TrackWindow } from './window.ts';

/** The group timing a playlist advertises; `version` changes whenever any playlist of the group may. */
export type PlaylistTiming = {
  readonly targetDurationS: number;
  readonly partTargetS: number;
  readonly version: number;
};

/** Options of a `Responder`. */
export type ResponderOptions = {
  /** The timing group of a broadcast. */
  timing: (b: HlsBroadcast) => PlaylistTiming;
  /** The master playlist answer of a broadcast. */
  master: (b: HlsBroadcast) => HlsResponse;
  /** The rendition reports of a broadcast's video playlist. */
  reports: (b: HlsBroadcast) => RenditionReport[];
  /** How long a request is held before 503, ms; undefined: three target durations. */
  blockingTimeoutMs: number | undefined;
  metrics: LvqrMetrics | undefined;
  /** True once the bridge is closed (a request released by disposal then gets 503, not 404). */
  isClosed: () => boolean;
};

/** A part request is held when the part is at most this many parts past the live edge. */
const PART_LOOKAHEAD = 1;

function advancePartLimit(partTargetS: number): number {
  return partTargetS < 1 ? Math.ceil(3 / partTargetS) : 3;
}

function parseDirective(value: string | null): number | undefined | 'bad' {
  if (value === null) return undefined;
  return /^(0|[1-9][0-9]{0,14})$/.test(value) ? Number(value) : 'bad';
}

/** Serves the files of broadcasts, holding blocking requests. */
export class Responder {
  readonly #timing: (b: HlsBroadcast) => PlaylistTiming;
  readonly #master: (b: HlsBroadcast) => HlsResponse;
  readonly #reports: (b: HlsBroadcast) => RenditionReport[];
  readonly #blockingTimeoutMs: number | undefined;
  readonly #metrics: LvqrMetrics | undefined;
  readonly #isClosed: () => boolean;
  /** The media playlist answers of a window's current state (full and delta), shared by every request. */
  readonly #cache = new WeakMap<TrackWindow, { key: string; full?: HlsResponse; delta?: HlsResponse }>();
  #held = 0;
  #heldFlush = false;

  /** A responder over the given views of the bridge. */
  constructor(options: ResponderOptions) {
    this.#timing = options.timing;
    this.#master = options.master;
    this.#reports = options.reports;
    this.#blockingTimeoutMs = options.blockingTimeoutMs;
    this.#metrics = options.metrics;
    this.#isClosed = options.isClosed;
  }

  /** The answer for `file` of `b`: at once, or a promise when the request is held. */
  serve(
    b: HlsBroadcast,
    file: HlsFile,
    query: URLSearchParams | undefined,
    signal?: AbortSignal,
  ): HlsResponse | Promise<HlsResponse> {
    if (file.kind === 'master') return this.#master(b);
    const t = b.tracks.get(file.track);
    if (t === undefined) return errorResponse('hls.not_found', `broadcast '${b.name}' has no ${file.track} track`);
    const w = t.window;
    switch (file.kind) {
      case 'playlist':
        return this.#mediaPlaylist(b, t, query, signal);
      case 'init': {
        const init = file.version === undefined ? w.init : w.initVersion(file.version);
        if (init === undefined) return errorResponse('hls.not_found', 'no such init segment');
        return mediaResponse(t.kind, init.bytes, file.version !== undefined);
      }
      case 'segment': {
        const seg = w.segment(file.msn);
        if (seg?.gap) return errorResponse('hls.not_found', `segment ${file.msn} is a gap (EXT-X-GAP)`);
        const bytes = seg?.bytes;
        if (bytes === undefined) return errorResponse('hls.not_found', `no segment ${file.msn}`);
        return mediaResponse(t.kind, bytes, true);
      }
      case 'part':
        return this.#part(b, t, file.msn, file.index, signal);
    }
  }

  #part(
    b: HlsBroadcast,
    t: HlsTrack,
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

  #partResponse(t: HlsTrack, msn: number, index: number): HlsResponse {
    const part = t.window.part(msn, index);
    if (part === undefined) return errorResponse('hls.not_found', `no part ${msn}.${index}`);
    if (part.gap) return errorResponse('hls.not_found', `part ${msn}.${index} is a gap (GAP=YES)`);
    return mediaResponse(t.kind, part.bytes, true);
  }

  #timeoutMs(b: HlsBroadcast): number {
    return this.#blockingTimeoutMs ?? 3000 * this.#timing(b).targetDurationS;
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
      return errorResponse('hls.unavailable', `not available after ${timeoutMs} ms of blocking (RFC 8216bis 6.2.5.2)`);
    }
    if (outcome === 'aborted') return errorResponse('hls.aborted', 'the client went away');
    return this.#isClosed()
      ? errorResponse('hls.unavailable', 'the HLS bridge is closed')
      : errorResponse('hls.not_found', 'the broadcast is gone');
  }

  #mediaPlaylist(
    b: HlsBroadcast,
    t: HlsTrack,
    query: URLSearchParams | undefined,
    signal?: AbortSignal,
  ): HlsResponse | Promise<HlsResponse> {
    const w = t.window;
    const msn = parseDirective(query?.get('_HLS_msn') ?? null);
    const part = parseDirective(query?.get('_HLS_part') ?? null);
    const skipValue = query?.get('_HLS_skip') ?? null;
    if (msn === 'bad') return errorResponse('hls.bad_request', '_HLS_msn must be a decimal integer');
    if (part === 'bad') return errorResponse('hls.bad_request', '_HLS_part must be a decimal integer');
    if (part !== undefined && msn === undefined) {
      return errorResponse('hls.bad_request', '_HLS_part needs _HLS_msn (RFC 8216bis 6.2.5.2)');
    }
    if (skipValue !== null && skipValue !== 'YES' && skipValue !== 'v2') {
      return errorResponse('hls.bad_request', '_HLS_skip must be YES or v2');
    }
    if (w.init === undefined && !w.hasMedia) {
      return errorResponse('hls.not_found', `no init segment yet for ${b.name} ${t.kind}`);
    }
    if (msn !== undefined && !w.ended) {
      const group = this.#timing(b);
      const last = w.lastCompleteMsn;
      if (msn > last + 2) {
        return errorResponse('hls.bad_request', `_HLS_msn=${msn} is more than two segments past ${last}`);
      }
      if (part !== undefined) {
        const limit = advancePartLimit(group.partTargetS);
        const latest = w.latestPart();
        const ahead =
          latest === undefined || msn > latest.msn ? part + 1 : msn === latest.msn ? part - latest.index : 0;
        if (ahead > limit) {
          return errorResponse('hls.bad_request', `_HLS_part=${part} is more than ${limit} parts ahead`);
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
  #renderMedia(b: HlsBroadcast, t: HlsTrack, skip: boolean): HlsResponse {
    const group = this.#timing(b);
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
}
