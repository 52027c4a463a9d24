/**
 * Thumbnails against the running CLI server: `/hls/<broadcast>/thumbnail.jpg` is 404 until a
 * broadcast's first keyframe, then a JPEG of the source's aspect ratio (ffprobe reads it) that
 * follows the moving test pattern, rendered at most once a second and shared by concurrent
 * requests; from the ladder's keyframe tap with a ladder, from a short-lived decoder without one
 * (`--transcode-rendition none`). Bad widths are refused; the dashboard shows the thumbnails.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { getJson, type RunningServer, startServer } from '../../testkit/server.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { type BroadcastsApi, ffmpegPublish, openWsPublisher, type Proc, type WsPublisher } from './helpers.ts';

type ThumbnailStatus = { broadcast: string; renders: number; lastSource: string | undefined };

let ladder: RunningServer;
let plain: RunningServer;
let portrait: Proc | undefined;
let initOnly: WsPublisher | undefined;

beforeAll(async () => {
  [ladder, plain] = await Promise.all([
    // The overload policy off: pausing the only rung under the suite's load would stop the ladder's
    // decode (the tap these tests read); the fallback decoder has its own test below.
    startServer(['--test-pattern', 'tp', '--transcode-rendition', '240p', '--transcode-overload', 'off']),
    startServer(['--test-pattern', 'tp', '--transcode-rendition', 'none']),
  ]);
}, 60_000);

afterAll(async () => {
  portrait?.kill();
  await initOnly?.close();
  await Promise.all([ladder?.stop(), plain?.stop()]);
});

const thumbnailUrl = (server: RunningServer, broadcast: string, query = '') =>
  `${server.url}/hls/${broadcast}/thumbnail.jpg${query}`;

/** The thumbnail bytes once the broadcast has one. */
async function firstThumbnail(server: RunningServer, broadcast: string, query = ''): Promise<Uint8Array> {
  return waitFor(
    async () => {
      const res = await fetch(thumbnailUrl(server, broadcast, query));
      return res.status === 200 ? new Uint8Array(await res.arrayBuffer()) : undefined;
    },
    `a thumbnail of ${broadcast}`,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
}

async function jpegSize(bytes: Uint8Array): Promise<{ width: number; height: number }> {
  expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  const [stream] = await probeStreams(bytes);
  expect(stream?.codecName).toBe('mjpeg');
  return { width: stream!.width!, height: stream!.height! };
}

async function thumbnailStatus(server: RunningServer, broadcast: string): Promise<ThumbnailStatus | undefined> {
  const status = await getJson<{ thumbnails: ThumbnailStatus[] }>(`${server.url}/api/v1/transcode`);
  return status.thumbnails.find((t) => t.broadcast === broadcast);
}

/** The init segment of a fragmented MP4: every top-level box before the first `moof`. */
function initOf(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + 8 <= bytes.byteLength) {
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === 'moof') return bytes.slice(0, at);
    at += view.getUint32(at);
  }
  throw new Error('no moof in the fixture');
}

