/**
 * End to end over a real socket: ffmpeg publishes a fixture with one long chunked POST to the CLI
 * server (a child process); the master, the rungs, blocking reload, the APIs and the end of the
 * broadcast are checked from the outside, with ffmpeg / ffprobe / m3u8-parser as the judges.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureInfo, fixturePath } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import {
  ffmpegDecodeLive,
  ffmpegPublish,
  judgeLiveDecodes,
  lastPart,
  metricSum,
  type Proc,
  parseM3u8,
  waitForMasterListing,
} from './helpers.ts';

const FIXTURE = '720p30-bframes-aac.mp4';
const LOOPS = 3; // 4 passes of the 3 s clip: 12 s of live input
const RUNGS = [
  { name: '720p', width: 1280, height: 720, audio: 'audio-aac-128k' },
  { name: '480p', width: 854, height: 480, audio: 'audio-aac-96k' },
  { name: '240p', width: 426, height: 240, audio: 'audio-aac-64k' },
] as const;
/** The audio ladder's Opus rendition (on by default). */
const OPUS = 'audio-opus-64k';

let server: RunningServer;
let publisher: Proc;
let base: string;
/** Live decodes of each rung (started once the rungs are in the master), awaited at the end. */
const decodes = new Map<string, Proc>();

beforeAll(async () => {
  // Every source frame is checked in every rung: no overload shedding on a busy test machine.
  server = await startServer(['--test-pattern', 'off', '--transcode-overload', 'off']);
  base = `${server.url}/hls/live/e2e`;
  publisher = ffmpegPublish(fixturePath(FIXTURE), `${server.url}/ingest/live/e2e`, { loops: LOOPS });
});

afterAll(async () => {
  publisher?.kill();
  for (const d of decodes.values()) d.kill();
  await server?.stop();
});

