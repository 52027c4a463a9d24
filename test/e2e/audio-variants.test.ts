/**
 * The audio ladder in the master playlist, against the running CLI server with the built-in test
 * pattern: one audio group per codec and bitrate, each rung's variant on the AAC group of its
 * audio bitrate, every video variant listed again with the Opus group after all AAC variants,
 * BANDWIDTH counting the audio referenced; ffprobe reads every variant of the master. A/V sync
 * over 60 s of the test pattern: the beep that starts each second and the white flash on the frame
 * where it starts are at most one audio frame apart in the 240p + AAC-64 and 720p + Opus variants.
 */

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';

import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { probePackets } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { parseM3u8 } from './helpers.ts';

const run = promisify(execFile);
const SOURCE = 'live/tp';
/** Seconds of test pattern the sync test measures. */
const SYNC_S = 60;
const RATE = 48_000;

type Segment = { msn: number; uri: string; map: string; duration: number };

let server: RunningServer;

beforeAll(async () => {
  server = await startServer([
    ...['--test-pattern', SOURCE, '--transcode-rendition', '720p,240p'],
    ...['--transcode-audio', 'ladder', '--transcode-overload', 'off'],
  ]);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const hls = (file: string) => `${server.url}/hls/${SOURCE}/${file}`;

type Variant = { uri: string; attributes: Record<string, unknown> };

/** The master once it lists both rungs with both AAC groups and the Opus group. */
async function fullMaster(): Promise<{ raw: string; variants: Variant[] }> {
  return waitFor(
    async () => {
      const raw = await getText(hls('master.m3u8'));
      if (raw === undefined) return undefined;
      const variants = (parseM3u8(raw).playlists ?? []) as Variant[];
      return variants.length === 4 && raw.includes('audio-aac-64k') ? { raw, variants } : undefined;
    },
    'a master with the source and the 240p rung, the AAC rendition of the rung and the Opus rendition',
    { timeoutMs: 45_000, intervalMs: 250 },
  );
}

describe('master playlist with the audio ladder (CLI server, test pattern)', () => {
  it('lists one audio group per codec and bitrate, AAC variants first, then every video variant with Opus; ffprobe reads each variant', async () => {
    const { raw, variants } = await fullMaster();
    const media = raw.split('\n').filter((l) => l.startsWith('#EXT-X-MEDIA:'));
    expect(media.map((l) => /GROUP-ID="([^"]+)".*URI="([^"]+)"/.exec(l)?.slice(1))).toEqual([
      ['audio', 'audio.m3u8'],
      ['audio-aac-64k', 'audio-aac-64k/audio.m3u8'],
      ['audio-opus-64k', 'audio-opus-64k/audio.m3u8'],
    ]);
    // The test pattern is 1280x720 below the 720p rung's bitrate: the source serves 720p (the rung
    // is bypassed), so its 128 kb/s AAC rendition is referenced by no variant.
    expect(variants.map((v) => [v.uri, v.attributes['AUDIO']])).toEqual([
      ['playlist.m3u8', 'audio'],
      ['240p/playlist.m3u8', 'audio-aac-64k'],
      ['playlist.m3u8', 'audio-opus-64k'],
      ['240p/playlist.m3u8', 'audio-opus-64k'],
    ]);
    for (const [i, v] of variants.entries()) {
      const codecs = String(v.attributes['CODECS']).split(',');
      expect(codecs[0], v.uri).toMatch(/^avc1\.[0-9a-f]{6}$/);
      expect(codecs[1], v.uri).toBe(i < 2 ? 'mp4a.40.2' : 'opus');
    }
    // BANDWIDTH counts the audio referenced: the same video is dearer with the source's 128 kb/s AAC than with 64 kb/s Opus.
    const bandwidth = (i: number) => Number(variants[i]!.attributes['BANDWIDTH']);
    expect(bandwidth(0)).toBeGreaterThan(bandwidth(2));
    expect(bandwidth(1) - bandwidth(3)).toBeLessThan(32_000);
    for (const i of [1, 3]) expect(bandwidth(i), variants[i]!.uri).toBeGreaterThan(64_000 + 300_000);

    // ffprobe opens the master: one program per variant, its video and the audio of its group.
    const { stdout } = await run(
      'ffprobe',
      [
        '-v',
        'error',
        '-show_programs',
        '-show_entries',
        'stream=codec_name,width,height',
        '-of',
        'json',
        hls('master.m3u8'),
      ],
      { timeout: 30_000 },
    );
    const programs = (JSON.parse(stdout) as { programs: Array<{ streams: Array<Record<string, unknown>> }> }).programs;
    expect(
      programs.map((p) =>
        p.streams
          .map((s) => (s['width'] === undefined ? s['codec_name'] : `${s['codec_name']} ${s['height']}p`))
          .sort(),
      ),
    ).toEqual([
      ['aac', 'h264 720p'],
      ['aac', 'h264 240p'],
      ['h264 720p', 'opus'],
      ['h264 240p', 'opus'],
    ]);
  });

  it(
    `keeps the beep and the white flash of every second within one audio frame over ${SYNC_S} s, in the 240p + AAC-64 and 720p + Opus variants`,
    async () => {
      const variants = [
        { video: '240p/playlist.m3u8', audio: 'audio-aac-64k/audio.m3u8', frameSamples: 1024 },
        { video: 'playlist.m3u8', audio: 'audio-opus-64k/audio.m3u8', frameSamples: 960 },
      ];
      // The test pattern runs in real time: wait until every playlist holds SYNC_S seconds of the same segments.
      const common = await waitFor(
        async () => {
          const lists = await Promise.all(variants.flatMap((v) => [v.video, v.audio]).map(segmentsOf));
          const msns = new Set(lists[0]!.map((x) => x.msn));
          for (const list of lists.slice(1)) {
            const here = new Set(list.map((x) => x.msn));
            for (const msn of msns) if (!here.has(msn)) msns.delete(msn);
          }
          const listed = lists[0]!.filter((x) => msns.has(x.msn));
          const seconds = listed.reduce((t, x) => t + x.duration, 0);
          return seconds >= SYNC_S ? [...msns] : undefined;
        },
        `${SYNC_S} s of complete segments in every playlist`,
        { timeoutMs: (SYNC_S + 120) * 1000, intervalMs: 1000 },
      );
      const dir = await mkdtemp(path.join(os.tmpdir(), 'lvqr-sync-'));
      try {
        for (const v of variants) {
          const flashes = await flashTimes(await download(v.video, common, path.join(dir, 'video.mp4')));
          const audio = await beepTimes(await download(v.audio, common, path.join(dir, 'audio.mp4')));
          const frameS = v.frameSamples / RATE;
          // Each flash against the beep nearest to it; a flash with no beep within half a second
          // lies where the audio segments of the same MSNs do not reach (they may be cut differently).
          const offsets = flashes
            .map((f) => audio.beeps.reduce((a, b) => (Math.abs(b - f) < Math.abs(a - f) ? b : a), Infinity) - f)
            .filter((o) => Math.abs(o) < 0.5);
          expect(offsets.length, `${v.video}: flashes with a beep near them`).toBeGreaterThanOrEqual(SYNC_S - 4);
          expect(audio.beeps.length, `${v.audio}: one beep a second`).toBeLessThanOrEqual(
            Math.ceil(audio.endS - audio.startS) + 1,
          );
          const worst = Math.max(...offsets.map(Math.abs));
          expect(
            worst,
            `${v.video} + ${v.audio}: offsets ${offsets.map((o) => (o * 1000).toFixed(1)).join(' ')} ms`,
          ).toBeLessThanOrEqual(frameS);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    (SYNC_S + 200) * 1000,
  );
});

/** Complete segments of a playlist (with the init each needs). */
async function segmentsOf(uri: string): Promise<Segment[]> {
  const text = await getText(hls(uri));
  if (text === undefined) return [];
  const manifest = parseM3u8(text) as {
    mediaSequence: number;
    segments: Array<{ uri: string; duration: number; map?: { uri: string }; gap?: boolean }>;
  };
  return manifest.segments
    .filter((x) => x.gap !== true)
    .map((x) => ({
      msn: Number(/seg-(\d+)\.m4s$/.exec(x.uri)?.[1]),
      uri: x.uri,
      map: x.map?.uri ?? '',
      duration: x.duration,
    }));
}

/** Downloads the init and the segments `msns` of a playlist into one fMP4 file. */
async function download(playlistUri: string, msns: readonly number[], file: string): Promise<string> {
  const base = playlistUri.slice(0, playlistUri.lastIndexOf('/') + 1);
  const segments = (await segmentsOf(playlistUri)).filter((x) => msns.includes(x.msn));
  const inits = new Set(segments.map((x) => x.map));
  expect(inits.size, `${playlistUri}: one init over the measured segments`).toBe(1);
  const fetchBytes = async (uri: string) => new Uint8Array(await (await fetch(hls(base + uri))).arrayBuffer());
  const parts = [await fetchBytes(segments[0]!.map)];
  for (const x of segments) parts.push(await fetchBytes(x.uri));
  await writeFile(file, Buffer.concat(parts));
  return file;
}

/** Presentation times (s) of the white frames of a video file. */
async function flashTimes(file: string): Promise<number[]> {
  const { stdout } = await run(
    'ffmpeg',
    [
      '-nostdin',
      '-v',
      'error',
      '-copyts',
      '-i',
      file,
      '-an',
      '-vf',
      'scale=64:36,signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=-',
      '-f',
      'null',
      '-',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const times: number[] = [];
  let pts: number | undefined;
  for (const line of stdout.split('\n')) {
    const frame = /pts_time:([\d.]+)/.exec(line);
    if (frame !== null) pts = Number(frame[1]);
    const luma = /YAVG=([\d.]+)/.exec(line);
    if (luma !== null && pts !== undefined && Number(luma[1]) > 200) times.push(pts);
  }
  return times;
}

/** Start times (s, on the file's timeline) of the 880 Hz beeps over the 440 Hz tone, and the span decoded. */
async function beepTimes(file: string): Promise<{ beeps: number[]; startS: number; endS: number }> {
  const packets = await probePackets(file, 'a');
  const raw = `${file}.f32`;
  await run('ffmpeg', ['-nostdin', '-y', '-v', 'error', '-i', file, '-ac', '1', '-f', 'f32le', raw]);
  const bytes = await readFile(raw);
  const pcm = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  // The decoded stream starts at the first packet's pts (Opus: plus pre_skip, which the decoder drops).
  const mp4 = await readFile(file);
  const dOps = mp4.indexOf('dOps');
  const preSkip = dOps < 0 ? 0 : mp4.readUInt16BE(dOps + 6);
  const startS = (packets[0]!.pts + preSkip) / RATE;
  const window = 480;
  const table = (hz: number, phase: number) =>
    Float64Array.from({ length: window }, (_, i) => Math.cos((2 * Math.PI * hz * i) / RATE + phase));
  const tables = [440, 880].map((hz) => [table(hz, 0), table(hz, -Math.PI / 2)] as const);
  /** Goertzel-like power of `hz` (tables[0]: 440, tables[1]: 880) over the window at `from`. */
  const power = (from: number, which: 0 | 1): number => {
    const [cos, sin] = tables[which]!;
    let re = 0;
    let im = 0;
    for (let i = 0; i < window; i++) {
      re += pcm[from + i]! * cos[i]!;
      im += pcm[from + i]! * sin[i]!;
    }
    return re * re + im * im;
  };
  // Power of a full-window sine of amplitude 0.2 (the test pattern's level), halved.
  const strong = ((0.2 * window) / 2) ** 2 / 2;
  const times: number[] = [];
  let inBeep = false;
  for (let at = 0; at + window <= pcm.length; at += 48) {
    // The beep: 880 Hz stronger than 440 Hz, and at least half the power of the tone's amplitude.
    const p880 = power(at, 1);
    const beep = p880 > power(at, 0) && p880 > strong;
    // The window's centre is where more than half of it became the beep.
    if (beep && !inBeep) times.push(startS + (at + window / 2) / RATE);
    inBeep = beep;
  }
  return { beeps: times, startS, endS: startS + pcm.length / RATE };
}
