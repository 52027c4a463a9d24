/**
 * Node's side of the HTTP surface (`HttpRuntime`) on @hono/node-server and ws: WebSocket upgrades
 * whose message-limit closes say 1009, client addresses, the raw request target, and whole HTTP
 * answers (JSON body included) to refused upgrades.
 */

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { upgradeWebSocket } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import type { UpgradeWebSocket, WSEvents } from 'hono/ws';
import type { HttpRuntime } from '../server/runtime-adapter.ts';

/** What the adapter passes as `env` (HTTP/1 and HTTP/2 bindings alike). */
export type NodeEnv = { incoming: { socket: Socket }; outgoing?: unknown };

/** The close code the app reads as "over the runtime's message limit" (RFC 6455 Message Too Big). */
const MESSAGE_TOO_BIG = 1009;

/**
 * ws reports its message limit (`maxPayload`) as an error event, and the close event that follows
 * says 1006: the close is passed on as 1009, as the other runtimes report it.
 */
function reportMessageLimit(events: WSEvents<unknown>): WSEvents<unknown> {
  let tooBig = false;
  return {
    ...events,
    onError(event, ws) {
      const error = (event as Event & { error?: { code?: unknown } }).error;
      if (error?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') tooBig = true;
      events.onError?.(event, ws);
    },
    onClose(event, ws) {
      if (tooBig) Object.defineProperty(event, 'code', { value: MESSAGE_TOO_BIG });
      events.onClose?.(event, ws);
    },
  };
}

const upgrade = upgradeWebSocket as unknown as UpgradeWebSocket<unknown>;

const nodeUpgradeWebSocket = ((first: unknown, second?: unknown, options?: unknown) => {
  if (typeof first === 'function') {
    const createEvents = first as (c: Context) => WSEvents<unknown> | Promise<WSEvents<unknown>>;
    return upgrade(async (c: Context) => reportMessageLimit(await createEvents(c)), options);
  }
  return upgrade(first as Context, reportMessageLimit(second as WSEvents<unknown>), options);
}) as UpgradeWebSocket<unknown>;

/**
 * The path of the request target as the client sent it (`env.incoming.url`): request URLs are
 * normalised, which would silently publish under another name.
 */
function rawTargetPath(c: Context): string | undefined {
  const url = (c.env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url;
  if (typeof url !== 'string') return undefined;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The Node implementation of the app's runtime port. */
export const nodeHttp: HttpRuntime = {
  upgradeWebSocket: nodeUpgradeWebSocket,
  clientAddress: (c) => getConnInfo(c).remote.address,
  rawTargetPath,
};

/**
 * @hono/node-server answers a refused WebSocket upgrade with its status and headers only (no body);
 * this writes the whole answer, JSON error included, on the socket itself and closes it. Publishers
 * refused for a reason (auth, name, 409, limits) get it on the open socket instead (see the app's
 * upgrade route); what is left here is a malformed handshake or ingest being off.
 */
export function withUpgradeRefusalBodies(
  fetch: (request: Request, env: NodeEnv) => Response | Promise<Response>,
): (request: Request, env: NodeEnv) => Promise<Response> {
  return async (request, env) => {
    const response = await fetch(request, env);
    const socket = env.incoming.socket;
    // Upgrade requests come without `outgoing`.
    if (env.outgoing !== undefined || response.status < 400 || socket.destroyed) return response;
    const body = Buffer.from(await response.clone().arrayBuffer());
    const head = [`HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}`, 'Connection: close'];
    response.headers.forEach((value, name) => {
      if (name !== 'content-length' && name !== 'connection') head.push(`${name}: ${value}`);
    });
    head.push(`Content-Length: ${body.byteLength}`);
    // Once flushed, the socket is destroyed: the adapter then leaves it alone.
    await new Promise<void>((resolve) =>
      socket.end(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]), resolve),
    );
    socket.destroy();
    return response;
  };
}
