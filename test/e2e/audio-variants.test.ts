/**
 * The audio ladder in the master playlist, against the running CLI server with the built-in test
 * pattern: one audio group per codec and bitrate, each rung's variant on the AAC group of its
 * audio bitrate, every video variant listed again with the Opus group after all AAC variants,
 * BANDWIDTH counting the audio referenced; ffprobe reads every variant of the master.
 */

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';
import { parseM3u8 } from './helpers.ts';

const run = promisify(execFile);
const SOURCE = 'live/tp';

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
      return variants.length === 6 && raw.includes('audio-aac-64k') ? { raw, variants } : undefined;
    },
    'a master with both rungs, the AAC rendition of each and the Opus rendition',
    { timeoutMs: 45_000, intervalMs: 250 },
  );
}

describe('master playlist with the audio ladder (CLI server, test pattern)', () => {
  it('lists one audio group per codec and bitrate, AAC variants first, then every video variant with Opus; ffprobe reads each variant', async () => {
    const { raw, variants } = await fullMaster();
    const media = raw.split('\n').filter((l) => l.startsWith('#EXT-X-MEDIA:'));
    expect(media.map((l) => /GROUP-ID="([^"]+)".*URI="([^"]+)"/.exec(l)?.slice(1))).toEqual([
      ['audio', 'audio.m3u8'],
      ['audio-aac-128k', 'audio-aac-128k/audio.m3u8'],
      ['audio-aac-64k', 'audio-aac-64k/audio.m3u8'],
      ['audio-opus-64k', 'audio-opus-64k/audio.m3u8'],
    ]);
    expect(variants.map((v) => [v.uri, v.attributes['AUDIO']])).toEqual([
      ['playlist.m3u8', 'audio'],
      ['720p/playlist.m3u8', 'audio-aac-128k'],
      ['240p/playlist.m3u8', 'audio-aac-64k'],
      ['playlist.m3u8', 'audio-opus-64k'],
      ['720p/playlist.m3u8', 'audio-opus-64k'],
      ['240p/playlist.m3u8', 'audio-opus-64k'],
    ]);
    for (const [i, v] of variants.entries()) {
      const codecs = String(v.attributes['CODECS']).split(',');
      expect(codecs[0], v.uri).toMatch(/^avc1\.[0-9a-f]{6}$/);
      expect(codecs[1], v.uri).toBe(i < 3 ? 'mp4a.40.2' : 'opus');
    }
    // BANDWIDTH counts the audio referenced: the same video is dearer with 128 kb/s AAC than with 64 kb/s Opus.
    const bandwidth = (i: number) => Number(variants[i]!.attributes['BANDWIDTH']);
    expect(bandwidth(1)).toBeGreaterThan(bandwidth(4));
    expect(bandwidth(2) - bandwidth(5)).toBeLessThan(32_000);
    for (const i of [2, 5]) expect(bandwidth(i), variants[i]!.uri).toBeGreaterThan(64_000 + 300_000);

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
      ['aac', 'h264 720p'],
      ['aac', 'h264 240p'],
      ['h264 720p', 'opus'],
      ['h264 720p', 'opus'],
      ['h264 240p', 'opus'],
    ]);
  });
});
