import type { Context } from 'hono';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import type { HlsResponse } from '../../src/hls/index.ts';
import { IngestManager } from '../../src/ingest/index.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import { apiRoutes } from '../../src/server/api-routes.ts';
import { createApp } from '../../src/server/app.ts';
import { assetRoutes } from '../../src/server/asset-routes.ts';
import { hlsRoutes, parseByteRange } from '../../src/server/hls-routes.ts';
import { createIngestGate } from '../../src/server/ingest-gate.ts';
import { ingestHttpRoutes } from '../../src/server/ingest-http-routes.ts';
import type { HttpRuntime } from '../../src/server/runtime-adapter.ts';

const playlist: HlsResponse = {
  status: 200,
  body: '#EXTM3U\n',
  headers: { 'content-type': 'application/vnd.apple.mpegurl' },
};

/** An HLS layer whose blocking reloads wait until `release` is called. */
function heldHls() {
  const waiting: (() => void)[] = [];
  return {
    hls: {
      handle: (_path: string, query: URLSearchParams) =>
        query.has('_HLS_msn')
          ? new Promise<HlsResponse>((resolve) => waiting.push(() => resolve(playlist)))
          : Promise.resolve(playlist),
    },
    release: () => {
      for (const w of waiting.splice(0)) w();
    },
    get waiting() {
      return waiting.length;
    },
  };
}

const fixedClient: HttpRuntime = { clientAddress: () => '10.0.0.1' };

describe('route modules', () => {
  it('the HLS routes bound held blocking reloads per client (429 with CORS and Retry-After) and free slots as answers go out', async () => {
    const held = heldHls();
    const routes = hlsRoutes({ hls: held.hls, maxHeldRequestsPerClient: 2, runtime: fixedClient });
    const first = routes.request('/hls/live/a/playlist.m3u8?_HLS_msn=5');
    const second = routes.request('/hls/live/a/playlist.m3u8?_HLS_msn=5');
    await expect.poll(() => held.waiting).toBe(2);
    const refused = await routes.request('/hls/live/a/playlist.m3u8?_HLS_msn=5');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect(await refused.json()).toMatchObject({ error: { code: 'hls.too_many_held_requests' } });
    // Plain requests are not held and not counted.
    expect((await routes.request('/hls/live/a/playlist.m3u8')).status).toBe(200);
    held.release();
    expect((await first).status).toBe(200);
    expect((await second).headers.get('content-length')).toBe('8');
    const again = routes.request('/hls/live/a/playlist.m3u8?_HLS_msn=6');
    await expect.poll(() => held.waiting).toBe(1);
    held.release();
    expect((await again).status).toBe(200);
  });

  it('the HLS routes answer 404 hls.not_found with CORS when HLS is off, and preflights with 204', async () => {
    const routes = hlsRoutes({ hls: undefined, maxHeldRequestsPerClient: 1, runtime: undefined });
    const off = await routes.request('/hls/live/a/master.m3u8');
    expect(off.status).toBe(404);
    expect(off.headers.get('access-control-allow-origin')).toBe('*');
    expect(await off.json()).toEqual({ error: { code: 'hls.not_found', message: 'HLS is disabled' } });
    const preflight = await routes.request('/hls/live/a/master.m3u8', { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, HEAD, OPTIONS');
  });

  it('byte ranges: a suffix, an open end and an out-of-range start', () => {
    expect(parseByteRange('bytes=-4', 10)).toEqual({ start: 6, end: 9 });
    expect(parseByteRange('bytes=3-', 10)).toEqual({ start: 3, end: 9 });
    expect(parseByteRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=5-2', 10)).toBeUndefined();
    expect(parseByteRange(undefined, 10)).toBeUndefined();
  });

  it('the API routes answer their defaults without a service, and the caller’s JSON with one', async () => {
    const bare = apiRoutes({ metrics: undefined, broadcasts: undefined, transcode: undefined, health: undefined });
    expect(await (await bare.request('/api/v1/broadcasts')).json()).toEqual({ broadcasts: [] });
    expect(await (await bare.request('/api/v1/transcode')).json()).toEqual({ sources: [] });
    expect((await bare.request('/metrics')).status).toBe(404);
    expect(await (await bare.request('/healthz')).json()).toEqual({ status: 'ok', uptimeSeconds: 0 });
    const metrics = createMetrics();
    const wired = apiRoutes({
      metrics,
      broadcasts: () => ({ broadcasts: ['live/a'] }),
      transcode: undefined,
      health: () => ({ broadcasts: 1 }),
    });
    expect(await (await wired.request('/api/v1/broadcasts')).json()).toEqual({ broadcasts: ['live/a'] });
    expect(await (await wired.request('/healthz')).json()).toMatchObject({ status: 'ok', broadcasts: 1 });
    expect(await (await wired.request('/metrics')).text()).toContain('lvqr_');
  });

  it('the asset routes serve each asset with its type and no-cache, and 404 JSON for anything else', async () => {
    const routes = assetRoutes({ assets: { '/': { body: '<html></html>', contentType: 'text/html; charset=utf-8' } } });
    const page = await routes.request('/');
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(await page.text()).toBe('<html></html>');
    const missing = await routes.request('/nope.js');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'not_found' } });
  });

  it('HTTP ingest alone: the gate refuses a publisher over the per-client limit with 429 ingest.client_limit', async () => {
    const registry = new FragmentBroadcasterRegistry();
    const ingest = new IngestManager({ registry, graceMs: 0 });
    const open = createIngestGate({ ingest, metrics: undefined, maxPublishersPerClient: 1 });
    const routes = ingestHttpRoutes({ open, metrics: undefined, logger: silentLogger, runtime: fixedClient });
    let finish: () => void = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        finish = () => controller.close();
      },
    });
    const first = routes.request('/ingest/live/a', { method: 'POST', body, duplex: 'half' } as RequestInit);
    await expect.poll(() => ingest.list().length).toBe(1);
    const second = await routes.request('/ingest/live/b', { method: 'POST', body: new Uint8Array(0) });
    expect(second.status).toBe(429);
    expect(await second.json()).toMatchObject({ error: { code: 'ingest.client_limit' } });
    finish();
    expect((await first).status).toBe(200);
    ingest.close();
  });

  it('the app reads raw request targets through the runtime: a normalised ingest target is a bad name', async () => {
    const runtime: HttpRuntime = { rawTargetPath: (c: Context) => c.req.header('x-raw-target') };
    const registry = new FragmentBroadcasterRegistry();
    const ingest = new IngestManager({ registry, graceMs: 0 });
    const app = createApp({ ingest, runtime });
    const res = await app.request('/ingest/x', {
      method: 'POST',
      body: new Uint8Array(0),
      headers: { 'x-raw-target': '/ingest/live/../x' },
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.json()).toMatchObject({ error: { code: 'ingest.bad_name' } });
    expect(ingest.list()).toEqual([]);
    ingest.close();
  });
});
