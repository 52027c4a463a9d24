/**
 * Rung bypass and one variant per resolution, against the running CLI server and real ffmpeg
 * publishers. A rung at the source's size whose bitrate is at least the source's is published
 * while the source's bitrate is measured, then bypassed: `/api/v1/transcode` says it is bypassed
 * and why, nothing of it is served any more, no master ever lists it, and the master lists the
 * source for that size. A rung at the source's size below the source's bitrate is encoded and
 * takes the source variant's place; its first frames come out without waiting for the decision.
 * No master lists one resolution twice; ffprobe reads the variants the master lists.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import { ffmpegPublish, type Proc, run, segmentWithInit, waitForMasterListing } from './helpers.ts';

const ADMIN = 'admin-token-b7c1';
// 1280x720, about 3.5 Mb/s of video (noise): above the default 720p rung's 2500 kb/s.
const CLIP = fixturePath('720p30-nob-aac.mp4');
const R720_HIGH = { name: '720p', width: 1280, height: 720, video_bitrate_kbps: 12_000, audio_bitrate_kbps: 128 };
const R240 = { name: '240p', width: 426, height: 240, video_bitrate_kbps: 400, audio_bitrate_kbps: 64 };
/** Frames of a source-sized rung that must be published before the bypass rule decides. */
const FIRST_FRAMES = 15;

let server: RunningServer;
const publishers: Proc[] = [];

beforeAll(async () => {
  // Video variants only: the audio ladder's Opus listing would repeat each of them.
  server = await startServer(['--test-pattern', 'off', '--admin-token', ADMIN, '--transcode-audio', 'passthrough']);
}, 60_000);

afterAll(async () => {
  for (const p of publishers) p.kill();
  await server?.stop();
});

type RungApi = {
  rendition: string;
  state: string;
  skippedReason?: string;
  width?: number;
  height?: number;
  framesOut?: number;
  latencyMsP99?: number;
  bypassMeasuring?: boolean;
};
type TranscodeApi = { sources: Array<{ broadcast: string; rungs: RungApi[] }> };

async function rungsOf(broadcast: string): Promise<RungApi[]> {
  const api = (await getJson(`${server.url}/api/v1/transcode`)) as TranscodeApi;
  return api.sources.find((s) => s.broadcast === broadcast)?.rungs ?? [];
}

/** The RESOLUTION and URI of every video variant of a master playlist. */
function variants(master: string): Array<{ resolution: string; uri: string }> {
  const lines = master.split('\n');
  return lines.flatMap((line, i) => {
    if (!line.startsWith('#EXT-X-STREAM-INF:')) return [];
    const resolution = /RESOLUTION=(\d+x\d+)/.exec(line)?.[1] ?? '';
    return [{ resolution, uri: lines[i + 1]!.trim() }];
  });
}

/** Each resolution once among the variants of one audio group (the Opus listing repeats them). */
function expectOneVariantPerResolution(master: string): void {
  const seen = new Map<string, string>();
  for (const line of master.split('\n')) {
    if (!line.startsWith('#EXT-X-STREAM-INF:')) continue;
    const key = `${/RESOLUTION=(\d+x\d+)/.exec(line)?.[1]} ${/AUDIO="([^"]*)"/.exec(line)?.[1] ?? ''} ${/CODECS="([^"]*)"/.exec(line)?.[1]}`;
    expect(seen.has(key), `two variants with ${key}:\n${master}`).toBe(false);
    seen.set(key, line);
  }
}

/** The video stream ffprobe finds in the init and first complete segment of a media playlist. */
async function probeVideo(playlistUrl: string): Promise<{ width: number | undefined; height: number | undefined }> {
  await waitFor(
    async () => {
      const t = await getText(playlistUrl);
      return t !== undefined && /^seg-\d+\.m4s$/m.test(t) ? t : undefined;
    },
    `a complete segment in ${playlistUrl}`,
    { timeoutMs: 15_000, intervalMs: 200 },
  );
  const video = (await probeStreams(await segmentWithInit(playlistUrl, 'first'))).find((s) => s.codecType === 'video');
  return { width: video?.width, height: video?.height };
}

function publish(broadcast: string): void {
  publishers.push(ffmpegPublish(CLIP, `${server.url}/ingest/${broadcast}`, { loops: 20 }));
}

