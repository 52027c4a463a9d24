/**
 * Per-stream ladders with the audio ladder on (CLI server): a stream whose own ladder (PUT
 * /api/v1/broadcasts/<broadcast>/ladder) asks for other audio bitrates gets AAC renditions at
 * exactly those, its rungs' variants reference them, and ffprobe measures them near their target;
 * a stream on the default ladder beside it keeps the default's.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFixture } from '../../testkit/fixtures.ts';
import { getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { probePackets, probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { openWsPublisher } from './helpers.ts';

const ADMIN = 'admin-token-audio-7f1c';
const CLIP = readFixture('360p30.mp4');
const OWN = [
  { name: 'r144', width: 256, height: 144, video_bitrate_kbps: 200, audio_bitrate_kbps: 48 },
  { name: 'r180', width: 320, height: 180, video_bitrate_kbps: 300, audio_bitrate_kbps: 32 },
];

let server: RunningServer;

beforeAll(async () => {
  server = await startServer([
    '--test-pattern',
    'off',
    '--transcode-rendition',
    '240p',
    '--transcode-audio',
    'ladder',
    '--transcode-audio-opus',
    'off',
    '--admin-token',
    ADMIN,
  ]);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** Publishes the clip paced over WebSocket and keeps the connection; returns its close. */
async function publish(broadcast: string): Promise<() => Promise<unknown>> {
  const publisher = await openWsPublisher(`${server.url.replace(/^http/, 'ws')}/ingest/${broadcast}`);
  await publisher.sendFile(CLIP, { seed: 3, paced: true });
  return () => publisher.close();
}

/** The variants (URI -> AUDIO group) and audio groups of `broadcast`'s master once it lists `rungs`. */
async function listing(broadcast: string, rungs: string[]): Promise<{ variants: string[][]; groups: string[] }> {
  return waitFor(
    async () => {
      const raw = await getText(`${server.url}/hls/${broadcast}/master.m3u8`);
      if (raw === undefined) return undefined;
      const lines = raw.split('\n');
      const variants: string[][] = [];
      lines.forEach((line, i) => {
        if (line.startsWith('#EXT-X-STREAM-INF:'))
          variants.push([lines[i + 1]!, /AUDIO="([^"]+)"/.exec(line)?.[1] ?? '']);
      });
      const groups = lines.filter((l) => l.startsWith('#EXT-X-MEDIA:')).map((l) => /GROUP-ID="([^"]+)"/.exec(l)![1]!);
      const ready = rungs.every((r) =>
        variants.some(([uri, group]) => uri === `${r}/playlist.m3u8` && group !== 'audio'),
      );
      return ready ? { variants, groups } : undefined;
    },
    `the master of ${broadcast} listing ${rungs.join(', ')} with their audio renditions`,
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

/** Audio bitrate of an HLS AAC playlist as ffprobe reads it (1024 samples a packet), kb/s. */
async function audioKbps(url: string): Promise<number> {
  const [stream] = await probeStreams(url);
  expect(stream?.codecName).toBe('aac');
  const packets = await probePackets(url, 'a');
  expect(packets.length).toBeGreaterThan(20);
  const bytes = packets.reduce((sum, p) => sum + p.size, 0);
  return (bytes * 8) / ((packets.length * 1024) / stream!.sampleRate!) / 1000;
}

describe('per-stream ladders with the audio ladder', () => {
  it("a stream's own ladder gets AAC at its rungs' audio bitrates, referenced by their variants; the default ladder keeps its own", async () => {
    const put = await fetch(`${server.url}/api/v1/broadcasts/live/own/ladder`, {
      method: 'PUT',
      body: JSON.stringify({ ladder: OWN }),
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(put.status).toBe(200);
    const [own, std] = await Promise.all([publish('live/own'), publish('live/std')]);
    try {
      const mine = await listing('live/own', ['r144', 'r180']);
      expect(mine.variants).toEqual([
        ['playlist.m3u8', 'audio'],
        ['r180/playlist.m3u8', 'audio-aac-32k'],
        ['r144/playlist.m3u8', 'audio-aac-48k'],
      ]);
      expect(mine.groups.sort()).toEqual(['audio', 'audio-aac-32k', 'audio-aac-48k']);
      const other = await listing('live/std', ['240p']);
      expect(other.variants).toEqual([
        ['playlist.m3u8', 'audio'],
        ['240p/playlist.m3u8', 'audio-aac-64k'],
      ]);
      // The default ladder's renditions are not made for the stream with its own ladder.
      expect((await fetch(`${server.url}/hls/live/own/audio-aac-64k/audio.m3u8`)).status).toBe(404);
      for (const kbps of [48, 32]) {
        const measured = await audioKbps(`${server.url}/hls/live/own/audio-aac-${kbps}k/audio.m3u8`);
        expect(
          Math.abs(measured - kbps) / kbps,
          `audio-aac-${kbps}k measured ${measured.toFixed(1)} kb/s`,
        ).toBeLessThan(0.15);
      }
    } finally {
      await Promise.all([own(), std()]);
    }
  }, 90_000);
});
