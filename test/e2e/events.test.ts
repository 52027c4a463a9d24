/**
 * Events and publish admission against the running CLI server with a real receiver on loopback:
 * signed `publish` / `ready` / `unpublish` with their fields; admission that allows and refuses
 * (403, WebSocket 4403 with the receiver's reason); malformed, oversized and late answers refused
 * with a clear error while other publishers go on; a receiver that is down (a second URL) loses no
 * media and counts in `lvqr_webhook_failures_total`.
 */

import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFixture } from '../../testkit/fixtures.ts';
import { getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { type Receiver, startReceiver, validSignature } from '../events/receiver.ts';
import { waitFor } from '../support/wait.ts';
import { metricSum, refusedUpgrade, trackSummary } from './helpers.ts';

const SECRET = 'hook-secret-5b1c';
const CLIP = readFixture('360p30.mp4');

let receiver: Receiver;
let server: RunningServer;
let deadUrl: string;

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  receiver = await startReceiver((event) => {
    if (event.type !== 'publish') return {};
    const name = String(event.broadcast).split('/')[1];
    if (name?.startsWith('allow')) return { body: JSON.stringify({ allow: true }) };
    if (name === 'deny') return { body: JSON.stringify({ allow: false, reason: 'no credit left' }) };
    if (name === 'garbage') return { body: 'this is not json' };
    if (name === 'noallow') return { body: JSON.stringify({ allow: 'yes' }) };
    if (name === 'huge') return { body: JSON.stringify({ allow: true, pad: 'x'.repeat(1 << 20) }) };
    if (name === 'oddladder') {
      const ladder = [{ name: 'odd', width: 321, height: 180, video_bitrate_kbps: 300, audio_bitrate_kbps: 64 }];
      return { body: JSON.stringify({ allow: true, ladder }) };
    }
    if (name === 'slow') return { body: JSON.stringify({ allow: true }), delayMs: 3000 };
    return { status: 500 };
  });
  deadUrl = `http://127.0.0.1:${await closedPort()}/down`;
  server = await startServer([
    '--test-pattern',
    'off',
    '--transcode-rendition',
    'none',
    '--ingest-grace',
    '0',
    '--webhook-url',
    receiver.url,
    '--webhook-url',
    deadUrl,
    '--webhook-secret',
    SECRET,
    '--webhook-admission',
    'on',
    '--webhook-timeout',
    '1',
    '--node-name',
    'node-e2e',
  ]);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await receiver?.close();
});

async function post(broadcast: string, body: Uint8Array = CLIP): Promise<Response> {
  return fetch(`${server.url}/ingest/${broadcast}`, { method: 'POST', body: body as Uint8Array<ArrayBuffer> });
}

async function failures(): Promise<number> {
  return metricSum((await getText(`${server.url}/metrics`)) ?? '', 'lvqr_webhook_failures_total') ?? 0;
}

describe('events', () => {
  it('publish, ready and unpublish arrive signed, with broadcast, node, time and their fields; the dead receiver loses no media', async () => {
    const before = await failures();
    const res = await post('live/allow-a');
    expect(res.status).toBe(200);
    const summary = (await res.json()) as { fragments: number };
    expect(summary.fragments).toBeGreaterThan(0);
    // Every fragment reached the HLS layer although one receiver is down.
    const track = await waitFor(() => trackSummary(server.url, 'live/allow-a'), 'the broadcast summary');
    expect(track.fragments).toBe(3);
    const unpublish = await waitFor(() => receiver.events('unpublish', 'live/allow-a')[0], 'unpublish', {
      timeoutMs: 10_000,
    });
    // Up to four deliveries are in flight at once: an earlier event may arrive after a later one.
    const publish = await waitFor(() => receiver.events('publish', 'live/allow-a')[0], 'publish');
    const ready = await waitFor(() => receiver.events('ready', 'live/allow-a')[0], 'ready');
    expect(publish).toMatchObject({ type: 'publish', transport: 'http', admission: true, node: 'node-e2e' });
    expect(ready).toMatchObject({ type: 'ready', codec: expect.stringMatching(/^avc1\./), node: 'node-e2e' });
    expect(ready.playlist).toBe('/hls/live/allow-a/master.m3u8');
    expect(unpublish).toMatchObject({ type: 'unpublish', node: 'node-e2e' });
    const times = [publish, ready, unpublish].map((e) => Date.parse(e.time));
    expect(times.every((t) => Number.isFinite(t) && Math.abs(Date.now() - t) < 60_000)).toBe(true);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(new Set([publish.id, ready.id, unpublish.id]).size).toBe(3);
    for (const r of receiver.received.filter((x) => x.event.broadcast === 'live/allow-a')) {
      expect(validSignature(SECRET, r.body, r.signature)).toBe(true);
      expect(validSignature('other-secret', r.body, r.signature)).toBe(false);
      expect(r.eventHeader).toBe(r.event.type);
    }
    // publish, ready and unpublish each failed at least once at the dead URL.
    await waitFor(async () => (await failures()) >= before + 3, 'webhook failures to be counted', {
      timeoutMs: 10_000,
    });
    const hls = await getText(`${server.url}/hls/live/allow-a/playlist.m3u8`);
    expect(hls).toContain('#EXT-X-ENDLIST');
  });

  it('admission refuses with 403 and the reason over HTTP, and with close 4403 over WebSocket', async () => {
    const res = await post('live/deny');
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: { code: 'ingest.forbidden', message: 'no credit left' } });
    const ws = await refusedUpgrade(`${server.url.replace(/^http/, 'ws')}/ingest/live/deny`);
    expect(ws.status).toBe(403);
    expect(JSON.parse(ws.body)).toEqual({ error: { code: 'ingest.forbidden', message: 'no credit left' } });
    expect(await trackSummary(server.url, 'live/deny')).toBeUndefined();
  });

  it('a malformed, oversized, late or failing answer is a clear 503 and nothing else is affected', async () => {
    const cases: Array<[string, RegExp]> = [
      ['garbage', /not JSON/],
      ['noallow', /"allow" must be true or false/],
      ['huge', /limit/],
      ['oddladder', /width must be even/],
      ['slow', /no answer within 1000 ms/],
      ['status', /answered 500/],
    ];
    const results = await Promise.all(
      cases.map(async ([name]) => {
        const res = await post(`live/${name}`);
        return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } };
      }),
    );
    const allowed = await post('live/allow-b');
    expect(allowed.status).toBe(200);
    for (const [i, [name, message]] of cases.entries()) {
      expect(results[i]!.status, name).toBe(503);
      expect(results[i]!.body.error.code, name).toBe('ingest.admission_failed');
      expect(results[i]!.body.error.message, name).toMatch(message);
      expect(await trackSummary(server.url, `live/${name}`), name).toBeUndefined();
    }
    const track = await waitFor(() => trackSummary(server.url, 'live/allow-b'), 'the allowed broadcast');
    expect(track.fragments).toBe(3);
    expect(server.stdout()).toMatch(/admission webhook failed/);
  });
});
