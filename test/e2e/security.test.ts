/**
 * Security of the running service: ingest auth never leaks the token, per-client limits on
 * publishers and held blocking requests, CORS only on playback routes, read-only routes that
 * never create anything, nothing served from outside a broadcast, and error bodies without internals.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFixture } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';
import { lastPart, metricSum, openWsPublisher, refusedUpgrade, type WsPublisher } from './helpers.ts';

const TOKEN = 's3cret-token-4f1e9a';
const WRONG = 'wrong-token-77c2b0';

let server: RunningServer;
let http: string;
let ws: string;
const cleanup: Array<() => void> = [];

beforeAll(async () => {
  server = await startServer([
    '--test-pattern',
    'live/demo',
    '--transcode-rendition',
    'none',
    '--ingest-token',
    TOKEN,
    '--max-publishers-per-client',
    '2',
    '--max-held-per-client',
    '3',
  ]);
  http = server.url;
  ws = http.replace(/^http/, 'ws');
  await waitFor(
    async () => lastPart((await getText(`${http}/hls/live/demo/playlist.m3u8`)) ?? ''),
    'the test pattern',
    {
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
}, 60_000);

afterAll(async () => {
  for (const c of cleanup) c();
  await server?.stop();
});

type ErrorJson = { error: { code: string; message: string } };

async function expectError(res: Response, status: number, code: string): Promise<ErrorJson> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const text = await res.text();
  const body = JSON.parse(text) as ErrorJson;
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  expect(body.error.code).toBe(code);
  // No internals: no stack frames, source paths or exception class names.
  expect(text).not.toMatch(/\bat .+:\d+|\.ts\b|node_modules|Error:/);
  return body;
}

describe('security of the running service', () => {
  it('ingest auth answers 401 without a token and 403 with a wrong one, and no token ever reaches the log', async () => {
    const body = readFixture('720p30-nob-aac.mp4') as BodyInit;
    await expectError(await fetch(`${http}/ingest/live/auth`, { method: 'POST', body }), 401, 'ingest.unauthorized');
    await expectError(
      await fetch(`${http}/ingest/live/auth`, { method: 'POST', body, headers: { authorization: `Bearer ${WRONG}` } }),
      403,
      'ingest.forbidden',
    );
    const ok = await fetch(`${http}/ingest/live/auth`, {
      method: 'POST',
      body,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    // The WebSocket form with the token in the query string, wrong and right.
    const refused = await refusedUpgrade(`${ws}/ingest/live/auth-ws?token=${WRONG}`);
    expect(refused.status).toBe(403);
    const publisher = await openWsPublisher(`${ws}/ingest/live/auth-ws?token=${TOKEN}`);
    publisher.send(readFixture('720p30-nob-aac.mp4').subarray(0, 1000));
    expect((await publisher.close()).code).toBe(1000);
    const log = server.stdout();
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain(TOKEN);
    expect(log).not.toContain(WRONG);
  });

  it('one client may have at most --max-publishers-per-client publishers open: the next gets 429 ingest.client_limit until one leaves', async () => {
    const auth = `?token=${TOKEN}`;
    const open: WsPublisher[] = [];
    for (const name of ['a', 'b']) {
      const p = await openWsPublisher(`${ws}/ingest/live/limit-${name}${auth}`);
      cleanup.push(() => p.ws.terminate());
      open.push(p);
    }
    const third = await fetch(`${http}/ingest/live/limit-c`, {
      method: 'POST',
      body: readFixture('720p30-nob-aac.mp4') as BodyInit,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const error = await expectError(third, 429, 'ingest.client_limit');
    expect(error.error.message).toContain('2');
    // The refused name was not reserved, and one publisher leaving makes room.
    expect((await open[0]!.close()).code).toBe(1000);
    await waitFor(
      async () => {
        const retry = await fetch(`${http}/ingest/live/limit-c`, {
          method: 'POST',
          body: readFixture('720p30-nob-aac.mp4') as BodyInit,
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        await retry.arrayBuffer();
        if (retry.status !== 200 && retry.status !== 429) throw new Error(`status ${retry.status}`);
        return retry.status === 200;
      },
      'a publisher slot once one publisher left',
      { timeoutMs: 3000, intervalMs: 50 },
    );
    expect((await open[1]!.close()).code).toBe(1000);
  });

  it('one client may hold at most --max-held-per-client blocking playlist requests: the next gets 429 with Retry-After, and slots free up when they are answered', async () => {
    const playlist = `${http}/hls/live/demo/playlist.m3u8`;
    const now = lastPart((await getText(playlist)) ?? '')!;
    // Parts of the next segment: each request is held until its part exists.
    const ahead = now.msn + 1;
    const held = [4, 5, 6].map((i) => fetch(`${playlist}?_HLS_msn=${ahead}&_HLS_part=${i}`));
    await waitFor(
      async () => metricSum((await getText(`${http}/metrics`)) ?? '', 'lvqr_hls_held_requests') === 3,
      'three held requests',
      { timeoutMs: 3000, intervalMs: 20 },
    );
    const fourth = await fetch(`${playlist}?_HLS_msn=${ahead}&_HLS_part=7`);
    expect(fourth.headers.get('retry-after')).toBe('1');
    expect(fourth.headers.get('access-control-allow-origin')).toBe('*');
    await expectError(fourth, 429, 'hls.too_many_held_requests');
    // A plain (non-blocking) reload is never limited.
    expect((await fetch(playlist)).status).toBe(200);
    const answered = await Promise.all(held);
    for (const res of answered) expect(res.status).toBe(200);
    const again = await fetch(`${playlist}?_HLS_msn=${now.msn}&_HLS_part=0`);
    expect(again.status).toBe(200);
  });

  it('sends CORS headers on playback routes only', async () => {
    const playback = [
      '/hls/live/demo/master.m3u8',
      '/hls/live/demo/playlist.m3u8',
      '/hls/live/demo/init.mp4',
      '/hls/live/nope/playlist.m3u8',
    ];
    for (const path of playback) {
      const res = await fetch(`${http}${path}`, { headers: { origin: 'https://player.example' } });
      await res.arrayBuffer();
      expect(res.headers.get('access-control-allow-origin'), path).toBe('*');
    }
    const preflight = await fetch(`${http}/hls/live/demo/playlist.m3u8`, { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    const others = ['/', '/api/v1/broadcasts', '/api/v1/transcode', '/metrics', '/healthz', '/ingest/live/x'];
    for (const path of others) {
      const res = await fetch(`${http}${path}`, { headers: { origin: 'https://evil.example' } });
      await res.arrayBuffer();
      expect(res.headers.get('access-control-allow-origin'), path).toBeNull();
    }
    const post = await fetch(`${http}/ingest/live/x`, { method: 'POST', headers: { origin: 'https://evil.example' } });
    await post.arrayBuffer();
    expect(post.headers.get('access-control-allow-origin')).toBeNull();
    const ingestPreflight = await fetch(`${http}/ingest/live/x`, { method: 'OPTIONS' });
    await ingestPreflight.arrayBuffer();
    expect(ingestPreflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('read-only routes create nothing: unknown playlists, media and blocking requests answer 404 and no broadcast appears', async () => {
    const before = await getJson<{ broadcasts: Array<{ name: string }> }>(`${http}/api/v1/broadcasts`);
    for (const path of [
      '/hls/live/ghost/master.m3u8',
      '/hls/live/ghost/playlist.m3u8?_HLS_msn=5&_HLS_part=0',
      '/hls/live/ghost/seg-0.m4s',
      '/hls/live/ghost/720p/playlist.m3u8',
      '/hls/live/demo/seg-999999.m4s',
    ]) {
      const res = await fetch(`${http}${path}`);
      expect(res.status, path).toBe(404);
      await res.arrayBuffer();
    }
    const head = await fetch(`${http}/ingest/live/ghost`, { method: 'GET' });
    expect(head.status).toBe(426);
    const after = await getJson<{ broadcasts: Array<{ name: string }> }>(`${http}/api/v1/broadcasts`);
    expect(after.broadcasts.map((b) => b.name).sort()).toEqual(before.broadcasts.map((b) => b.name).sort());
    expect(after.broadcasts.map((b) => b.name)).not.toContain('live/ghost');
  });

  it('nothing outside a broadcast is served: dot segments and escaped slashes never reach a file', async () => {
    for (const path of [
      '/hls/..%2f..%2fpackage.json',
      '/hls/live/demo/..%2f..%2f..%2fpackage.json',
      '/hls/%2e%2e/%2e%2e/package.json',
      '/assets/..%2fpackage.json',
      '/hls/live/demo/init.mp4%00.json',
    ]) {
      const res = await fetch(`${http}${path}`);
      const text = await res.text();
      expect(res.status, path).toBe(404);
      expect(text, path).not.toContain('"dependencies"');
    }
  });
});
