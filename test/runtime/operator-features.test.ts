/**
 * The operator features on Bun and Deno, against the CLI server on each runtime with a real
 * receiver on loopback (the Node server runs them in test/e2e/events, ladder-api, playback-tokens
 * and thumbnail): signed publish / ready / unpublish events, admission that refuses over HTTP and
 * over WebSocket, a ladder set by the admin API, playback tokens (401 / 403 / 200, the token on
 * every URI), and the thumbnail as a JPEG of the source's aspect ratio.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signPlaybackUrl } from '../../src/index.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { getJson, type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { openWsPublisher, refusedUpgrade } from '../e2e/helpers.ts';
import { type Receiver, startReceiver, validSignature } from '../events/receiver.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';

const HOOK_SECRET = 'hook-secret-rt';
const PLAY_SECRET = 'play-secret-rt';
const ADMIN = 'admin-rt';
/** 3 s of 640x360 30 fps with AAC, 1 s GOPs. */
const CLIP = readFixture('360p30.mp4');
const R144 = { name: 'r144', width: 256, height: 144, video_bitrate_kbps: 200, audio_bitrate_kbps: 64 };

describe.each<Runtime>(['bun', 'deno'])('operator features on %s', (runtime) => {
  let receiver: Receiver;
  let server: RunningServer;

  beforeAll(async () => {
    receiver = await startReceiver((event) =>
      event.type !== 'publish'
        ? {}
        : {
            body: JSON.stringify(
              String(event.broadcast).endsWith('deny') ? { allow: false, reason: 'no' } : { allow: true },
            ),
          },
    );
    server = await startServer(
      [
        ...['--test-pattern', 'off', '--transcode-rendition', '240p', '--ingest-grace', '0'],
        ...['--webhook-url', receiver.url, '--webhook-secret', HOOK_SECRET, '--webhook-admission', 'on'],
        ...['--playback-secret', PLAY_SECRET, '--admin-token', ADMIN, '--node-name', `node-${runtime}`],
      ],
      { runtime },
    );
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it('events, admission, a ladder by API, playback tokens and the thumbnail', async () => {
    // Admission refuses over HTTP (403 with the reason) and over WebSocket (close 4403).
    const refused = await fetch(`${server.url}/ingest/live/deny`, { method: 'POST', body: CLIP as BodyInit });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'ingest.forbidden', message: /no/ } });
    expect((await refusedUpgrade(`${server.url.replace(/^http/, 'ws')}/ingest/live/ws-deny`)).status).toBe(403);

    // A ladder of its own, set before the publish.
    const put = await fetch(`${server.url}/api/v1/broadcasts/live/cam/ladder`, {
      method: 'PUT',
      body: JSON.stringify([R144]),
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(put.status).toBe(200);

    const publisher = await openWsPublisher(`${server.url.replace(/^http/, 'ws')}/ingest/live/cam`);
    try {
      await publisher.sendFile(CLIP, { seed: 3, paced: true });
      const master = `${server.url}/hls/live/cam/master.m3u8`;
      // Playback tokens: 401 without, 403 wrong, 200 signed, and the token on every URI.
      expect((await fetch(master)).status).toBe(401);
      expect((await fetch(`${master}?exp=${Math.floor(Date.now() / 1000) + 60}&sig=${'0'.repeat(64)}`)).status).toBe(
        403,
      );
      const signed = await signPlaybackUrl(master, 'live/cam', PLAY_SECRET, 600);
      let last = '';
      const text = await waitFor(
        async () => {
          const res = await fetch(signed);
          last = `${res.status} ${await res.text()}`;
          return last.includes('r144/playlist.m3u8') ? last.slice(4) : undefined;
        },
        'the signed master to list the r144 rung',
        { timeoutMs: 20_000, intervalMs: 100 },
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}\nlast answer: ${last}\nserver log:\n${server.stdout().slice(-3000)}`);
      });
      const query = new URL(signed).search.slice(1);
      const uris = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(uris.length).toBeGreaterThan(0);
      for (const uri of uris) expect(uri.endsWith(`?${query}`), uri).toBe(true);
      // The ladder set by API is what ffprobe finds.
      const streams = await probeStreams(signed);
      const sizes = [...new Set(streams.filter((s) => s.codecName === 'h264').map((s) => `${s.width}x${s.height}`))];
      expect(sizes.sort()).toEqual(['256x144', '640x360']);

      // The thumbnail: a JPEG of the source's 16:9, behind the same token.
      const thumbUrl = signed.replace('/master.m3u8', '/thumbnail.jpg');
      expect((await fetch(`${server.url}/hls/live/cam/thumbnail.jpg`)).status).toBe(401);
      const jpeg = await waitFor(
        async () => {
          const res = await fetch(thumbUrl);
          return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined;
        },
        'a thumbnail',
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8]);
      const [picture] = await probeStreams(jpeg);
      expect(picture!.codecName).toBe('mjpeg');
      expect(Math.abs(picture!.width! / picture!.height! - 16 / 9)).toBeLessThan(0.02);
    } finally {
      await publisher.close();
    }

    // Events: publish, ready, unpublish for the broadcast, signed, from this node.
    const unpublish = await waitFor(() => receiver.events('unpublish', 'live/cam')[0], 'the unpublish event', {
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    const [publish] = receiver.events('publish', 'live/cam');
    const [ready] = receiver.events('ready', 'live/cam');
    expect(publish).toMatchObject({ type: 'publish', transport: 'ws', admission: true, node: `node-${runtime}` });
    expect(ready).toMatchObject({ type: 'ready', codec: expect.stringMatching(/^avc1\./) });
    expect(unpublish).toMatchObject({ type: 'unpublish', node: `node-${runtime}` });
    for (const r of receiver.received.filter((x) => x.event.broadcast === 'live/cam')) {
      expect(validSignature(HOOK_SECRET, r.body, r.signature)).toBe(true);
    }
    const api = await getJson<{ sources: Array<{ broadcast: string }> }>(`${server.url}/api/v1/transcode`);
    expect(Array.isArray(api.sources)).toBe(true);
  }, 120_000);
});
