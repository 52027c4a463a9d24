/**
 * The connection front of the Bun and Deno servers: a loopback TCP relay (node:net, which both
 * runtimes implement) in front of `Bun.serve` / `Deno.serve`. It keeps the connection limits
 * their servers do not offer, the same way the Node server keeps them: a deadline for each request
 * head (408, then closed), a cap on the connections of one client address, and the send watchdog
 * of `node-connections.ts`. It also holds back a client's FIN until the server has answered:
 * `Deno.serve` drops request body bytes it has received but not yet handed over once it reads
 * the FIN, which cost the last fragment of an ffmpeg POST.
 *
 * Bytes are forwarded as they arrive; the front only watches request heads (their framing decides
 * where the next head starts). A chunked body or a protocol upgrade (WebSocket) ends the watching
 * for that connection: what follows is governed by the ingest idle timeout and the app.
 */

import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import type { ConnectionLimits } from '../server/main.ts';
import { limitConnections } from './node-connections.ts';

/** How long a client's FIN is held back at most while the server has not answered. */
const FIN_HOLD_MS = 2000;
/** A request head larger than this is passed on unwatched: the server refuses it itself. */
const MAX_WATCHED_HEAD = 64 * 1024;
/** How long the server must be quiet after answering a request whose body is still open before the connection ends. */
const EARLY_ANSWER_QUIET_MS = 500;
const HEAD_TIMEOUT_ANSWER = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** A running front. */
export type ConnectionFront = {
  readonly port: number;
  /** The client address behind the server-side connection whose remote (front-side) port is `port`. */
  clientOf(port: number | undefined): string | undefined;
  close(): Promise<void>;
};

/** Where a connection's client bytes are in the request framing. */
type Framing = 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailer' | 'pass';

/**
 * Follows the request framing of one connection's client bytes (heads, Content-Length and chunked
 * bodies), so that every head meets the deadline, a body is never read as one, and the relay
 * knows whether a request body is still open.
 */
class RequestWatch {
  #mode: Framing = 'head';
  /** The head or line read so far. */
  #text = '';
  #left = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #timeoutMs: number;
  readonly #onTimeout: () => void;

  constructor(timeoutMs: number, onTimeout: () => void) {
    this.#timeoutMs = timeoutMs;
    this.#onTimeout = onTimeout;
    // The first head is due from the moment the connection opens (a silent client is closed too).
    this.#arm();
  }

  /** True while a request body has not been received to its end. */
  get bodyOpen(): boolean {
    return this.#mode !== 'head' && this.#mode !== 'pass';
  }

  /** Observes bytes the client sent, in order. */
  observe(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.byteLength && this.#mode !== 'pass') {
      if (this.#mode === 'body' || this.#mode === 'chunk-data') {
        const take = Math.min(this.#left, bytes.byteLength - at);
        this.#left -= take;
        at += take;
        if (this.#left === 0) this.#mode = this.#mode === 'body' ? 'head' : 'chunk-size';
        continue;
      }
      // Between requests (keep-alive), the next head's deadline runs from its first byte.
      if (this.#mode === 'head' && this.#text === '' && this.#timer === undefined) this.#arm();
      const terminator = this.#mode === 'head' ? '\r\n\r\n' : '\r\n';
      const before = this.#text.length;
      const rest = Buffer.from(bytes.buffer, bytes.byteOffset + at, bytes.byteLength - at).toString('latin1');
      this.#text += rest;
      const end = this.#text.indexOf(terminator, Math.max(0, before - terminator.length + 1));
      if (end < 0) {
        if (this.#text.length > MAX_WATCHED_HEAD) this.#pass();
        return;
      }
      at += end + terminator.length - before;
      const text = this.#text.slice(0, end);
      this.#text = '';
      if (this.#mode === 'head') this.#finishHead(text);
      else if (this.#mode === 'chunk-size') this.#finishChunkSize(text);
      else if (text === '') this.#mode = 'head';
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #finishHead(head: string): void {
    this.stop();
    // Leading empty lines before a request line are allowed (RFC 9112 2.2).
    const lines = head.replace(/^(\r\n)+/, '').split('\r\n');
    const field = (name: string) =>
      lines
        .slice(1)
        .filter((line) => line.slice(0, name.length + 1).toLowerCase() === `${name}:`)
        .map((line) =>
          line
            .slice(name.length + 1)
            .trim()
            .toLowerCase(),
        );
    const coding = field('transfer-encoding');
    if (field('upgrade').length > 0 || (coding.length > 0 && coding.join(',') !== 'chunked')) {
      this.#pass();
      return;
    }
    if (coding.length > 0) {
      this.#mode = 'chunk-size';
      return;
    }
    const length = Number(field('content-length')[0] ?? 0);
    if (!Number.isSafeInteger(length) || length < 0) this.#pass();
    else if (length > 0) {
      this.#mode = 'body';
      this.#left = length;
    }
  }

  #finishChunkSize(line: string): void {
    const size = Number.parseInt(line.split(';')[0]!.trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0) this.#pass();
    else if (size === 0) this.#mode = 'trailer';
    else {
      this.#mode = 'chunk-data';
      // The chunk's data and the CRLF after it.
      this.#left = size + 2;
    }
  }

  #pass(): void {
    this.stop();
    this.#mode = 'pass';
    this.#text = '';
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#mode === 'head') this.#onTimeout();
    }, this.#timeoutMs);
  }
}

/** Copies `from`'s bytes to `to`, pausing `from` while `to` is full. */
function forward(from: Socket, to: Socket, observe?: (bytes: Uint8Array) => void): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.destroyed && !to.write(chunk)) from.pause();
    observe?.(chunk);
  });
  to.on('drain', () => from.resume());
}

