import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBoxes } from '../../src/container/index.ts';
import type { FragmentSubscription } from '../../src/fragment/index.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { constantTimeEqual, IngestManager, validateBroadcastName } from '../../src/ingest/index.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import { createApp } from '../../src/server/app.ts';
import { waitFor } from '../support/wait.ts';

const media = (name: string) =>
  new Uint8Array(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'media', name)));

function streamOf(bytes: Uint8Array, chunk = 4096, hold?: Promise<void>): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    async pull(controller) {
      if (offset >= bytes.length) {
        if (hold !== undefined) await hold;
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

function setup(options: Partial<ConstructorParameters<typeof IngestManager>[0]> = {}) {
  const registry = new FragmentBroadcasterRegistry();
  const metrics = createMetrics();
  const ingest = new IngestManager({ registry, metrics, graceMs: 50, idleTimeoutMs: 2000, ...options });
  const app = createApp({ ingest, metrics });
  const post = (
    name: string,
    body: BodyInit | ReadableStream<Uint8Array> | Uint8Array | null,
    headers: Record<string, string> = {},
  ) =>
    app.request(`/ingest/${name}`, { method: 'POST', body: body as BodyInit, headers, duplex: 'half' } as RequestInit);
  return { registry, metrics, ingest, app, post };
}

async function collect(sub: FragmentSubscription): Promise<number> {
  let n = 0;
  while ((await sub.next()) !== undefined) n++;
  return n;
}

describe('HTTP ingest', () => {
  it('a chunked POST of an ffmpeg fMP4 publishes 0.mp4 and 1.mp4 with their init segments and every frame', async () => {
    const { registry, post } = setup();
    const subs: Record<string, FragmentSubscription> = {};
    registry.onEntryCreated((b, t, bc) => {
      if (b === 'live/demo') subs[t] = bc.subscribe();
    });
    const res = await post('live/demo', streamOf(media('720p30-nob-aac.mp4'), 1000));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { fragments: number; bytes: number };
    expect(body.bytes).toBe(media('720p30-nob-aac.mp4').length);
    expect(registry.get('live/demo', '0.mp4')?.meta.codec).toMatch(/^avc1\.4d/);
    expect(registry.get('live/demo', '1.mp4')?.meta.codec).toBe('mp4a.40.2');
    expect(registry.get('live/demo', '0.mp4')?.meta.initSegment).toBeInstanceOf(Uint8Array);
    // The broadcast ends after the grace period; every fragment was delivered first.
    const [video, audio] = await Promise.all([collect(subs['0.mp4']!), collect(subs['1.mp4']!)]);
    expect(video).toBe(3); // one moof per 1 s GOP
    expect(audio).toBe(3);
    expect(body.fragments).toBe(video + audio);
    await waitFor(() => registry.get('live/demo', '0.mp4') === undefined, 'broadcast removed after grace');
  });

  it('one request per segment (init first, then media segments) continues the same broadcast without a discontinuity', async () => {
    const { registry, post } = setup({ graceMs: 2000 });
    const bytes = media('720p30-frag-every-frame.mp4');
    const boxes = readBoxes(bytes);
    const moov = boxes.findIndex((b) => b.type === 'moov');
    const initEnd = boxes[moov]!.offset + boxes[moov]!.bytes.length;
    const requests: Uint8Array[] = [bytes.subarray(0, initEnd)];
    for (const b of boxes.slice(moov + 1)) {
      if (b.type === 'moof') requests.push(bytes.subarray(b.offset, b.offset + b.bytes.length));
      else requests[requests.length - 1] = bytes.subarray(requests.at(-1)!.byteOffset, b.offset + b.bytes.length);
    }
    expect(requests.length).toBeGreaterThan(30);
    expect((await post('live/seg', requests[0]!)).status).toBe(200);
    const sub = registry.get('live/seg', '0.mp4')!.subscribe();
    for (const r of requests.slice(1)) expect((await post('live/seg', r)).status).toBe(200);
    let frames = 0;
    for (let f = sub.tryNext(); f !== undefined; f = sub.tryNext()) frames++;
    expect(frames).toBe(90);
    expect(sub.metaVersion).toBe(0);
  });

  it('a second publisher on a live name gets 409 and the first carries on', async () => {
    const { post } = setup();
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => {
      release = r;
    });
    const first = post('live/busy', streamOf(media('360p30.mp4'), 65536, hold));
    const { ingest } = await (async () => ({ ingest: undefined }))();
    void ingest;
    await new Promise((r) => setTimeout(r, 0));
    const second = await waitFor(async () => {
      const res = await post('live/busy', media('360p30.mp4'));
      return res.status === 409 ? res : undefined;
    }, '409 for the second publisher');
    expect(await second.json()).toMatchObject({ error: { code: 'ingest.already_publishing' } });
    release();
    expect((await first).status).toBe(200);
  });

  it('garbage gets a 400 JSON error and another broadcast publishing meanwhile loses nothing', async () => {
    const { registry, post } = setup();
    const subs: FragmentSubscription[] = [];
    registry.onEntryCreated((b, t, bc) => {
      if (b === 'live/healthy' && t === '0.mp4') subs.push(bc.subscribe());
    });
    const healthy = post('live/healthy', streamOf(media('720p30-frag-every-frame.mp4'), 3000));
    const random = new Uint8Array(5000).map((_, i) => (i * 7919) & 0xff);
    const bad = await post('live/bad', random);
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toMatch(/^ingest\./);
    expect(body.error.message).not.toMatch(/at .*\.ts/);
    expect((await healthy).status).toBe(200);
    expect(await collect(subs[0]!)).toBe(90);
    expect(registry.get('live/bad', '0.mp4')).toBeUndefined();
  });

  it('a box header announcing more than the limit is refused with 413 before its body is buffered', async () => {
    const { post } = setup({ limits: { maxBoxBytes: 1024 * 1024 } });
    const bytes = media('360p30.mp4');
    const moov = readBoxes(bytes).find((b) => b.type === 'moov')!;
    const huge = new Uint8Array(moov.offset + moov.bytes.length + 8);
    huge.set(bytes.subarray(0, moov.offset + moov.bytes.length));
    new DataView(huge.buffer).setUint32(moov.offset + moov.bytes.length, 0x7fff_fff0);
    huge.set([0x6d, 0x6f, 0x6f, 0x66], moov.offset + moov.bytes.length + 4);
    const res = await post('live/huge', huge);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: 'ingest.box_too_large' } });
  });

  it.each([
    ['live/.hidden', 400],
    ['live//x', 400],
    ['live/x/', 400],
    ['live/x y', 400],
    ['a'.repeat(201), 400],
    ['live/%2e%2e', 400],
  ])('the broadcast name %j is refused with a clear error', async (name, status) => {
    const { post } = setup();
    const res = await post(name, media('360p30.mp4'));
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ error: { code: 'ingest.bad_name' } });
  });

  it('ingest auth: 401 without a token, 403 with a wrong one, 200 with the right one', async () => {
    const { post } = setup({ auth: { token: 's3cret', prefixes: { 'team/': 'team-token' } } });
    expect((await post('live/a', media('360p30.mp4'))).status).toBe(401);
    const wrong = await post('live/a', media('360p30.mp4'), { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(403);
    expect(JSON.stringify(await wrong.json())).not.toContain('s3cret');
    expect((await post('live/a', media('360p30.mp4'), { authorization: 'Bearer s3cret' })).status).toBe(200);
    expect((await post('team/x', media('360p30.mp4'), { authorization: 'Bearer team-token' })).status).toBe(200);
    expect((await post('other/x', media('360p30.mp4'), { authorization: 'Bearer team-token' })).status).toBe(403);
  });

  it('a publisher that reconnects within the grace period continues the broadcast with a new init (discontinuity)', async () => {
    const { registry, post } = setup({ graceMs: 5000 });
    expect((await post('live/re', media('360p30.mp4'))).status).toBe(200);
    const bc = registry.get('live/re', '0.mp4')!;
    const sub = bc.subscribe();
    expect((await post('live/re', media('360p30.mp4'))).status).toBe(200);
    expect(registry.get('live/re', '0.mp4')).toBe(bc);
    expect(bc.metaVersion).toBe(1);
    expect(sub.queued).toBeGreaterThan(0);
  });

  it('a publisher that sends nothing is closed after the idle timeout with 408', async () => {
    const { post, registry } = setup({ idleTimeoutMs: 100 });
    const bytes = media('360p30.mp4');
    const stalled = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.subarray(0, 2000));
      },
    });
    const res = await post('live/idle', stalled);
    expect(res.status).toBe(408);
    expect(await res.json()).toMatchObject({ error: { code: 'ingest.idle_timeout' } });
    await waitFor(() => registry.size === 0, 'nothing left');
  });

  it('GET /ingest/<name> without a WebSocket upgrade answers 426', async () => {
    const { app } = setup();
    const res = await app.request('/ingest/live/x');
    expect(res.status).toBe(426);
  });
});

