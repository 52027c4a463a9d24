/**
 * The HTTP surface (a contract, see README.md "HTTP API") as a runtime-free Hono app. Runtime files
 * (`src/runtime/*`) inject the WebSocket upgrader and static assets, then serve `app.fetch`.
 */

import { type Context, Hono } from 'hono';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';
import { errorMessage, LvqrError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { HlsResponse } from '../hls/index.ts';
import { IngestConnection, type IngestManager, validateBroadcastName } from '../ingest/index.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { PerClientLimit } from './client-limits.ts';
import { errorBody, toErrorResponse, wsCloseCodeFor } from './errors.ts';

export type { HlsResponse };

/** What the server needs of the HLS layer. */
export interface HlsHandler {
  handle(path: string, query: URLSearchParams, signal?: AbortSignal): Promise<HlsResponse>;
}

/** A static asset served as-is (dashboard script, hls.js). */
export type StaticAsset = { body: string | Uint8Array; contentType: string };

/** Everything the app is built from; each part is optional so routes can be tested alone. */
export type AppDeps = {
  ingest?: IngestManager;
  hls?: HlsHandler;
  metrics?: LvqrMetrics;
  logger?: Logger;
  /** JSON for `GET /api/v1/broadcasts`. */
  broadcasts?: () => unknown;
  /** JSON for `GET /api/v1/transcode`. */
  transcode?: () => unknown;
  /** Extra fields for `GET /healthz`. */
  health?: () => Record<string, unknown>;
  /** The WebSocket upgrader of the runtime (node-server, hono/bun, hono/deno). */
  upgradeWebSocket?: UpgradeWebSocket<unknown>;
  /** Static assets by path (`/` is the dashboard page). */
  assets?: Readonly<Record<string, StaticAsset>>;
  /** The client's address as the runtime sees it (per-client limits); undefined when unknown. */
  clientAddress?: (c: Context) => string | undefined;
  /** Per-client limits (defaults: 16 publishers, 100 held blocking requests). */
  clientLimits?: Partial<ClientLimits>;
};

/** What one client address may hold at once. */
export type ClientLimits = {
  /** Publisher connections (POST bodies in progress and open WebSockets). */
  maxPublishers: number;
  /** LL-HLS blocking playlist requests waiting for their part. */
  maxHeldRequests: number;
};

/** Default per-client limits. */
export const DEFAULT_CLIENT_LIMITS: ClientLimits = { maxPublishers: 16, maxHeldRequests: 100 };

/**
 * Why a publisher is not let in: answered as a JSON error over HTTP, or on the open WebSocket as
 * that JSON message and close code 4000 + status.
 */
type Refusal = { status: number; code: string; message: string };

type Env = { Variables: { ingestConnection: IngestConnection; ingestRefusal: Refusal } };

function isUpgrade(c: Context): boolean {
  return c.req.method === 'GET' && c.req.header('upgrade')?.toLowerCase() === 'websocket';
}

function refusalOf(error: unknown): Refusal {
  const { status, body } = toErrorResponse(error);
  return { status, ...body.error };
}

function refusalResponse(r: Refusal): Response {
  return jsonError(r.status, r.code, r.message);
}

const INGEST_PREFIX = '/ingest/';
/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 4.1). */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** How long an accepted upgrade may take to open before its broadcast name is released. */
const WS_OPEN_TIMEOUT_MS = 5_000;
const IDLE_MESSAGE = 'no data received within the idle timeout';

function jsonError(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify(errorBody(code, message)), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8' },
  });
}

function errorResponse(error: unknown): Response {
  const { status, body } = toErrorResponse(error);
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8' } });
}

function broadcastFromPath(path: string): string {
  // Names are restricted to [A-Za-z0-9_-] segments: a target with percent escapes or dot segments
  // is refused on its raw form (see `rawTargetPath`).
  return path.slice(INGEST_PREFIX.length);
}

