/**
 * Deno entry point (`npm run start:deno`): Deno.serve with Hono's Deno WebSocket adapter. Runtime
 * globals are touched only here; Deno types are declared structurally so the project compiles
 * without Deno's typings. Needs --allow-read --allow-env --allow-ffi --allow-net --allow-sys
 * (and --v8-flags=--expose-gc for prompt native memory release).
 */

import { createRequire } from 'node:module';
import type { Hono } from 'hono';
import { getConnInfo, upgradeWebSocket } from 'hono/deno';
import type { UpgradeWebSocket } from 'hono/ws';
import { type ConnectionLimits, main, type RuntimeHost } from '../server/main.ts';
import type { HttpRuntime } from '../server/runtime-adapter.ts';
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
const denoHttp: HttpRuntime = {
  upgradeWebSocket: upgradeWebSocket as unknown as UpgradeWebSocket<unknown>,
  clientAddress: (c) => getConnInfo(c).remote.address,
};

/**
 * The request handler with the connection limits Deno.serve allows: the send timeout (answers fail
 * when the client takes nothing for it). Deno.serve has no deadline for the request head and
 * reports no connections, so `headerTimeoutMs` and `maxPerClient` are not used.
 */
function limitedHandler(
  app: Hono<never>,
  connections: ConnectionLimits,
): (request: Request, info: unknown) => Promise<Response> {
  return withSlicedBodies((request, info) => app.fetch(request, info as never), connections.sendTimeoutMs);
}

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
    const server = Deno.serve(
      { port, hostname: host, onListen: (addr) => resolvePort(addr.port) },
      limitedHandler(app, connections),
    );
    const actual = await listening;
    return { port: actual, close: () => server.shutdown() };
  },
  loadCodecs: (config, logger) => loadVideoCodecs(config, logger),
  startTestPattern,
  publish: runPublish,
  bench: runBench,
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
