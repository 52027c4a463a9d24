/**
 * Playback: `GET` / `HEAD /hls/*` answered by the HLS layer, with byte ranges on media and a
 * per-client bound on held LL-HLS blocking reloads. Playback is the only cross-origin surface:
 * players on other sites read playlists and media. The HLS layer's answers carry CORS; so do the
 * few these routes make themselves. Ingest, the APIs and metrics send no CORS headers, so
 * browsers keep other origins out of them.
 */

import { Hono } from 'hono';
import type { ErrorCode } from '../core/error-codes.ts';
import type { HlsResponse } from '../hls/index.ts';
import { PerClientLimit } from './client-limits.ts';
import { jsonError } from './errors.ts';
import { clientAddressOf, type HttpRuntime } from './runtime-adapter.ts';

/** What the server needs of the HLS layer. */
export interface HlsHandler {
  handle(path: string, query: URLSearchParams, signal?: AbortSignal): Promise<HlsResponse>;
}

/** What the HLS routes need. */
export type HlsRoutesDeps = {
  /** The HLS layer; undefined answers 404 (HLS is disabled). */
  hls: HlsHandler | undefined;
  /** LL-HLS blocking playlist requests one client address may hold at once. */
  maxHeldRequestsPerClient: number;
  runtime: HttpRuntime | undefined;
};

const utf8 = new TextEncoder();

/** The byte range a single-range `Range: bytes=...` header asks of `size` bytes; 'unsatisfiable', or undefined to ignore it. */
export function parseByteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined; // absent, multiple ranges or another unit: answer with the whole body
  const [, first, last] = m as unknown as [string, string, string];
  if (first === '' && last === '') return undefined;
  let start: number;
  let end: number;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(first);
    end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
    if (last !== '' && Number(last) < start) return undefined; // invalid: ignore (RFC 9110 14.1.1)
  }
  if (start >= size || size === 0) return 'unsatisfiable';
  return { start, end };
}

/**
 * Bytes and headers sent for a text answer, kept per answer object: the HLS layer answers every
 * request one change wakes with the same playlist object, so it is encoded once.
 */
const encodedText = new WeakMap<HlsResponse, { bytes: Uint8Array; headers: Record<string, string> }>();

/**
 * An HLS layer answer as an HTTP response: an explicit Content-Length (so HEAD, which the router
 * answers from the GET route without the body, reports the real size) and single byte ranges on
 * media (206 / 416). Headers go out as a plain record (no `Headers` object per response).
 */
export function hlsHttpResponse(result: HlsResponse, rangeHeader: string | undefined): Response {
  if (typeof result.body === 'string') {
    let sent = encodedText.get(result);
    if (sent === undefined) {
      const bytes = utf8.encode(result.body);
      sent = { bytes, headers: { ...result.headers, 'content-length': String(bytes.byteLength) } };
      encodedText.set(result, sent);
    }
    return new Response(sent.bytes as BodyInit, { status: result.status, headers: sent.headers });
  }
  const bytes = result.body;
  const headers: Record<string, string> = { ...result.headers };
  if (result.status === 200) {
    headers['accept-ranges'] = 'bytes';
    const range = parseByteRange(rangeHeader, bytes.byteLength);
    if (range === 'unsatisfiable') {
      headers['content-range'] = `bytes */${bytes.byteLength}`;
      headers['content-length'] = '0';
      return new Response(null, { status: 416, headers });
    }
    if (range !== undefined) {
      headers['content-range'] = `bytes ${range.start}-${range.end}/${bytes.byteLength}`;
      headers['content-length'] = String(range.end - range.start + 1);
      return new Response(bytes.subarray(range.start, range.end + 1) as BodyInit, { status: 206, headers });
    }
  }
  headers['content-length'] = String(bytes.byteLength);
  return new Response(bytes as BodyInit, { status: result.status, headers });
}

function playbackError(code: ErrorCode, message: string): Response {
  const response = jsonError(code, message);
  response.headers.set('access-control-allow-origin', '*');
  return response;
}

/** The `GET /hls/*` and `OPTIONS /hls/*` routes. */
export function hlsRoutes(deps: HlsRoutesDeps): Hono {
  const heldByClient = new PerClientLimit(deps.maxHeldRequestsPerClient);
  const routes = new Hono();
  routes.get('/hls/*', async (c) => {
    if (deps.hls === undefined) return playbackError('hls.not_found', 'HLS is disabled');
    // Only the query is needed: split it off instead of parsing the whole URL again.
    const url = c.req.url;
    const q = url.indexOf('?');
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    if (!query.has('_HLS_msn')) {
      return hlsHttpResponse(await deps.hls.handle(c.req.path, query, c.req.raw.signal), c.req.header('range'));
    }
    // A blocking reload may be held for seconds: one client may hold only so many at once.
    const release = heldByClient.acquire(clientAddressOf(deps.runtime, c));
    if (release === undefined) {
      const response = playbackError(
        'hls.too_many_held_requests',
        `this client already has ${deps.maxHeldRequestsPerClient} blocking playlist requests waiting (the per-client limit)`,
      );
      response.headers.set('retry-after', '1');
      return response;
    }
    try {
      const result = await deps.hls.handle(c.req.path, query, c.req.raw.signal);
      return hlsHttpResponse(result, c.req.header('range'));
    } finally {
      release();
    }
  });
  routes.options('/hls/*', () => {
    return new Response(null, {
      status: 204,
      headers: {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': 'range, content-type',
        'access-control-max-age': '86400',
      },
    });
  });
  return routes;
}
