/**
 * Connection limits of the Node server: the request-head deadline (Node's `headersTimeout`), a cap
 * on the connections of one client address, and a send timeout that resets the socket of a client
 * which takes no bytes of what it was sent.
 */

import type { Server, Socket } from 'node:net';
import type { ConnectionLimits } from '../server/main.ts';

/**
 * `http.Server` options: no request deadline (a chunked ingest POST may last hours; stalled
 * publishers meet the ingest idle timeout), and a deadline for the request head. Node derives its
 * default `headersTimeout` from `requestTimeout`, so with no request deadline there would be no
 * head deadline either; its connections checker runs every `connectionsCheckingInterval`, which
 * is kept to a fraction of the deadline.
 */
export function nodeServerOptions(limits: ConnectionLimits): {
  requestTimeout: number;
  headersTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    requestTimeout: 0,
    headersTimeout: limits.headerTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.round(limits.headerTimeoutMs / 4))),
  };
}

/** What the send watchdog last saw of one socket: bytes whose writes completed, and since when. */
type Watch = { sent: number; since: number };

/**
 * Keeps `limits` on `server`'s sockets: a connection above `maxPerClient` for its remote address
 * is destroyed as it arrives (before any byte is read), and a socket with bytes waiting to be sent
 * none of whose writes has completed for `sendTimeoutMs` is reset (the kernel drops what it still
 * holds for it). A write completes once the kernel has taken all of it, so a client must take a
 * whole answer (at most a segment) within `sendTimeoutMs`. Bodies are not sliced on Node: a
 * streamed body would let Node take further pipelined requests while an answer is unsent, and a
 * client that never reads would then make the server buffer every pipelined answer. Returns a
 * function that stops the watchdog.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): () => void {
  const perClient = new Map<string, number>();
  const watched = new Map<Socket, Watch>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) return;
    const open = (perClient.get(address) ?? 0) + 1;
    if (open > limits.maxPerClient) {
      socket.destroy();
      return;
    }
    perClient.set(address, open);
    watched.set(socket, { sent: 0, since: Date.now() });
    socket.once('close', () => {
      watched.delete(socket);
      const left = (perClient.get(address) ?? 1) - 1;
      if (left > 0) perClient.set(address, left);
      else perClient.delete(address);
    });
  });
  const check = () => {
    const now = Date.now();
    for (const [socket, watch] of watched) {
      // `bytesWritten` counts bytes written or waiting; `writableLength` those waiting.
      const sent = socket.bytesWritten - socket.writableLength;
      if (socket.writableLength === 0 || sent !== watch.sent) {
        watch.sent = sent;
        watch.since = now;
      } else if (now - watch.since >= limits.sendTimeoutMs && !socket.destroyed) {
        watched.delete(socket);
        socket.resetAndDestroy();
      }
    }
  };
  const timer = setInterval(check, Math.min(1000, Math.max(50, Math.round(limits.sendTimeoutMs / 4)))).unref();
  return () => clearInterval(timer);
}
