/**
 * Per-stream ladders against the running CLI server: one set by `PUT
 * /api/v1/broadcasts/<broadcast>/ladder` and one carried by the admission answer are what
 * `/api/v1/transcode` plans and what ffprobe finds in the rungs; the admin API's auth (404 off,
 * 401, 403) and its refusals (odd size, upscale of the live source, malformed JSON).
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFixture } from '../../testkit/fixtures.ts';
import { getJson, type RunningServer, startServer } from '../../testkit/server.ts';
import { type Receiver, startReceiver } from '../events/receiver.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { openWsPublisher } from './helpers.ts';

const ADMIN = 'admin-token-9d2e';
const CLIP = readFixture('360p30.mp4');
const R144 = { name: 'r144', width: 256, height: 144, video_bitrate_kbps: 200, audio_bitrate_kbps: 64 };
const R180 = { name: 'r180', width: 320, height: 180, video_bitrate_kbps: 300, audio_bitrate_kbps: 64 };

let receiver: Receiver;
let server: RunningServer;

beforeAll(async () => {
  receiver = await startReceiver((event) =>
    event.type !== 'publish'
      ? {}
      : { body: JSON.stringify(event.broadcast === 'live/adm' ? { allow: true, ladder: [R180] } : { allow: true }) },
  );
  server = await startServer([
    '--test-pattern',
    'off',
    '--transcode-rendition',
    '240p',
    '--admin-token',
    ADMIN,
    '--webhook-url',
    receiver.url,
    '--webhook-admission',
    'on',
  ]);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await receiver?.close();
});

function ladderUrl(broadcast: string): string {
  return `${server.url}/api/v1/broadcasts/${broadcast}/ladder`;
}

function put(broadcast: string, body: string, token = ADMIN): Promise<Response> {
  return fetch(ladderUrl(broadcast), { method: 'PUT', body, headers: { authorization: `Bearer ${token}` } });
}

type TranscodeApi = {
  sources: Array<{ broadcast: string; plan?: Array<{ rendition: string; width: number; height: number }> }>;
};

/** Publishes the clip paced over WebSocket; returns when it is sent. */
async function publish(broadcast: string): Promise<() => Promise<unknown>> {
  const publisher = await openWsPublisher(`${server.url.replace(/^http/, 'ws')}/ingest/${broadcast}`);
  await publisher.sendFile(CLIP, { seed: 1, paced: true });
  return () => publisher.close();
}

/** Waits for the plan of `broadcast` in /api/v1/transcode and ffprobes its master; returns both. */
async function planAndProbe(broadcast: string): Promise<{ plan: string[]; video: string[] }> {
  const source = await waitFor(
    async () =>
      (await getJson<TranscodeApi>(`${server.url}/api/v1/transcode`)).sources.find(
        (s) => s.broadcast === broadcast && s.plan !== undefined,
      ),
    `the plan of ${broadcast}`,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  const plan = source.plan!.map((r) => `${r.rendition}:${r.width}x${r.height}`);
  const streams = await probeStreams(`${server.url}/hls/${broadcast}/master.m3u8`);
  const video = [...new Set(streams.filter((s) => s.codecName === 'h264').map((s) => `${s.width}x${s.height}`))];
  return { plan, video: video.sort() };
}

describe('per-stream ladders', () => {
  it('the admin API needs the admin token and refuses a bad ladder with a clear error', async () => {
    expect((await fetch(ladderUrl('live/x'))).status).toBe(401);
    expect((await fetch(ladderUrl('live/x'), { headers: { authorization: 'Bearer nope' } })).status).toBe(403);
    const odd = await put('live/x', JSON.stringify([{ ...R144, width: 255 }]));
    expect(odd.status).toBe(400);
    expect(await odd.json()).toMatchObject({
      error: { code: 'rendition.invalid', message: expect.stringMatching(/ladder\[0\].*width must be even/) },
    });
    const bad = await put('live/x', '{"ladder": [');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'admin.bad_request' } });
    const empty = await put('live/x', '{"ladder": []}');
    expect(empty.status).toBe(400);
    const unset = await fetch(ladderUrl('live/x'), { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(await unset.json()).toMatchObject({ origin: 'default', ladder: [{ name: '240p' }], active: null });
  });

  it('a ladder set by PUT before the publish is what /api/v1/transcode plans and what ffprobe finds', async () => {
    const res = await put('live/api', JSON.stringify({ ladder: [R144] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ origin: 'api', ladder: [R144], appliesAt: 'publish' });
    const done = await publish('live/api');
    try {
      const { plan, video } = await planAndProbe('live/api');
      expect(plan).toEqual(['r144:256x144']);
      expect(video).toEqual(['256x144', '640x360']);
      // While live: a rung larger than the 640x360 source is refused, the ladder in effect kept.
      const upscale = await put('live/api', JSON.stringify([{ ...R144, name: 'big', width: 1280, height: 720 }]));
      expect(upscale.status).toBe(400);
      expect(await upscale.json()).toMatchObject({ error: { code: 'rendition.invalid', message: /upscale/ } });
      const got = await (await fetch(ladderUrl('live/api'), { headers: { authorization: `Bearer ${ADMIN}` } })).json();
      expect(got).toMatchObject({ origin: 'api', ladder: [R144], active: [R144] });
    } finally {
      await done();
    }
  });

  it('a ladder from the admission answer is what /api/v1/transcode plans and what ffprobe finds', async () => {
    const done = await publish('live/adm');
    try {
      const { plan, video } = await planAndProbe('live/adm');
      expect(plan).toEqual(['r180:320x180']);
      expect(video).toEqual(['320x180', '640x360']);
    } finally {
      await done();
    }
    // A broadcast with no ladder of its own gets the default.
    const other = await publish('live/plain');
    try {
      expect((await planAndProbe('live/plain')).plan).toEqual(['240p:426x240']);
    } finally {
      await other();
    }
  });
});