describe('rung bypass', () => {
  it('a source-sized rung at or above the source bitrate is bypassed once measured: withdrawn, never listed; the source variant serves its size', async () => {
    const put = await fetch(`${server.url}/api/v1/broadcasts/live/byp/ladder`, {
      method: 'PUT',
      body: JSON.stringify([R720_HIGH, R240]),
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(put.status).toBe(200);
    const base = `${server.url}/hls/live/byp`;
    // Every master served from the first publish on: none may list the rung, not even before the decision.
    const masters: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const text = await getText(`${base}/master.m3u8`);
        if (text !== undefined) masters.push(text);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    publish('live/byp');
    const rung = await waitFor(
      async () => (await rungsOf('live/byp')).find((r) => r.rendition === '720p' && r.state === 'bypassed'),
      'the 720p rung bypassed',
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(rung.skippedReason).toMatch(/served by the source variant: the source is 1280x720 at \d+ kb\/s/);
    const master = await waitForMasterListing(base, ['240p'], 20_000);
    // The sampler may not have had an answer yet when the master first listed 240p (a loaded machine).
    await waitFor(() => (masters.length > 0 ? true : undefined), 'a sampled master', {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    sampling = false;
    await sampler;
    for (const m of masters) expect(m).not.toContain('720p/playlist.m3u8');
    expect(variants(master).map((v) => `${v.resolution} ${v.uri}`)).toEqual([
      '1280x720 playlist.m3u8',
      '426x240 240p/playlist.m3u8',
    ]);
    expectOneVariantPerResolution(master);
    // The rung was published while the source's bitrate was measured; once bypassed its output is
    // withdrawn: nothing of it is served (its playlist answers 404) and its broadcast is gone.
    expect(await getText(`${base}/720p/playlist.m3u8`)).toBeUndefined();
    const broadcasts = (await getJson(`${server.url}/api/v1/broadcasts`)) as { broadcasts: Array<{ name: string }> };
    expect(broadcasts.broadcasts.map((b) => b.name)).not.toContain('live/byp/720p');
    expect(await probeVideo(`${base}/playlist.m3u8`)).toEqual({ width: 1280, height: 720 });
  }, 60_000);

  it('a source-sized rung below the source bitrate is encoded and takes the source variant’s place', async () => {
    publish('live/rep');
    const base = `${server.url}/hls/live/rep`;
    const master = await waitForMasterListing(base, ['720p', '480p', '240p'], 30_000);
    expect(variants(master).map((v) => `${v.resolution} ${v.uri}`)).toEqual([
      '1280x720 720p/playlist.m3u8',
      '854x480 480p/playlist.m3u8',
      '426x240 240p/playlist.m3u8',
    ]);
    expectOneVariantPerResolution(master);
    const rung = (await rungsOf('live/rep')).find((r) => r.rendition === '720p');
    expect(rung).toMatchObject({ state: 'running', width: 1280, height: 720 });
    expect(await probeVideo(`${base}/720p/playlist.m3u8`)).toEqual({ width: 1280, height: 720 });
    // The source's own playlist is still served to whoever asks for it.
    expect(await getText(`${base}/playlist.m3u8`)).toContain('#EXTINF');
  }, 60_000);

  it('publishes a source-sized rung from its first frames while the bypass rule still measures the source', async () => {
    // A live 720p encoder, one fragment per frame, well above the 720p rung's 2500 kb/s (noise), with
    // a 5 s GOP: the rule decides from the GOP so far. Holding the rung's output until the decision
    // (the source's second keyframe, or 4 s of its first GOP) would put its first frames ~4 s late.
    publishers.push(
      run('ffmpeg', [
        ...['-nostdin', '-v', 'error', '-re', '-f', 'lavfi', '-i'],
        'testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t+u',
        ...['-t', '8', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-threads', '1'],
        ...['-pix_fmt', 'yuv420p', '-g', '150', '-keyint_min', '150', '-sc_threshold', '0', '-crf', '20'],
        ...['-f', 'mp4', '-movflags', 'frag_every_frame+empty_moov+default_base_moof'],
        `${server.url}/ingest/live/early`,
      ]),
    );
    // One snapshot of /api/v1/transcode: once the rung has published half a second of frames, the
    // bypass rule must still be measuring. Output held until the decision cannot pass, however slow
    // the machine: the rule decides on source media that reaches the rung's queue (at most its 60
    // frames ahead of the rung), 4 s (120 frames) into the first GOP.
    const snapshot = await waitFor(
      async () => {
        const rung = (await rungsOf('live/early')).find((r) => r.rendition === '720p');
        return (rung?.framesOut ?? 0) >= FIRST_FRAMES ? rung : undefined;
      },
      `the 720p rung to publish its first ${FIRST_FRAMES} frames`,
      { timeoutMs: 30_000, intervalMs: 25 },
    );
    expect(snapshot, JSON.stringify(snapshot)).toMatchObject({ state: 'running', bypassMeasuring: true });
    // The rule decides (this source is above the rung's bitrate: it keeps the rung), and says so.
    const decided = await waitFor(
      async () => (await rungsOf('live/early')).find((r) => r.rendition === '720p' && r.bypassMeasuring !== true),
      'the bypass rule to decide',
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    expect(decided, JSON.stringify(decided)).toMatchObject({ state: 'running', width: 1280, height: 720 });
  }, 60_000);
});