describe('thumbnails', () => {
  it('answers 404 hls.not_found for an unknown broadcast and for one that has only an init', async () => {
    const unknown = await fetch(thumbnailUrl(ladder, 'nobody'));
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('access-control-allow-origin')).toBe('*');
    initOnly = await openWsPublisher(`${ladder.url.replace('http', 'ws')}/ingest/init-only`);
    initOnly.send(initOf(readFixture('portrait-720x1280.mp4')));
    await waitFor(async () => {
      const api = await getJson<BroadcastsApi>(`${ladder.url}/api/v1/broadcasts`);
      return api.broadcasts.some((b) => b.name === 'init-only');
    }, 'the init-only broadcast');
    const res = await fetch(thumbnailUrl(ladder, 'init-only'));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('hls.not_found');
  });

  it('serves the test pattern as a JPEG of its aspect ratio, at the default and a given width', async () => {
    const bytes = await firstThumbnail(ladder, 'tp');
    expect(await jpegSize(bytes)).toEqual({ width: 320, height: 180 });
    const res = await fetch(thumbnailUrl(ladder, 'tp', '?width=160'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('cache-control')).toContain('max-age=1');
    expect(res.headers.get('last-modified')).not.toBeNull();
    expect(await jpegSize(new Uint8Array(await res.arrayBuffer()))).toEqual({ width: 160, height: 90 });
    expect((await thumbnailStatus(ladder, 'tp'))?.lastSource).toBe('ladder');
  });

  it('follows the moving picture and renders at most once a second however often it is asked', async () => {
    const first = await firstThumbnail(ladder, 'tp');
    const before = (await thumbnailStatus(ladder, 'tp'))!.renders;
    const started = Date.now();
    // Hammer it, 8 requests at a time, for at least 2.5 s and until the picture changed (a new source
    // keyframe: the test pattern has one every 2 s GOP), at most 15 s: a render per request would be dozens.
    let changed = false;
    while (Date.now() - started < 15_000 && !(changed && Date.now() - started >= 2500)) {
      const batch = await Promise.all(
        Array.from({ length: 8 }, () =>
          fetch(thumbnailUrl(ladder, 'tp')).then(async (r) => Buffer.from(await r.arrayBuffer())),
        ),
      );
      if (batch.some((b) => !b.equals(Buffer.from(first)))) changed = true;
    }
    const elapsedS = (Date.now() - started) / 1000;
    const renders = (await thumbnailStatus(ladder, 'tp'))!.renders - before;
    expect(
      changed,
      `a later thumbnail differs from the first; status ${JSON.stringify(await thumbnailStatus(ladder, 'tp'))}\n${ladder.stdout().slice(-1500)}`,
    ).toBe(true);
    expect(renders).toBeGreaterThanOrEqual(1);
    expect(renders).toBeLessThanOrEqual(Math.ceil(elapsedS) + 1);
  });

  it('shares one render between concurrent requests', async () => {
    await firstThumbnail(ladder, 'tp');
    const before = (await thumbnailStatus(ladder, 'tp'))!.renders;
    // A width nobody asked for yet: nothing cached, so all of them wait for the same render.
    const bodies = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetch(thumbnailUrl(ladder, 'tp', '?width=200')).then(async (r) => Buffer.from(await r.arrayBuffer())),
      ),
    );
    for (const body of bodies) expect(body.equals(bodies[0]!)).toBe(true);
    expect((await thumbnailStatus(ladder, 'tp'))!.renders - before).toBe(1);
    expect(await jpegSize(bodies[0]!)).toEqual({ width: 200, height: 112 });
  });

  it('refuses widths that are not positive integers and clamps large ones', async () => {
    for (const width of ['abc', '0', '-5', '1.5', '']) {
      const res = await fetch(thumbnailUrl(ladder, 'tp', `?width=${width}`));
      expect(res.status, `width=${width}`).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('hls.bad_request');
    }
    const huge = await fetch(thumbnailUrl(ladder, 'tp', '?width=100000'));
    expect(huge.status).toBe(200);
    expect(await jpegSize(new Uint8Array(await huge.arrayBuffer()))).toEqual({ width: 640, height: 360 });
  });

  it('keeps the aspect ratio of a portrait source', async () => {
    portrait = ffmpegPublish(fixturePath('portrait-720x1280.mp4'), `${ladder.url}/ingest/portrait`, { loops: 5 });
    const bytes = await firstThumbnail(ladder, 'portrait');
    // 720x1280 at width 320: 568.9 rounded to an even 568.
    expect(await jpegSize(bytes)).toEqual({ width: 320, height: 568 });
  });

  it('works without a ladder (a short-lived decoder renders the newest keyframe)', async () => {
    const first = await firstThumbnail(plain, 'tp', '?width=160');
    expect(await jpegSize(first)).toEqual({ width: 160, height: 90 });
    expect((await thumbnailStatus(plain, 'tp'))?.lastSource).toBe('decoder');
    await waitFor(
      async () => {
        const res = await fetch(thumbnailUrl(plain, 'tp', '?width=160'));
        return !Buffer.from(await res.arrayBuffer()).equals(Buffer.from(first));
      },
      'a newer thumbnail without a ladder',
      { timeoutMs: 6000, intervalMs: 250 },
    );
  });

  it('shows the thumbnails in the dashboard broadcast list', async () => {
    const html = await (await fetch(`${ladder.url}/`)).text();
    expect(html).toContain("document.createElement('img')");
    expect(html).toContain('/thumbnail.jpg?width=');
  });
});
