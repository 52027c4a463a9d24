/**
 * Static assets served as-is: the dashboard page at `/` and the scripts it loads (hls.js). Any
 * other `GET` is a JSON 404; this router is mounted last.
 */

import { Hono } from 'hono';
import { jsonError } from './errors.ts';

/** A static asset served as-is (dashboard script, hls.js). */
export type StaticAsset = { body: string | Uint8Array; contentType: string };

/** What the asset routes need. */
export type AssetRoutesDeps = {
  /** Static assets by path (`/` is the dashboard page). */
  assets: Readonly<Record<string, StaticAsset>> | undefined;
};

/** The catch-all `GET *` route over `assets`. */
export function assetRoutes(deps: AssetRoutesDeps): Hono {
  const routes = new Hono();
  routes.get('*', (c) => {
    const asset = deps.assets?.[c.req.path];
    if (asset === undefined) return jsonError('not_found', `no route for GET ${c.req.path}`);
    return new Response(asset.body as BodyInit, {
      headers: { 'content-type': asset.contentType, 'cache-control': 'no-cache' },
    });
  });
  return routes;
}