describe('ingest rules', () => {
  it('broadcast names are [A-Za-z0-9_-] segments joined by /', () => {
    expect(validateBroadcastName('live/demo_1-A')).toBe('live/demo_1-A');
    for (const bad of [
      '',
      '/x',
      'x/',
      'a//b',
      '.',
      'a/./b',
      'a/../b',
      'a b',
      'ü',
      'a'.repeat(201),
      'a/b/c/d/e/f/g/h/i',
    ]) {
      expect(() => validateBroadcastName(bad)).toThrow(/invalid broadcast name/);
    }
  });

  it('token comparison is exact and independent of where the strings differ', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
  });

  it('a name that is a transcoder output cannot be published to', () => {
    const registry = new FragmentBroadcasterRegistry();
    registry.getOrCreate(
      'live/demo/720p',
      '0.mp4',
      { codec: 'avc1.64001f', timescale: 90000, initSegment: undefined },
      {
        origin: { kind: 'rendition', source: 'live/demo', rendition: '720p', transcoder: 'software' },
      },
    );
    const ingest = new IngestManager({ registry });
    expect(() => ingest.open('live/demo/720p', 'http')).toThrow(/transcoder output/);
  });

  it('the broadcast limit answers ingest.limit', () => {
    const ingest = new IngestManager({ registry: new FragmentBroadcasterRegistry(), limits: { maxBroadcasts: 1 } });
    ingest.open('a', 'http');
    expect(() => ingest.open('b', 'http')).toThrow(expect.objectContaining({ code: 'ingest.limit' }));
    ingest.close();
  });
});
