/**
 * Per-stream ladders against the running CLI server: one set by `PUT
 * /api/v1/broadcasts/<broadcast>/ladder` and one carried by the admission answer are what
 * `/api/v1/transcode` plans and what ffprobe finds in the rungs; a change during a broadcast
 * applies at the next source keyframe (a rung that left ends, a new one starts, one that kept its
 * name goes on after a discontinuity); the admin API's auth (404 off, 401, 403) and its refusals
 * (odd size, upscale of the live source, malformed JSON).
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { type Receiver, startReceiver } from '../events/receiver.ts';
import { probePackets, probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { ffmpegPublish, openWsPublisher, segmentWithInit } from './helpers.ts';

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

function del(broadcast: string, token = ADMIN): Promise<Response> {
  return fetch(ladderUrl(broadcast), { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
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
  // A rung enters the master with its first complete segment, a segment after the plan is known.
  const master = `${server.url}/hls/${broadcast}/master.m3u8`;
  await waitFor(
    async () => {
      const text = await getText(master);
      return text !== undefined && source.plan!.every((r) => text.includes(`RESOLUTION=${r.width}x${r.height}`));
    },
    `every planned rung of ${broadcast} in its master`,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  const streams = await probeStreams(master);
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
    // DELETE returns a broadcast to the default; one with no ladder of its own is left as it is.
    expect((await put('live/x', JSON.stringify([R144]))).status).toBe(200);
    expect((await del('live/x', 'nope')).status).toBe(403);
    const deleted = await del('live/x');
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({
      broadcast: 'live/x',
      origin: 'default',
      ladder: [expect.objectContaining({ name: '240p' })],
      active: null,
      appliesAt: 'publish',
    });
    const again = await del('live/x');
    expect(await again.json()).toEqual({
      broadcast: 'live/x',
      origin: 'default',
      ladder: [expect.objectContaining({ name: '240p' })],
      active: null,
    });
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

  it('a ladder changed during the broadcast applies at the next source keyframe: rungs leave, start, or go on after a discontinuity', async () => {
    const name = 'live/mid';
    const base = `${server.url}/hls/${name}`;
    // 1 s GOPs, paced, looped for longer than the test needs; killed at the end.
    const publisher = ffmpegPublish(fixturePath('360p30.mp4'), `${server.url}/ingest/${name}`, { loops: 12 });
    try {
      const segments = (text: string | undefined) => (text ?? '').split('\n').filter((l) => /^seg-\d+\.m4s$/.test(l));
      await waitFor(async () => segments(await getText(`${base}/240p/playlist.m3u8`)).length >= 2, '240p segments', {
        timeoutMs: 20_000,
        intervalMs: 100,
      });
      // A rendition replaces the default one.
      const changed = await put(name, JSON.stringify([R180]));
      expect(changed.status).toBe(200);
      expect(await changed.json()).toMatchObject({ origin: 'api', active: [R180], appliesAt: 'next keyframe' });
      await waitFor(
        async () =>
          segments(await getText(`${base}/r180/playlist.m3u8`)).length >= 1 &&
          (await getText(`${base}/240p/playlist.m3u8`))?.includes('#EXT-X-ENDLIST') === true,
        'r180 segments and the 240p playlist ended',
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      const master = (await getText(`${base}/master.m3u8`))!;
      expect(master).toContain('r180/playlist.m3u8');
      expect(master).not.toContain('240p/playlist.m3u8');
      const plan = (await getJson<TranscodeApi>(`${server.url}/api/v1/transcode`)).sources.find(
        (x) => x.broadcast === name,
      )?.plan;
      expect(plan?.map((r) => `${r.rendition}:${r.width}x${r.height}`)).toEqual(['r180:320x180']);
      // The new rung starts on a keyframe, at its own size.
      const started = await segmentWithInit(`${base}/r180/playlist.m3u8`, 'first');
      expect((await probeStreams(started)).map((x) => `${x.width}x${x.height}`)).toEqual(['320x180']);
      expect((await probePackets(started))[0]!.keyframe).toBe(true);
      // The same name with other figures: its playlist goes on after a discontinuity.
      const before = segments(await getText(`${base}/r180/playlist.m3u8`)).at(-1)!;
      const resized = await put(name, JSON.stringify([{ ...R180, width: 256, height: 144 }]));
      expect(resized.status).toBe(200);
      expect(await resized.json()).toMatchObject({ active: [{ width: 256 }], appliesAt: 'next keyframe' });
      const after = await waitFor(
        async () => {
          const text = (await getText(`${base}/r180/playlist.m3u8`)) ?? '';
          const at = text.indexOf('#EXT-X-DISCONTINUITY\n');
          return at >= 0 && segments(text.slice(at)).length >= 1 ? text : undefined;
        },
        'a discontinuity in the r180 playlist, then a segment',
        { timeoutMs: 20_000, intervalMs: 100 },
      ).catch(async (error: unknown) => {
        throw new Error(
          `${String(error)}\nr180 playlist:\n${await getText(`${base}/r180/playlist.m3u8`)}\nserver log:\n${server.stdout().slice(-2000)}`,
        );
      });
      expect(after).not.toContain('#EXT-X-ENDLIST');
      const firstNew = segments(after.slice(after.indexOf('#EXT-X-DISCONTINUITY\n')))[0]!;
      expect(Number(/\d+/.exec(firstNew)![0])).toBeGreaterThan(Number(/\d+/.exec(before)![0]));
      const resizedSegment = await segmentWithInit(`${base}/r180/playlist.m3u8`, 'last');
      expect((await probeStreams(resizedSegment)).map((x) => `${x.width}x${x.height}`)).toEqual(['256x144']);
      expect((await probePackets(resizedSegment))[0]!.keyframe).toBe(true);
      // DELETE while live: the default ladder (240p) is back at the next keyframe, r180 ends.
      const reset = await del(name);
      expect(reset.status).toBe(200);
      expect(await reset.json()).toMatchObject({
        origin: 'default',
        active: [{ name: '240p' }],
        appliesAt: 'next keyframe',
      });
      const playing = (text: string | undefined) => segments(text).length >= 1 && !text!.includes('#EXT-X-ENDLIST');
      await waitFor(
        async () =>
          playing(await getText(`${base}/240p/playlist.m3u8`)) &&
          (await getText(`${base}/r180/playlist.m3u8`))?.includes('#EXT-X-ENDLIST') === true,
        'the 240p playlist going on again and the r180 playlist ended',
        { timeoutMs: 20_000, intervalMs: 100 },
      ).catch(async (error: unknown) => {
        throw new Error(
          `${String(error)}\n240p playlist:\n${await getText(`${base}/240p/playlist.m3u8`)}\nserver log:\n${server.stdout().slice(-2000)}`,
        );
      });
      const masterAfter = (await getText(`${base}/master.m3u8`))!;
      expect(masterAfter).toContain('240p/playlist.m3u8');
      expect(masterAfter).not.toContain('r180/playlist.m3u8');
      const back = await segmentWithInit(`${base}/240p/playlist.m3u8`, 'last');
      expect((await probeStreams(back)).map((x) => `${x.width}x${x.height}`)).toEqual(['426x240']);
    } finally {
      publisher.kill();
      await publisher.exited;
    }
  }, 90_000);
});