describe('ffmpeg publishes fMP4 with one long chunked POST', () => {
  it('the master lists 720p in the source variant’s place (one variant per resolution), then 480p and 240p, each with CODECS, RESOLUTION, FRAME-RATE and the AAC group of its bitrate, then each again with the Opus group', async () => {
    await waitForMasterListing(
      base,
      RUNGS.map((r) => r.name),
      25_000,
    );
    // Decode each rung live from its first segment until the broadcast ends (checked below).
    for (const r of [{ name: 'source' }, ...RUNGS]) {
      decodes.set(
        r.name,
        ffmpegDecodeLive(r.name === 'source' ? `${base}/playlist.m3u8` : `${base}/${r.name}/playlist.m3u8`),
      );
    }
    // A rung's variant carries the source's audio until its AAC rendition has a complete segment.
    const text = await waitFor(
      async () => {
        const t = await getText(`${base}/master.m3u8`);
        return t !== undefined && RUNGS.every((r) => t.includes(`AUDIO="${r.audio}"`)) ? t : undefined;
      },
      'every rung with the AAC rendition of its bitrate',
      { timeoutMs: 20_000, intervalMs: 100 },
    );

    const master = parseM3u8(text);
    expect(text.startsWith('#EXTM3U\n')).toBe(true);
    const groups = master.mediaGroups.AUDIO as Record<string, Record<string, { uri: string; default: boolean }>>;
    for (const group of [...RUNGS.map((r) => r.audio), OPUS]) {
      expect(Object.values(groups[group] ?? {}), group).toEqual([
        expect.objectContaining({ uri: `${group}/audio.m3u8`, default: true }),
      ]);
    }

    const all = master.playlists as Array<{ uri: string; attributes: Record<string, unknown> }>;
    // The source is 1280x720 above the 720p rung's bitrate: the rung is encoded and serves that size.
    // Each video variant is listed with AAC first, then once more with Opus.
    expect(all.map((v) => [v.uri, v.attributes['AUDIO']])).toEqual([
      ...RUNGS.map((r) => [`${r.name}/playlist.m3u8`, r.audio]),
      ...RUNGS.map((r) => [`${r.name}/playlist.m3u8`, OPUS]),
    ]);
    const source = fixtureInfo(FIXTURE).video;
    expect({ width: source.width, height: source.height }).toEqual({
      width: RUNGS[0]!.width,
      height: RUNGS[0]!.height,
    });
    all.forEach((v, i) => {
      const a = v.attributes;
      const rung = RUNGS[i % RUNGS.length]!;
      expect(a['CODECS'], v.uri).toMatch(
        i < RUNGS.length ? /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/ : /^avc1\.[0-9a-f]{6},opus$/,
      );
      expect(a['RESOLUTION'], v.uri).toEqual({ width: rung.width, height: rung.height });
      expect(a['FRAME-RATE'], v.uri).toBeCloseTo(30, 1);
      expect(a['BANDWIDTH'], v.uri).toBeGreaterThan(0);
      expect(Number(a['AVERAGE-BANDWIDTH']), v.uri).toBeLessThanOrEqual(a['BANDWIDTH'] as number);
      expect(Number(a['AVERAGE-BANDWIDTH']), v.uri).toBeGreaterThan(0);
    });
    const variants = all.slice(0, RUNGS.length);
    // Rungs are listed by falling bandwidth.
    const bandwidths = variants.map((v) => v.attributes['BANDWIDTH'] as number);
    expect([...bandwidths].sort((x, y) => y - x)).toEqual(bandwidths);
  });

  it('a blocking reload of each playlist (source and rungs) for the next part is answered once that part exists, and lists it', async () => {
    // All four at once: each waits for its next segment to begin (up to one target duration).
    await Promise.all(
      ['source', ...RUNGS.map((r) => r.name)].map(async (name) => {
        const url = name === 'source' ? `${base}/playlist.m3u8` : `${base}/${name}/playlist.m3u8`;
        const before = (await getText(url))!;
        const media = parseM3u8(before);
        expect(media.serverControl?.canBlockReload, name).toBe(true);
        const last = lastPart(before);
        expect(last, before).toBeDefined();
        const next = last!.msn + 1;
        const wanted = `part-${next}-0.m4s`;
        // The preload hint may already name it; it must not be listed as a part yet.
        expect(before).not.toMatch(new RegExp(`#EXT-X-PART:[^\\n]*URI="${wanted}"`));
        const res = await fetch(`${url}?_HLS_msn=${next}&_HLS_part=0`);
        const after = await res.text();
        // 200 with the part listed, not the 503 the server answers after holding the request for
        // three target durations: answered once the part existed (how soon depends on how fast the
        // machine encodes the rung, which this file does not judge).
        expect(res.status, `${name}: ${after}`).toBe(200);
        expect(after, name).toContain(`URI="${wanted}"`);
        // The part it announced is there to fetch.
        const part = await fetch(new URL(wanted, url));
        expect(part.status, name).toBe(200);
        expect((await part.arrayBuffer()).byteLength, name).toBeGreaterThan(0);
      }),
    );
  });

  it('/api/v1/transcode shows every planned rung running with latency and realtime figures', async () => {
    type Rung = {
      rendition: string;
      state: string;
      latencyMsP50?: number;
      latencyMsP99?: number;
      realtimeFactor?: number;
    };
    type Status = { backend: string; sources: Array<{ broadcast: string; rungs: Rung[] }> };
    const status = await waitFor(
      async () => {
        const s = await getJson<Status>(`${server.url}/api/v1/transcode`);
        const src = s.sources.find((x) => x.broadcast === 'live/e2e');
        return src !== undefined &&
          RUNGS.every((r) => src.rungs.some((x) => x.rendition === r.name && typeof x.latencyMsP50 === 'number'))
          ? s
          : undefined;
      },
      'rung latency figures',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(status.backend).toBe('software');
    const src = status.sources.find((x) => x.broadcast === 'live/e2e')!;
    for (const r of RUNGS) {
      const rung = src.rungs.find((x) => x.rendition === r.name)!;
      expect(rung.state, r.name).toBe('running');
      expect(rung.latencyMsP50, r.name).toBeGreaterThan(0);
      expect(rung.latencyMsP99, r.name).toBeGreaterThanOrEqual(rung.latencyMsP50!);
      expect(rung.realtimeFactor, r.name).toBeGreaterThan(0);
    }
  });

  it('/metrics counts the fragments the ladder read and wrote', async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(metricSum(text, 'lvqr_transcode_fragments_total')).toBeGreaterThan(0);
    expect(metricSum(text, 'lvqr_transcode_output_fragments_total')).toBeGreaterThan(0);
    for (const r of RUNGS) {
      expect(text).toMatch(
        new RegExp(`^lvqr_transcode_output_fragments_total\\{[^}]*rendition="${r.name}"[^}]*\\} [1-9]`, 'm'),
      );
    }
  });

  it('HLS media answers HEAD with its size, a byte range with 206, an impossible range with 416, and OPTIONS with a CORS preflight', async () => {
    const playlist = (await getText(`${base}/240p/playlist.m3u8`))!;
    const segment = /^(seg-\d+\.m4s)$/m.exec(playlist)![1]!;
    const url = `${base}/240p/${segment}`;
    const full = await fetch(url);
    const bytes = new Uint8Array(await full.arrayBuffer());
    expect(full.status).toBe(200);
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(full.headers.get('access-control-allow-origin')).toBe('*');

    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(bytes.byteLength));
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    const range = await fetch(url, { headers: { range: 'bytes=4-11' } });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes 4-11/${bytes.byteLength}`);
    expect(new Uint8Array(await range.arrayBuffer())).toEqual(bytes.subarray(4, 12));
    const suffix = await fetch(url, { headers: { range: 'bytes=-100' } });
    expect(suffix.status).toBe(206);
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(bytes.subarray(bytes.byteLength - 100));
    const beyond = await fetch(url, { headers: { range: `bytes=${bytes.byteLength}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${bytes.byteLength}`);

    const preflight = await fetch(`${base}/master.m3u8`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://example.test',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'range',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('GET');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('range');
  });

  it('when the publisher stops, the broadcast ends after the grace period and every playlist gets EXT-X-ENDLIST', async () => {
    expect(await publisher.exited, publisher.output()).toBe(0);
    for (const url of [
      `${base}/playlist.m3u8`,
      `${base}/audio.m3u8`,
      ...RUNGS.map((r) => `${base}/${r.name}/playlist.m3u8`),
    ]) {
      await waitFor(async () => (await getText(url))?.includes('#EXT-X-ENDLIST'), `ENDLIST in ${url}`, {
        timeoutMs: 20_000,
        intervalMs: 200,
      });
    }
    const ended = parseM3u8((await getText(`${base}/240p/playlist.m3u8`))!);
    expect(ended.endList).toBe(true);
  });

  it('after the end, the master still lists every rung (720p in the source variant’s place), and ffprobe reads each variant it names', async () => {
    await waitFor(async () => (await getText(`${base}/720p/playlist.m3u8`))?.includes('#EXT-X-ENDLIST'), 'ended', {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    const master = parseM3u8((await getText(`${base}/master.m3u8`))!);
    const uris = (master.playlists as Array<{ uri: string }>).map((p) => p.uri);
    expect(uris).toEqual([...RUNGS, ...RUNGS].map((r) => `${r.name}/playlist.m3u8`));
    for (const r of RUNGS) {
      const [video] = (await probeStreams(`${base}/${r.name}/playlist.m3u8`)).filter((s) => s.codecType === 'video');
      expect({ width: video?.width, height: video?.height }, r.name).toEqual({ width: r.width, height: r.height });
    }
  });

  it('every rung, decoded live by ffmpeg from its first segment to the end, has no decode error and every source frame at the planned size', async () => {
    await judgeLiveDecodes(decodes, base, RUNGS, fixtureInfo(FIXTURE).video.frameCount * (LOOPS + 1));
  });
});
