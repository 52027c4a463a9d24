/**
 * The HTTP surface (a contract, see DESIGN.md) as a runtime-free Hono app. Runtime files
 * (`src/runtime/*`) inject the WebSocket upgrader and static assets, then serve `app.fetch`.
 */

import { Hono } from 'hono';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';
import { errorMessage, LvqrError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { IngestConnection, IngestManager } from '../ingest/index.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { errorBody, toErrorResponse, wsCloseCodeFor } from './errors.ts';

/** A response from the HLS layer. */
export type HlsResponse = { status: number; headers: Record<string, string>; body: string | Uint8Array };

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
};

type Env = { Variables: { ingestConnection: IngestConnection } };

const INGEST_PREFIX = '/ingest/';

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
  // Names are restricted to [A-Za-z0-9_-] segments, so no percent-decoding is needed; a
  // percent sign simply fails validation.
  return path.slice(INGEST_PREFIX.length);
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

/** Builds the Hono app for `deps`. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const logger = deps.logger ?? silentLogger;
  const startedAt = Date.now();

  app.onError((error) => {
    logger.error('request failed', { error: errorMessage(error) });
    return errorResponse(error);
  });
  app.notFound((c) => jsonError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`));

  /** Validates the name and token and opens the publisher connection, or answers with the error. */
  const openIngest = (
    path: string,
    authorization: string | undefined,
    transport: 'http' | 'ws',
  ): IngestConnection | Response => {
    const ingest = deps.ingest;
    if (ingest === undefined) return jsonError(404, 'not_found', 'ingest is disabled');
    const broadcast = broadcastFromPath(path);
    const auth = ingest.authorize(broadcast, authorization);
    if (auth === 'missing') {
      deps.metrics?.ingestRejected.inc({ code: 'ingest.unauthorized' });
      return jsonError(401, 'ingest.unauthorized', 'ingest needs a bearer token (Authorization: Bearer <token>)');
    }
    if (auth === 'wrong') {
      deps.metrics?.ingestRejected.inc({ code: 'ingest.forbidden' });
      return jsonError(403, 'ingest.forbidden', 'the token is not valid for this broadcast');
    }
    try {
      return ingest.open(broadcast, transport);
    } catch (error) {
      if (error instanceof LvqrError && error.code === 'ingest.bad_name') {
        deps.metrics?.ingestRejected.inc({ code: error.code });
      }
      return errorResponse(error);
    }
  };

  const ingestPost = async (c: { req: { path: string; raw: Request; header(name: string): string | undefined } }) => {
    const opened = openIngest(c.req.path, c.req.header('authorization'), 'http');
    if (opened instanceof Response) return opened;
    const connection = opened;
    const body = c.req.raw.body;
    if (body === null) {
      connection.end('eof');
      return Response.json({ broadcast: connection.broadcast, bytes: 0, fragments: 0 });
    }
    const reader = body.getReader();
    let idled = false;
    connection.onIdle = () => {
      idled = true;
      reader.cancel().catch(() => {});
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value !== undefined && value.byteLength > 0) connection.push(value);
      }
    } catch (error) {
      if (error instanceof LvqrError) {
        connection.end('error');
        reader.cancel().catch(() => {});
        deps.metrics?.ingestRejected.inc({ code: error.code });
        logger.warn('ingest rejected', { broadcast: connection.broadcast, code: error.code, error: error.message });
        return errorResponse(error);
      }
      // The publisher went away mid-body.
      connection.end(idled ? 'idle' : 'disconnect');
      if (idled) return jsonError(408, 'ingest.idle_timeout', 'no data received within the idle timeout');
      return jsonError(400, 'ingest.truncated', 'the request body ended abruptly');
    }
    if (idled) return jsonError(408, 'ingest.idle_timeout', 'no data received within the idle timeout');
    connection.end('eof');
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
      const token = c.req.header('authorization') ?? c.req.query('token');
      const opened = openIngest(c.req.path, token, 'ws');
      if (opened instanceof Response) return opened;
      c.set('ingestConnection', opened);
      await next();
      return undefined;
    },
    async (c, next) => {
      const upgrade = deps.upgradeWebSocket!;
      const connection = c.get('ingestConnection');
      const maxMessageBytes = deps.ingest!.limits.maxMessageBytes;
      let socket: WSContext<unknown> | undefined;
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
        if (socket !== undefined && socket.readyState === 1) socket.close(4408, 'ingest.idle_timeout');
      };
      const handler = upgrade(() => ({
        onOpen(_event, ws) {
          socket = ws;
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
        onClose() {
          connection.end('disconnect');
        },
        onError() {
          connection.end('disconnect');
        },
      }));
      const response = await handler(c, next);
      if (response === undefined || (response instanceof Response && response.status !== 101)) {
        // The upgrade did not happen: release the name.
        if (!(response instanceof Response) || response.status >= 400) connection.end('error');
      }
      return response;
    },
  );

  app.get('/hls/*', async (c) => {
    if (deps.hls === undefined) return jsonError(404, 'hls.not_found', 'HLS is disabled');
    const url = new URL(c.req.url);
    const result = await deps.hls.handle(c.req.path, url.searchParams, c.req.raw.signal);
    return new Response(result.body as BodyInit, { status: result.status, headers: result.headers });
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
