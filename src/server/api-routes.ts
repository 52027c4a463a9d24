/**
 * The JSON and metrics surface: `GET /api/v1/broadcasts`, `/api/v1/transcode`, `/metrics`
 * (Prometheus text) and `/healthz`. Each answer is computed by the caller's function on request.
 */

import { Hono } from 'hono';
import type { LvqrMetrics } from '../metrics/index.ts';
import { jsonError } from './errors.ts';

/** What the API routes need; a missing part answers its empty default (or 404 for metrics). */
export type ApiRoutesDeps = {
  metrics: LvqrMetrics | undefined;
  /** JSON for `GET /api/v1/broadcasts`. */
  broadcasts: (() => unknown) | undefined;
  /** JSON for `GET /api/v1/transcode`. */
  transcode: (() => unknown) | undefined;
  /** Extra fields for `GET /healthz`. */
  health: (() => Record<string, unknown>) | undefined;
};

/** The `/api/v1/*`, `/metrics` and `/healthz` routes. */
export function apiRoutes(deps: ApiRoutesDeps): Hono {
  const startedAt = Date.now();
  const routes = new Hono();
  routes.get('/api/v1/broadcasts', async (c) => c.json((await deps.broadcasts?.()) ?? { broadcasts: [] }));
  routes.get('/api/v1/transcode', (c) => c.json(deps.transcode?.() ?? { sources: [] }));
  routes.get('/metrics', async () => {
    if (deps.metrics === undefined) return jsonError('not_found', 'metrics are disabled');
    const registry = deps.metrics.registry;
    return new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } });
  });
  routes.get('/healthz', (c) =>
    c.json({ status: 'ok', uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), ...deps.health?.() }),
  );
  return routes;
}
