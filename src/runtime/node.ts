/**
 * Node entry point (`npm start`, the `lvqr-transcode` bin, Docker): the only place besides the
 * other runtime files that touches Node globals. Run with `--expose-gc` so native frame memory of
 * the WebCodecs addon is reclaimed promptly.
 */

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve as serveNode } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { main, type RuntimeHost } from '../server/main.ts';
import { loadMallocTrim } from './malloc-trim.ts';
import { limitConnections, nodeServerOptions } from './node-connections.ts';
import { nodeHttp, withUpgradeRefusalBodies } from './node-http.ts';
import { processHostBasics } from './process-host.ts';
import { DEFAULT_CONNECTION_LIMITS } from './send-timeout.ts';
import { loadVideoCodecs } from './shared.ts';
import { runBench, runPublish, startTestPattern } from './tools.ts';

/** The Node implementation of the runtime host. */
export const nodeHost: RuntimeHost = {
  name: 'node',
  ...processHostBasics,
  http: nodeHttp,
  async serve(app, { port, host, maxMessageBytes, connections = DEFAULT_CONNECTION_LIMITS }) {
    const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes });
    return new Promise((resolve, reject) => {
      const server = serveNode(
        {
          // Sliced bodies let the send watchdog see a slow reader's progress.
          fetch: withUpgradeRefusalBodies(app.fetch),
          port,
          hostname: host,
          websocket: { server: wss },
          serverOptions: nodeServerOptions(connections),
        },
        (info: AddressInfo) => {
          resolve({
            port: info.port,
            close: () =>
              new Promise<void>((done) => {
                stopWatchdog();
                server.close(() => done());
                // Upgraded sockets are not the HTTP server's to close: say goodbye to each WebSocket.
                for (const client of wss.clients) client.close(1001, 'server shutting down');
                wss.close();
                const http = server as unknown as { closeIdleConnections(): void; closeAllConnections(): void };
                http.closeIdleConnections();
                // Whatever has not finished after a short drain is cut.
                setTimeout(() => {
                  http.closeAllConnections();
                  for (const client of wss.clients) client.terminate();
                }, 1000).unref();
              }),
          });
        },
      );
      const stopWatchdog = limitConnections(server as unknown as Server, connections);
      server.once('error', reject);
    });
  },
  loadCodecs: (config, logger) => loadVideoCodecs(config, logger),
  startTestPattern,
  publish: runPublish,
  bench: (command) => runBench(command, nodeHost),
  gc: typeof globalThis.gc === 'function' ? () => globalThis.gc?.({ type: 'minor' } as never) : undefined,
  gcFull: typeof globalThis.gc === 'function' ? () => globalThis.gc?.() : undefined,
  memoryUsage: () => process.memoryUsage(),
  loadMallocTrim,
  onSignal(signals, handler) {
    for (const signal of signals) process.on(signal, handler);
  },
  print: (line) => console.log(line),
};

/** Runs the command line of this process (`process.argv`) and exits with its status. */
export function runNodeMain(): void {
  main(nodeHost).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

// Run directly (`node --import tsx src/runtime/node.ts`); the launcher calls runNodeMain itself.
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('src/runtime/node.ts')) runNodeMain();