/** Relays one client connection to the server at `upstreamPort`. */
function relay(
  client: Socket,
  upstreamPort: number,
  limits: ConnectionLimits,
  clients: Map<number, string>,
  onClose: () => void,
): void {
  const upstream = tcpConnect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true });
  let mappedPort: number | undefined;
  const watch = new RequestWatch(limits.headerTimeoutMs, () => {
    upstream.destroy();
    client.end(HEAD_TIMEOUT_ANSWER, () => client.destroy());
  });
  let clientEnded = false;
  let finHold: ReturnType<typeof setTimeout> | undefined;
  const endUpstream = () => {
    clearTimeout(finHold);
    if (!upstream.destroyed && !upstream.writableEnded) upstream.end();
  };
  upstream.once('connect', () => {
    mappedPort = upstream.localPort;
    if (mappedPort !== undefined && client.remoteAddress !== undefined) clients.set(mappedPort, client.remoteAddress);
    client.resume();
  });
  forward(client, upstream, (bytes) => watch.observe(bytes));
  forward(upstream, client);
  let earlyAnswer: ReturnType<typeof setTimeout> | undefined;
  upstream.on('data', (chunk: Buffer) => {
    // The server's first bytes after the client's FIN: it has read the request to its end.
    if (clientEnded) endUpstream();
    // A final answer while the request body is still open (an error, the ingest idle timeout): the
    // server reads no more of it, so the connection ends once the answer is out. Deno.serve would
    // keep it open for as long as the client sends nothing.
    const final = chunk.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ' && chunk[9] !== 0x31;
    if (watch.bodyOpen && (final || earlyAnswer !== undefined)) {
      clearTimeout(earlyAnswer);
      earlyAnswer = setTimeout(() => {
        if (watch.bodyOpen) serverDone();
      }, EARLY_ANSWER_QUIET_MS);
    }
  });
  client.on('end', () => {
    clientEnded = true;
    watch.stop();
    finHold = setTimeout(endUpstream, FIN_HOLD_MS);
  });
  let lingering: ReturnType<typeof setTimeout> | undefined;
  const teardown = () => {
    clearTimeout(finHold);
    clearTimeout(earlyAnswer);
    clearTimeout(lingering);
    watch.stop();
    if (mappedPort !== undefined) clients.delete(mappedPort);
    client.destroy();
    upstream.destroy();
    onClose();
  };
  // The server is done with the connection: whatever the client still has to read goes out first,
  // then the FIN; a client that neither reads it nor closes is cut after the send timeout.
  const serverDone = () => {
    watch.stop();
    if (!upstream.destroyed) upstream.end();
    if (client.destroyed || lingering !== undefined) return;
    client.end();
    lingering = setTimeout(teardown, limits.sendTimeoutMs);
  };
  client.once('close', teardown);
  upstream.once('end', serverDone);
  upstream.once('close', serverDone);
  client.on('error', () => {});
  upstream.on('error', serverDone);
}

/** Starts the front on `host:port`, relaying to the server at `upstreamPort` on loopback. */
export function startConnectionFront(
  host: string,
  port: number,
  upstreamPort: number,
  limits: ConnectionLimits,
): Promise<ConnectionFront> {
  const clients = new Map<number, string>();
  const open = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  // Registered before the relay's listener: a connection over the cap is destroyed first.
  const stopWatchdog = limitConnections(server, limits);
  server.on('connection', (client: Socket) => {
    if (client.destroyed) return;
    open.add(client);
    relay(client, upstreamPort, limits, clients, () => open.delete(client));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address !== null ? address.port : port,
        clientOf: (innerPort) => (innerPort === undefined ? undefined : clients.get(innerPort)),
        close: () =>
          new Promise<void>((done) => {
            stopWatchdog();
            for (const socket of open) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/**
 * Puts a front on `host:port` before the server listening on loopback `innerPort`; the returned
 * `close` stops the front, then the server (`closeInner`). A front that cannot start stops the server.
 */
export async function serveBehindFront(
  host: string,
  port: number,
  innerPort: number,
  limits: ConnectionLimits,
  closeInner: () => Promise<void> | void,
): Promise<{ front: ConnectionFront; port: number; close(): Promise<void> }> {
  const front = await startConnectionFront(host, port, innerPort, limits).catch(async (error: unknown) => {
    await closeInner();
    throw error;
  });
  return {
    front,
    port: front.port,
    close: async () => {
      await front.close();
      await closeInner();
    },
  };
}
