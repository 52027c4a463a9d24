/**
 * `--transcode-scaler` through the CLI server and a real ffmpeg publisher: `/api/v1/transcode`
 * names what scales each source's rungs (`encoder` by default, `quality` for the frame scaler),
 * and the frame scaler's rungs play: ffprobe reads each rung's first segment at its planned size.
 */

import { afterAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { getJson, type RunningServer, startServer } from '../../testkit/server.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { ffmpegPublish, type Proc, segmentWithInit, waitForMasterListing } from './helpers.ts';

const CLIP = fixturePath('720p30-nob-aac.mp4');
const servers: RunningServer[] = [];
const publishers: Proc[] = [];

afterAll(async () => {
  for (const p of publishers) p.kill();
  for (const s of servers) await s.stop();
});

type SourceApi = { broadcast: string; scaler?: string; scalerError?: string };

async function scalerOf(server: RunningServer, broadcast: string): Promise<string> {
  return waitFor(
    async () => {
      const api = (await getJson(`${server.url}/api/v1/transcode`)) as { sources: SourceApi[] };
      return api.sources.find((s) => s.broadcast === broadcast)?.scaler;
    },
    `${broadcast}: a scaler in /api/v1/transcode`,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
}

describe('--transcode-scaler', () => {
  it('the API says the encoders scale by default, and the frame scaler with quality; its rungs play at their sizes', async () => {
    const plain = await startServer(['--test-pattern', 'off', '--transcode-audio', 'passthrough']);
    servers.push(plain);
    const sharp = await startServer([
      ...['--test-pattern', 'off', '--transcode-audio', 'passthrough', '--transcode-scaler', 'quality'],
    ]);
    servers.push(sharp);
    publishers.push(ffmpegPublish(CLIP, `${plain.url}/ingest/live/plain`, { loops: 20 }));
    publishers.push(ffmpegPublish(CLIP, `${sharp.url}/ingest/live/sharp`, { loops: 20 }));
    expect(await scalerOf(plain, 'live/plain')).toBe('encoder');
    expect(await scalerOf(sharp, 'live/sharp')).toBe('quality');
    await waitForMasterListing(`${sharp.url}/hls/live/sharp`, ['480p', '240p'], 30_000);
    for (const [rung, width, height] of [
      ['480p', 854, 480],
      ['240p', 426, 240],
    ] as const) {
      const segment = await segmentWithInit(`${sharp.url}/hls/live/sharp/${rung}/playlist.m3u8`, 'first');
      const video = (await probeStreams(segment)).find((s) => s.codecType === 'video');
      expect([video?.width, video?.height], rung).toEqual([width, height]);
    }
    const api = (await getJson(`${sharp.url}/api/v1/transcode`)) as { sources: SourceApi[] };
    expect(api.sources.find((s) => s.broadcast === 'live/sharp')?.scalerError).toBeUndefined();
  }, 90_000);
});
