/**
 * Deno entry point (`npm run start:deno`): Deno.serve with Hono's Deno WebSocket adapter. Runtime
 * globals are touched only here; Deno types are declared structurally so the project compiles
 * without Deno's typings. Needs --allow-read --allow-env --allow-ffi --allow-net --allow-sys
 * (and --v8-flags=--expose-gc for prompt native memory release).
 */

import { createRequire } from 'node:module';
import { getConnInfo, upgradeWebSocket } from 'hono/deno';
import type { UpgradeWebSocket } from 'hono/ws';
import { main, type RuntimeHost } from '../server/main.ts';
import type { HttpRuntime } from '../server/runtime-adapter.ts';
import { type ConnectionFront, serveBehindFront } from './connection-front.ts';
import { DEFAULT_CONNECTION_LIMITS, withSlicedBodies } from './send-timeout.ts';
import { loadVideoCodecs } from './shared.ts';
import { runBench, runPublish, startTestPattern } from './tools.ts';

type DenoServer = { addr: { port: number }; shutdown(): Promise<void>; finished: Promise<void> };
type DenoGlobal = {
  args: string[];
  env: { toObject(): Record<string, string> };
  readTextFileSync(path: string): string;
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: (request: Request, info: unknown) => Response | Promise<Response>,
  ): DenoServer;
  addSignalListener(signal: string, handler: () => void): void;
  exit(code: number): never;
  memoryUsage(): { rss: number; heapUsed: number; external: number; heapTotal: number };
  mainModule: string;
};

const Deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;
const require = createRequire(import.meta.url);
const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Deno's side of the HTTP surface: Hono's Deno WebSocket adapter (Deno sets no message limit of
 * its own; the app checks each message) and connection info. Request URLs arrive already
 * normalised: no raw target.
 */
/** The connection front of the running server (it sees the clients; Deno.serve sees the front). */
let front: ConnectionFront | undefined;

const denoHttp: HttpRuntime = {
  upgradeWebSocket: upgradeWebSocket as unknown as UpgradeWebSocket<unknown>,
  clientAddress: (c) => {
    const remote = getConnInfo(c).remote;
    return front?.clientOf(remote.port) ?? remote.address;
  },
};

/** The Deno implementation of the runtime host. */
export const denoHost: RuntimeHost = {
  name: 'deno',
  argv: Deno.args,
  env: Deno.env.toObject(),
  readFile: (path) => Deno.readTextFileSync(path),
  readHlsJs: () => Deno.readTextFileSync(require.resolve('hls.js/dist/hls.min.js')),
  http: denoHttp,
  async serve(app, { port, host, connections = DEFAULT_CONNECTION_LIMITS }) {
    let resolvePort: (port: number) => void = () => {};
    const listening = new Promise<number>((resolve) => {
      resolvePort = resolve;
    });
    // Deno.serve fails an answer whose client takes nothing for the send timeout; clients reach it
    // through the connection front, which keeps the head deadline, the per-client cap, the send
    // watchdog, and a client's FIN until the request was read to its end.
    const server = Deno.serve(
      { port: 0, hostname: '127.0.0.1', onListen: (addr) => resolvePort(addr.port) },
      withSlicedBodies((request, info) => app.fetch(request, info as never), connections.sendTimeoutMs),
    );
    const inner = await listening;
    const served = await serveBehindFront(host, port, inner, connections, () => server.shutdown());
    front = served.front;
    return { port: served.port, close: served.close };
  },
  loadCodecs: (config, logger) => loadVideoCodecs(config, logger),
  startTestPattern,
  publish: runPublish,
  bench: (command) => runBench(command, denoHost),
  gc: typeof gc === 'function' ? () => gc() : undefined,
  gcFull: typeof gc === 'function' ? () => gc() : undefined,
  memoryUsage: () => ({ arrayBuffers: 0, ...Deno.memoryUsage() }),
  onSignal(signals, handler) {
    for (const signal of signals) Deno.addSignalListener(signal, handler);
  },
  print: (line) => console.log(line),
};

if (Deno.mainModule.endsWith('src/runtime/deno.ts')) {
  main(denoHost).then(
    (code) => Deno.exit(code),
    (error: unknown) => {
      console.error(error);
      Deno.exit(1);
    },
  );
}
