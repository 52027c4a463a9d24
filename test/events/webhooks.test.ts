/** The webhook sender alone (real HTTP receiver on loopback): signature, queue bound, retries, timeouts, reply limit, admission answers. */

import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import {
  admitByWebhook,
  parseAdmissionAnswer,
  signBody,
  verifySignature,
  WebhookSender,
} from '../../src/events/index.ts';
import { createApp } from '../../src/server/app.ts';
import { StreamLadders } from '../../src/server/stream-ladders.ts';
import { defaultLadder } from '../../src/transcode/rendition.ts';
import { waitFor } from '../support/wait.ts';
import { type Receiver, startReceiver, validSignature } from './receiver.ts';

const receivers: Receiver[] = [];
const senders: WebhookSender[] = [];

async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}

function sender(options: Partial<ConstructorParameters<typeof WebhookSender>[0]> & { urls: string[] }): WebhookSender {
  const s = new WebhookSender({ node: 'n1', timeoutMs: 500, retryBaseMs: 20, retryMaxMs: 80, ...options });
  senders.push(s);
  return s;
}

afterEach(async () => {
  for (const s of senders.splice(0)) s.close();
  for (const r of receivers.splice(0)) await r.close();
});

describe('webhook signature', () => {
  it('is the hex HMAC-SHA256 of the body, and verifies only with the same secret and body', async () => {
    const header = await signBody('k', '{"a":1}');
    expect(validSignature('k', '{"a":1}', header)).toBe(true);
    expect(await verifySignature('k', '{"a":1}', header)).toBe(true);
    expect(await verifySignature('k', '{"a":2}', header)).toBe(false);
    expect(await verifySignature('other', '{"a":1}', header)).toBe(false);
    expect(await verifySignature('k', '{"a":1}', 'sha256=zz')).toBe(false);
  });
});

describe('WebhookSender', () => {
  it('sends every event to every URL, signed, with the event header and id', async () => {
    const a = await receiver();
    const b = await receiver();
    const s = sender({ urls: [a.url, b.url], secret: 's' });
    s.emit('ready', 'live/x', { codec: 'avc1.42c01e' });
    for (const r of [a, b]) {
      const [got] = await waitFor(() => (r.received.length === 1 ? r.received : undefined), 'the event');
      expect(got!.event).toMatchObject({ type: 'ready', broadcast: 'live/x', node: 'n1', codec: 'avc1.42c01e' });
      expect(got!.eventHeader).toBe('ready');
      expect(validSignature('s', got!.body, got!.signature)).toBe(true);
    }
  });

  it('retries a failing receiver with back-off until it answers 2xx, counting each failure', async () => {
    let calls = 0;
    const r = await receiver(() => {
      calls += 1;
      return { status: calls < 3 ? 503 : 200 };
    });
    const failures: string[] = [];
    const s = sender({ urls: [r.url], onFailure: (_u, reason) => failures.push(reason) });
    s.emit('unpublish', 'live/x');
    await waitFor(() => s.stats().delivered === 1, 'the delivery', { timeoutMs: 3000 });
    expect(failures).toEqual(['status', 'status']);
    expect(r.received).toHaveLength(3);
    expect(new Set(r.received.map((x) => x.event.id)).size).toBe(1);
  });

  it('gives up after maxAttempts; a slow receiver times out', async () => {
    const r = await receiver(() => ({ delayMs: 300 }));
    const failures: string[] = [];
    const s = sender({
      urls: [r.url],
      timeoutMs: 50,
      maxAttempts: 2,
      onFailure: (_u, reason) => failures.push(reason),
    });
    s.emit('publish', 'live/x');
    await waitFor(() => failures.length === 2 && s.stats().queued === 0 && s.stats().inFlight === 0, 'two failures', {
      timeoutMs: 3000,
    });
    expect(failures).toEqual(['timeout', 'timeout']);
  });

  it('bounds the queue: beyond maxQueued the oldest delivery is dropped and counted', () => {
    const failures: string[] = [];
    const s = sender({
      urls: ['http://127.0.0.1:9/'],
      maxQueued: 3,
      concurrency: 1,
      fetch: () => new Promise<Response>(() => {}),
      onFailure: (_u, reason) => failures.push(reason),
    });
    for (let i = 0; i < 10; i += 1) s.emit('overload', 'live/x', { i });
    // One in flight, three queued, six dropped: emit never waited.
    expect(s.stats()).toMatchObject({ inFlight: 1, queued: 3, dropped: 6 });
    expect(failures).toEqual(Array(6).fill('queue_full'));
  });
});

describe('admission', () => {
  it('parses allow, reason and a ladder in LVQR fields; refuses malformed answers clearly', () => {
    const ladder = [{ name: 'a', width: 320, height: 180, video_bitrate_kbps: 300, audio_bitrate_kbps: 64 }];
    expect(parseAdmissionAnswer(JSON.stringify({ allow: true, ladder }))).toMatchObject({
      allow: true,
      ladder: [{ name: 'a', width: 320, height: 180, videoBitrateKbps: 300 }],
    });
    expect(parseAdmissionAnswer('{"allow":false,"reason":"no"}')).toMatchObject({ allow: false, reason: 'no' });
    expect(() => parseAdmissionAnswer('[]')).toThrow(/not a JSON object/);
    expect(() => parseAdmissionAnswer('{"allow":1}')).toThrow(/"allow" must be true or false/);
    expect(() => parseAdmissionAnswer('{"allow":true,"reason":5}')).toThrow(/"reason" must be a string/);
    expect(() => parseAdmissionAnswer('{"allow":true,"ladder":{}}')).toThrow(/non-empty list/);
    expect(() =>
      parseAdmissionAnswer(JSON.stringify({ allow: true, ladder: [{ ...ladder[0], height: 181 }] })),
    ).toThrow(/answer ladder\[0\].*height must be even/);
  });

  it('a reply over the size limit fails admission and the default decides', async () => {
    const r = await receiver(() => ({ body: JSON.stringify({ allow: true, pad: 'x'.repeat(200_000) }) }));
    const s = sender({ urls: [r.url] });
    const denied = await admitByWebhook({ sender: s, defaultAllow: false, logger: silentLogger }, 'live/x', {});
    expect(denied).toMatchObject({ allow: false, failed: expect.stringMatching(/65536-byte limit/) });
    const allowed = await admitByWebhook({ sender: s, defaultAllow: true, logger: silentLogger }, 'live/x', {});
    expect(allowed).toMatchObject({ allow: true, failed: expect.stringMatching(/limit/) });
  });
});

describe('admin API', () => {
  it('answers 404 when no admin token is configured', async () => {
    const app = createApp({
      admin: {
        token: undefined,
        ladders: new StreamLadders(defaultLadder()),
        sourceSize: () => undefined,
        replan: () => {},
      },
    });
    const res = await app.request('/api/v1/broadcasts/live/x/ladder');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found', message: /--admin-token/ } });
  });
});
