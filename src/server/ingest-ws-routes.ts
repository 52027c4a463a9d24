/**
 * WebSocket ingest: `GET /ingest/<broadcast>` with an upgrade; each binary message carries the
 * next bytes of the fMP4 stream. Refusals (auth, name, 409, limits) arrive on the socket: the
 * upgrade is accepted, the JSON error sent, then close 4000 + status, because browsers cannot read
 * the HTTP answer to a refused upgrade. Only a malformed handshake is answered over HTTP.
 */

import { Hono } from 'hono';
import type { WSContext } from 'hono/ws';
import { errorMessage, LvqrError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { IngestConnection, type IngestManager } from '../ingest/index.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { errorBody, jsonError, toErrorResponse, wsCloseCode, wsCloseCodeFor } from './errors.ts';
import { IDLE_MESSAGE, INGEST_PREFIX, type IngestEnv, type OpenIngest, refusalResponse } from './ingest-gate.ts';
import { clientAddressOf, type HttpRuntime } from './runtime-adapter.ts';

/** What the WebSocket ingest route needs. */
export type IngestWsDeps = {
  open: OpenIngest;
  /** Bounds message sizes (`limits.maxMessageBytes`). */
  ingest: IngestManager | undefined;
  metrics: LvqrMetrics | undefined;
  logger: Logger;
  runtime: HttpRuntime | undefined;
};

/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 4.1). */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** How long an accepted upgrade may take to open before its broadcast name is released. */
const WS_OPEN_TIMEOUT_MS = 5_000;
/** The close code of a message over the runtime's limit (RFC 6455 7.4.1, Message Too Big). */
const MESSAGE_TOO_BIG = 1009;

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

/** The `GET /ingest/*` route: WebSocket publishers (and 426 for a plain GET). */
export function ingestWsRoutes(deps: IngestWsDeps): Hono<IngestEnv> {
  const { metrics, logger } = deps;
  const upgradeWebSocket = deps.runtime?.upgradeWebSocket;
  const routes = new Hono<IngestEnv>();
  routes.get(
    `${INGEST_PREFIX}*`,
    async (c, next) => {
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
        return jsonError(
          'ingest.upgrade_required',
          'GET /ingest/<broadcast> needs a WebSocket upgrade; use POST for HTTP',
        );
      }
      if (upgradeWebSocket === undefined) return jsonError('ingest.no_websocket', 'WebSocket ingest is not available');
      // Checked before the name is taken: a handshake the runtime would refuse (after this handler
      // returns, by throwing, or by answering nothing) must not reserve it.
      const key = c.req.header('sec-websocket-key')?.trim();
      const version = c.req.header('sec-websocket-version')?.trim();
      if (key === undefined || !WS_KEY.test(key) || (version !== '13' && version !== '8')) {
        metrics?.ingestRejected.inc({ code: 'ingest.bad_handshake' });
        return jsonError(
          'ingest.bad_handshake',
          'a WebSocket upgrade needs a valid Sec-WebSocket-Key and Sec-WebSocket-Version: 13',
        );
      }
      let refusal = c.get('ingestRefusal');
      if (refusal === undefined) {
        const token = c.req.header('authorization') ?? c.req.query('token');
        const opened = await deps.open(c.req.path, token, 'ws', clientAddressOf(deps.runtime, c));
        if (opened instanceof IngestConnection) c.set('ingestConnection', opened);
        else refusal = opened;
      }
      if (refusal !== undefined) {
        // A browser cannot read the HTTP answer to a refused upgrade (it sees only a failed
        // connection): accept the upgrade, send the JSON error, close with 4000 + status.
        const { code, message } = refusal;
        const refuse = upgradeWebSocket(() => ({
          onOpen(_event, ws) {
            ws.send(JSON.stringify(errorBody(code, message)));
            ws.close(wsCloseCode(code), code);
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
      const upgrade = upgradeWebSocket!;
      const connection = c.get('ingestConnection');
      const maxMessageBytes = deps.ingest!.limits.maxMessageBytes;
      let socket: WSContext<unknown> | undefined;
      let openTimer: ReturnType<typeof setTimeout> | undefined;
      const opened = (): void => clearTimeout(openTimer);
      const fail = (error: unknown): void => {
        const code = error instanceof LvqrError ? error.code : 'internal';
        metrics?.ingestRejected.inc({ code });
        connection.end('error');
        if (socket !== undefined && socket.readyState === 1) {
          socket.send(JSON.stringify(toErrorResponse(error).body));
          socket.close(wsCloseCodeFor(error), code);
        }
      };
      connection.onIdle = () => {
        if (socket !== undefined && socket.readyState === 1) {
          socket.send(JSON.stringify(errorBody('ingest.idle_timeout', IDLE_MESSAGE)));
          socket.close(wsCloseCode('ingest.idle_timeout'), 'ingest.idle_timeout');
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
          // buffering the message: it closes with 1009 and the app never sees the message.
          if (event.code === MESSAGE_TOO_BIG && !connection.ended) {
            metrics?.ingestRejected.inc({ code: 'ingest.message_too_large' });
            logger.warn('ingest rejected', {
              broadcast: connection.broadcast,
              code: 'ingest.message_too_large',
              error: `a WebSocket message exceeded ${maxMessageBytes} bytes (closed with 1009)`,
            });
          }
          connection.end('disconnect');
        },
        onError() {
          // A close event always follows (WebSocket spec, and every runtime) and ends the connection.
        },
      }));
      let response: Response | undefined;
      try {
        response = (await handler(c, next)) ?? undefined;
      } catch (error) {
        // An upgrader may throw on a handshake it refuses.
        logger.warn('WebSocket upgrade failed', { broadcast: connection.broadcast, error: errorMessage(error) });
        response = undefined;
      }
      if (response === undefined || response.status >= 400) {
        // The upgrade did not happen: release the name.
        connection.end('error');
        metrics?.ingestRejected.inc({ code: 'ingest.bad_handshake' });
        return response ?? jsonError('ingest.bad_handshake', 'the WebSocket upgrade failed');
      }
      if (socket === undefined && !connection.ended) {
        // A runtime may answer before the handshake completes (status 200 here, 101 on the wire); a
        // handshake that then fails, or a client that leaves mid-handshake, fires no WebSocket
        // event at all: release the name if the socket never opens.
        openTimer = setTimeout(() => {
          if (socket === undefined) connection.end('disconnect');
        }, WS_OPEN_TIMEOUT_MS);
      }
      return response;
    },
  );
  return routes;
}