/**
 * The path of the request target as the client sent it, when the runtime keeps it (Node:
 * `env.incoming.url`). Request URLs are normalised (`live/../x` becomes `x`, `%2e%2e` is a dot
 * segment), which would silently publish under another name; ingest names are checked on this.
 */
function rawTargetPath(env: unknown): string | undefined {
  const url = (env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url;
  if (typeof url !== 'string') return undefined;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** How long a refused upload's remaining body is read (and dropped) before the answer goes out. */
const DISCARD_BODY_MS = 500;

/**
 * Reads and drops the rest of a refused request body for up to `DISCARD_BODY_MS`, then lets it go.
 * A publisher still sending when it is answered and disconnected gets a reset instead of the
 * answer; a body that ends within the window is fully read, so the answer always arrives. An
 * endless live upload is answered after the window (and its connection closed, see `createApp`).
 */
async function discardBody(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), DISCARD_BODY_MS);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === 'timeout' || next.done) break;
    }
  } catch {
    // The client went away: nothing left to read.
  } finally {
    clearTimeout(timer);
    try {
      reader.releaseLock();
    } catch {
      // A read still pending: the runtime closes the connection after the answer anyway.
    }
  }
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

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

/** Builds the Hono app for `deps`. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const logger = deps.logger ?? silentLogger;
  const startedAt = Date.now();
  const limits = { ...DEFAULT_CLIENT_LIMITS, ...deps.clientLimits };
  const publishersByClient = new PerClientLimit(limits.maxPublishers);
  const heldByClient = new PerClientLimit(limits.maxHeldRequests);
  const clientOf = (c: Context): string | undefined => {
    try {
      return deps.clientAddress?.(c);
    } catch {
      return undefined;
    }
  };

  app.onError((error) => {
    logger.error('request failed', { error: errorMessage(error) });
    return errorResponse(error);
  });
  app.notFound((c) => jsonError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`));

  app.use('*', async (c, next) => {
    const raw = rawTargetPath(c.env);
    const ingest = (raw ?? c.req.path).startsWith(INGEST_PREFIX);
    let refused = false;
    // An ingest target that normalisation changed (dot segments, percent escapes) is a bad name,
    // not another broadcast.
    if (ingest && raw !== undefined && raw !== c.req.path) {
      try {
        validateBroadcastName(broadcastFromPath(raw));
      } catch (error) {
        deps.metrics?.ingestRejected.inc({ code: 'ingest.bad_name' });
        if (isUpgrade(c)) {
          // Refused on the WebSocket itself (see the upgrade route).
          c.set('ingestRefusal', refusalOf(error));
        } else {
          c.res = errorResponse(error);
          refused = true;
        }
      }
    }
    if (!refused) await next();
    // A refused upload may be answered before its body is read to the end (see `discardBody`):
    // the connection is not reused, what is left of the body would be read as the next request.
    if (ingest && (c.req.method === 'POST' || c.req.method === 'PUT') && c.res.status >= 400) {
      c.res.headers.set('connection', 'close');
    }
  });

  /** Validates the name and token and opens the publisher connection, or answers with the error. */
  const openIngest = (
    path: string,
    authorization: string | undefined,
    transport: 'http' | 'ws',
    client: string | undefined,
  ): IngestConnection | Refusal => {
    const ingest = deps.ingest;
    if (ingest === undefined) return { status: 404, code: 'not_found', message: 'ingest is disabled' };
    const broadcast = broadcastFromPath(path);
    const auth = ingest.authorize(broadcast, authorization);
    const refuse = (status: number, code: string, message: string): Refusal => {
      deps.metrics?.ingestRejected.inc({ code });
      return { status, code, message };
    };
    if (auth === 'missing') {
      return refuse(401, 'ingest.unauthorized', 'ingest needs a bearer token (Authorization: Bearer <token>)');
    }
    if (auth === 'wrong') return refuse(403, 'ingest.forbidden', 'the token is not valid for this broadcast');
    const release = publishersByClient.acquire(client);
    if (release === undefined) {
      return refuse(
        429,
        'ingest.client_limit',
        `this client already has ${limits.maxPublishers} publisher connections open (the per-client limit)`,
      );
    }
    try {
      const connection = ingest.open(broadcast, transport);
      connection.onEnded = release;
      return connection;
    } catch (error) {
      release();
      if (error instanceof LvqrError && error.code === 'ingest.bad_name') {
        deps.metrics?.ingestRejected.inc({ code: error.code });
      }
      return refusalOf(error);
    }
  };

  const ingestPost = async (c: Context) => {
    const opened = openIngest(c.req.path, c.req.header('authorization'), 'http', clientOf(c));
    if (!(opened instanceof IngestConnection)) {
      const unread = c.req.raw.body;
      if (unread !== null) await discardBody(unread.getReader());
      return refusalResponse(opened);
    }
    const connection = opened;
    const body = c.req.raw.body;
    if (body === null) {
      connection.end('eof');
      return Response.json({ broadcast: connection.broadcast, bytes: 0, fragments: 0 });
    }
    const reader = body.getReader();
    let idled = false;
    let shutdown = false;
    // Releasing the reader ends the pending read without cancelling the body: a cancel resets the
    // connection, and the publisher would never read the answer.
    connection.onIdle = () => {
      idled = true;
      reader.releaseLock();
    };
    connection.onShutdown = () => {
      shutdown = true;
      reader.releaseLock();
    };
    const shutdownResponse = () => jsonError(503, 'ingest.shutdown', 'the server is shutting down');
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || shutdown) break;
        if (value !== undefined && value.byteLength > 0) connection.push(value);
      }
    } catch (error) {
      if (shutdown) return shutdownResponse();
      if (error instanceof LvqrError) {
        connection.end('error');
        await discardBody(reader);
        deps.metrics?.ingestRejected.inc({ code: error.code });
        logger.warn('ingest rejected', { broadcast: connection.broadcast, code: error.code, error: error.message });
        return errorResponse(error);
      }
      // The publisher went away mid-body.
      connection.end(idled ? 'idle' : 'disconnect');
      if (idled) return jsonError(408, 'ingest.idle_timeout', IDLE_MESSAGE);
      return jsonError(400, 'ingest.truncated', 'the request body ended abruptly');
    }
    if (idled) return jsonError(408, 'ingest.idle_timeout', IDLE_MESSAGE);
    if (shutdown) return shutdownResponse();
    try {
      // A body that stops inside a box is refused (nothing of the partial box is published).
      connection.finish();
    } catch (error) {
      connection.end('error');
      const code = error instanceof LvqrError ? error.code : 'internal';
      deps.metrics?.ingestRejected.inc({ code });
      logger.warn('ingest rejected', { broadcast: connection.broadcast, code, error: errorMessage(error) });
      return errorResponse(error);
    }
    return Response.json({ broadcast: connection.broadcast, bytes: connection.bytes, fragments: connection.fragments });
  };

  app.post(`${INGEST_PREFIX}*`, (c) => ingestPost(c));
  app.put(`${INGEST_PREFIX}*`, (c) => ingestPost(c));

  app.get(
    `${INGEST_PREFIX}*`,
    async (c, next) => {
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
        return jsonError(
          426,
          'ingest.upgrade_required',
          'GET /ingest/<broadcast> needs a WebSocket upgrade; use POST for HTTP',
        );
      }
      if (deps.upgradeWebSocket === undefined)
        return jsonError(501, 'ingest.no_websocket', 'WebSocket ingest is not available');
      // Checked before the name is taken: a handshake the runtime would refuse must not reserve it
      // (Node fails it after this handler returns, Deno throws, Bun answers nothing).
      const key = c.req.header('sec-websocket-key')?.trim();
      const version = c.req.header('sec-websocket-version')?.trim();
      if (key === undefined || !WS_KEY.test(key) || (version !== '13' && version !== '8')) {
        deps.metrics?.ingestRejected.inc({ code: 'ingest.bad_handshake' });
        return jsonError(
          400,
          'ingest.bad_handshake',
          'a WebSocket upgrade needs a valid Sec-WebSocket-Key and Sec-WebSocket-Version: 13',
        );
      }
      let refusal = c.get('ingestRefusal');
      if (refusal === undefined) {
        const token = c.req.header('authorization') ?? c.req.query('token');
        const opened = openIngest(c.req.path, token, 'ws', clientOf(c));
        if (opened instanceof IngestConnection) c.set('ingestConnection', opened);
        else refusal = opened;
      }
      if (refusal !== undefined) {
        // A browser cannot read the HTTP answer to a refused upgrade (it sees only a failed
        // connection): accept the upgrade, send the JSON error, close with 4000 + status.
        const { status, code, message } = refusal;
        const refuse = deps.upgradeWebSocket(() => ({
          onOpen(_event, ws) {
            ws.send(JSON.stringify(errorBody(code, message)));
            ws.close(4000 + status, code);
          },
        }));
        try {
          const response = await refuse(c, next);
          if (response instanceof Response && response.status < 400) return response;
        } catch {
          // The runtime refused the handshake: answer over HTTP.
        }
        return refusalResponse(refusal);
      }
      await next();
      return undefined;
    },
    async (c, next) => {
      const upgrade = deps.upgradeWebSocket!;
      const connection = c.get('ingestConnection');
      const maxMessageBytes = deps.ingest!.limits.maxMessageBytes;
      let socket: WSContext<unknown> | undefined;
      let messageTooBig = false;
      let openTimer: ReturnType<typeof setTimeout> | undefined;
      const opened = (): void => clearTimeout(openTimer);
      const fail = (error: unknown): void => {
        const code = error instanceof LvqrError ? error.code : 'internal';
        deps.metrics?.ingestRejected.inc({ code });
        connection.end('error');
        if (socket !== undefined && socket.readyState === 1) {
          socket.send(JSON.stringify(toErrorResponse(error).body));
          socket.close(wsCloseCodeFor(error), code);
        }
      };
      connection.onIdle = () => {
        if (socket !== undefined && socket.readyState === 1) {
          socket.send(JSON.stringify(errorBody('ingest.idle_timeout', IDLE_MESSAGE)));
          socket.close(4408, 'ingest.idle_timeout');
        }
      };
      connection.onShutdown = () => {
        // 1001 "going away": the publisher may reconnect to another instance.
        if (socket !== undefined && socket.readyState === 1) socket.close(1001, 'server shutting down');
      };
      const handler = upgrade(() => ({
        onOpen(_event, ws) {
          socket = ws;
          opened();
          // Ended between the upgrade and the open (shutdown or idle): let the publisher go.
          if (connection.ended) ws.close(1001, 'server shutting down');
        },
        onMessage(event, ws) {
          socket = ws;
          if (connection.ended) return;
          const data = event.data;
          if (typeof data === 'string') {
            fail(new LvqrError('ingest.text_message', 'send the fMP4 stream as binary messages'));
            return;
          }
          const bytes = toBytes(data);
          if (bytes === undefined) {
            fail(new LvqrError('ingest.text_message', 'unsupported WebSocket message type'));
            return;
          }
          if (bytes.byteLength > maxMessageBytes) {
            fail(new LvqrError('ingest.message_too_large', `messages may be at most ${maxMessageBytes} bytes`));
            return;
          }
          try {
            connection.push(bytes);
          } catch (error) {
            logger.warn('ingest rejected', { broadcast: connection.broadcast, error: errorMessage(error) });
            fail(error);
          }
        },
        onClose(event) {
          // The runtime enforces the message limit itself as the frame header arrives, before
          // buffering the message: it closes with 1009 (Message Too Big) and the app never sees it.
          if ((event.code === 1009 || messageTooBig) && !connection.ended) {
            deps.metrics?.ingestRejected.inc({ code: 'ingest.message_too_large' });
            logger.warn('ingest rejected', {
              broadcast: connection.broadcast,
              code: 'ingest.message_too_large',
              error: `a WebSocket message exceeded ${maxMessageBytes} bytes (closed with 1009)`,
            });
          }
          connection.end('disconnect');
        },
        onError(event) {
          // A close event always follows (WebSocket spec, ws, Bun, Deno) and ends the connection.
          // ws reports its message limit here; the close event it sends then says 1006.
          const error = (event as Event & { error?: { code?: unknown } }).error;
          if (error?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') messageTooBig = true;
        },
      }));
      let response: Response | undefined;
      try {
        response = (await handler(c, next)) ?? undefined;
      } catch (error) {
        // Deno.upgradeWebSocket throws on a handshake it refuses.
        logger.warn('WebSocket upgrade failed', { broadcast: connection.broadcast, error: errorMessage(error) });
        response = undefined;
      }
      if (response === undefined || response.status >= 400) {
        // The upgrade did not happen: release the name.
        connection.end('error');
        deps.metrics?.ingestRejected.inc({ code: 'ingest.bad_handshake' });
        return response ?? jsonError(400, 'ingest.bad_handshake', 'the WebSocket upgrade failed');
      }
      if (socket === undefined && !connection.ended) {
        // Node and Bun answer before the handshake completes (status 200 here, 101 on the wire); a
        // handshake that then fails, or a client that leaves mid-handshake, fires no WebSocket
        // event at all: release the name if the socket never opens.
        openTimer = setTimeout(() => {
          if (socket === undefined) connection.end('disconnect');
        }, WS_OPEN_TIMEOUT_MS);
      }
      return response;
    },
  );

  // Playback is the only cross-origin surface: players on other sites read playlists and media.
  // The HLS layer's answers carry CORS; so do the few this route makes itself. Ingest, the APIs and
  // metrics send no CORS headers, so browsers keep other origins out of them.
  const playbackError = (status: number, code: string, message: string): Response => {
    const response = jsonError(status, code, message);
    response.headers.set('access-control-allow-origin', '*');
    return response;
  };
  app.get('/hls/*', async (c) => {
    if (deps.hls === undefined) return playbackError(404, 'hls.not_found', 'HLS is disabled');
    // Only the query is needed: split it off instead of parsing the whole URL again.
    const url = c.req.url;
    const q = url.indexOf('?');
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    if (!query.has('_HLS_msn')) {
      return hlsHttpResponse(await deps.hls.handle(c.req.path, query, c.req.raw.signal), c.req.header('range'));
    }
    // A blocking reload may be held for seconds: one client may hold only so many at once.
    const release = heldByClient.acquire(clientOf(c));
    if (release === undefined) {
      const response = playbackError(
        429,
        'hls.too_many_held_requests',
        `this client already has ${limits.maxHeldRequests} blocking playlist requests waiting (the per-client limit)`,
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
  app.options('/hls/*', () => {
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

  app.get('/api/v1/broadcasts', (c) => c.json(deps.broadcasts?.() ?? { broadcasts: [] }));
  app.get('/api/v1/transcode', (c) => c.json(deps.transcode?.() ?? { sources: [] }));

  app.get('/metrics', async () => {
    if (deps.metrics === undefined) return jsonError(404, 'not_found', 'metrics are disabled');
    const registry = deps.metrics.registry;
    return new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } });
  });

  app.get('/healthz', (c) =>
    c.json({ status: 'ok', uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), ...deps.health?.() }),
  );

  app.get('*', (c) => {
    const asset = deps.assets?.[c.req.path];
    if (asset === undefined) return jsonError(404, 'not_found', `no route for GET ${c.req.path}`);
    return new Response(asset.body as BodyInit, {
      headers: { 'content-type': asset.contentType, 'cache-control': 'no-cache' },
    });
  });

  return app;
}
