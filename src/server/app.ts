/**
 * The HTTP surface (a contract, see README.md "HTTP API") as a runtime-free Hono app, composed from
 * route modules: ingest over HTTP, ingest over WebSocket, HLS playback, the APIs and the static
 * assets. What depends on the runtime (WebSocket upgrades, client addresses, raw request targets)
 * comes in as an `HttpRuntime`; runtime files (`src/runtime/*`) provide it, then serve `app.fetch`.
 */

import { Hono } from 'hono';
import { errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { HlsResponse } from '../hls/index.ts';
import type { IngestManager } from '../ingest/index.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { type AdminRoutesDeps, adminRoutes } from './admin-routes.ts';
import { apiRoutes } from './api-routes.ts';
import { assetRoutes, type StaticAsset } from './asset-routes.ts';
import { errorResponse, jsonError } from './errors.ts';
import { type HlsHandler, hlsRoutes } from './hls-routes.ts';
import { type Admit, createIngestGate, type IngestEnv, ingestTargetGuard } from './ingest-gate.ts';
import { ingestHttpRoutes } from './ingest-http-routes.ts';
import { ingestWsRoutes } from './ingest-ws-routes.ts';
import type { HttpRuntime } from './runtime-adapter.ts';

export type { HlsHandler, HlsResponse, HttpRuntime, StaticAsset };

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
  /** The runtime's part: WebSocket upgrader, client addresses, raw request targets. */
  runtime?: HttpRuntime;
  /** Static assets by path (`/` is the dashboard page). */
  assets?: Readonly<Record<string, StaticAsset>>;
  /** Per-client limits (defaults: 16 publishers, 100 held blocking requests). */
  clientLimits?: Partial<ClientLimits>;
  /** Publish admission, asked before a publisher is let in. */
  admit?: Admit;
  /** The admin API (per-broadcast ladders). */
  admin?: AdminRoutesDeps;
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

/** Builds the Hono app for `deps`. */
export function createApp(deps: AppDeps): Hono<IngestEnv> {
  const logger = deps.logger ?? silentLogger;
  const { metrics, runtime } = deps;
  const limits = { ...DEFAULT_CLIENT_LIMITS, ...deps.clientLimits };
  const open = createIngestGate({
    ingest: deps.ingest,
    metrics,
    maxPublishersPerClient: limits.maxPublishers,
    admit: deps.admit,
  });

  const app = new Hono<IngestEnv>();
  app.onError((error) => {
    logger.error('request failed', { error: errorMessage(error) });
    return errorResponse(error);
  });
  app.notFound((c) => jsonError('not_found', `no route for ${c.req.method} ${c.req.path}`));
  app.use('*', ingestTargetGuard({ metrics, runtime }));
  app.route('/', ingestHttpRoutes({ open, metrics, logger, runtime }));
  app.route('/', ingestWsRoutes({ open, ingest: deps.ingest, metrics, logger, runtime }));
  app.route('/', hlsRoutes({ hls: deps.hls, maxHeldRequestsPerClient: limits.maxHeldRequests, runtime }));
  if (deps.admin !== undefined) app.route('/', adminRoutes(deps.admin));
  app.route('/', apiRoutes({ metrics, broadcasts: deps.broadcasts, transcode: deps.transcode, health: deps.health }));
  // Last: its catch-all GET answers whatever no other route took.
  app.route('/', assetRoutes({ assets: deps.assets }));
  return app;
}
