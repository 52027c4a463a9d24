/**
 * Bun entry point (`npm run start:bun`): Bun.serve with Hono's Bun WebSocket adapter. Runtime
 * globals are touched only here; Bun types are declared structurally so the project compiles
 * without Bun's typings.
 */

import { getConnInfo, upgradeWebSocket, websocket } from 'hono/bun';
import type { UpgradeWebSocket } from 'hono/ws';
import { main, type RuntimeHost } from '../server/main.ts';
import type { HttpRuntime } from '../server/runtime-adapter.ts';
import { type ConnectionFront, serveBehindFront } from './connection-front.ts';
import { processHostBasics } from './process-host.ts';
import { DEFAULT_CONNECTION_LIMITS, withSlicedBodies } from './send-timeout.ts';
import { loadVideoCodecs } from './shared.ts';
import { runBench, runPublish, startTestPattern } from './tools.ts';

type BunServer = { port: number; stop(closeActiveConnections?: boolean): Promise<void> | void };
type BunGlobal = {
  serve(options: {
    port: number;
    hostname: string;
    fetch: (request: Request, server: unknown) => Response | Promise<Response>;
    websocket: unknown;
    idleTimeout?: number;
    maxRequestBodySize?: number;
  }): BunServer;
  gc(force: boolean): void;
};

const Bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;

/**
 * Bun's side of the HTTP surface: Hono's Bun WebSocket adapter (it reports its message limit as a
 * close with 1009) and connection info. Request URLs arrive already normalised: no raw target.
 */
/** The connection front of the running server (it sees the clients; Bun.serve sees the front). */
let front: ConnectionFront | undefined;

const bunHttp: HttpRuntime = {
  upgradeWebSocket: upgradeWebSocket as unknown as UpgradeWebSocket<unknown>,
  clientAddress: (c) => {
    const remote = getConnInfo(c).remote;
    return front?.clientOf(remote.port) ?? remote.address;
  },
};

/** The Bun implementation of the runtime host. */
export const bunHost: RuntimeHost = {
  name: 'bun',
  ...processHostBasics,
  http: bunHttp,
  async serve(app, { port, host, maxMessageBytes, connections = DEFAULT_CONNECTION_LIMITS }) {
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      // Bun has no send timeout of its own: answers fail when the client takes nothing for it.
      fetch: withSlicedBodies((request, srv) => app.fetch(request, srv as never), connections.sendTimeoutMs),
      websocket: { ...websocket, maxPayloadLength: maxMessageBytes },
      // Long chunked ingest uploads and held LL-HLS requests must not be cut by the idle timer (it
      // counts body bytes as idle). Clients reach Bun.serve through the connection front, which
      // keeps the head deadline, the per-client cap and the send watchdog.
      idleTimeout: 0,
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    });
    const served = await serveBehindFront(host, port, server.port, connections, () => server.stop(true));
    front = served.front;
    return { port: served.port, close: served.close };
  },
  loadCodecs: (config, logger) => loadVideoCodecs(config, logger),
  startTestPattern,
  publish: runPublish,
  bench: (command) => runBench(command, bunHost),
  gc: () => Bun.gc(false),
  gcFull: () => Bun.gc(true),
  memoryUsage: () => process.memoryUsage(),
  onSignal(signals, handler) {
    for (const signal of signals) process.on(signal, handler);
  },
  print: (line) => console.log(line),
};

if (process.argv[1]?.endsWith('src/runtime/bun.ts')) {
  main(bunHost).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
