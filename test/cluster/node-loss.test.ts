/**
 * Losing an ingest node or an edge, with real processes: nats-server, ingest nodes A1 and A2,
 * transcode node B, edges C1 and C2. ffmpeg publishes to A1; A1 is killed with SIGKILL and the
 * publisher comes back on A2: the edges' playlists of the source and its rung go on (rising media
 * sequence numbers, a discontinuity for the new publisher's stream), and edge C3, first asked
 * after the failover, lists the same segments as C2, which was there before it. Then edge C1 is
 * killed: a player on C2 notices nothing and decodes to the end.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getText, type RunningServer } from '../../testkit/server.ts';
import {
  decodedFrames,
  decodeErrorLines,
  ffmpegDecodeLive,
  ffmpegPublish,
  type Proc,
  waitForMasterListing,
} from '../e2e/helpers.ts';
import { expectSameSegments, segmentsOf } from '../support/segments.ts';
import { waitFor } from '../support/wait.ts';
import { endedPlaylist, type PlaylistSummary, playlistSummary, startNode } from './nodes.ts';

const FIXTURE = '360p30.mp4';
const BROADCAST = 'live/nl';

let nats: RunningNats;
let ingest1: RunningServer;
let ingest2: RunningServer;
let worker: RunningServer;
let edge1: RunningServer;
let edge2: RunningServer;
let lateEdge: RunningServer;
const procs: Proc[] = [];

beforeAll(async () => {
  nats = await startNats();
  [ingest1, ingest2, worker, edge1, edge2, lateEdge] = await Promise.all([
    startNode('A1', 'ingest', nats.url),
    startNode('A2', 'ingest', nats.url, ['--ingest-grace', '1']),
    startNode('B', 'transcode', nats.url, ['--transcode-rendition', '240p', '--transcode-overload', 'off']),
    startNode('C1', 'edge', nats.url),
    startNode('C2', 'edge', nats.url),
    startNode('C3', 'edge', nats.url),
  ]);
}, 120_000);

afterAll(async () => {
  for (const p of procs) p.kill();
  await Promise.all([ingest1, ingest2, worker, edge1, edge2, lateEdge].map((n) => n?.stop()));
  await nats?.stop();
});

/** The summary of the media playlist at `url`. */
async function playlistState(url: string): Promise<PlaylistSummary> {
  const text = await getText(url);
  if (text === undefined) throw new Error(`no playlist at ${url}`);
  return playlistSummary(text);
}

describe('an ingest node or an edge dies', () => {
  it('ingest node killed: the publisher reconnecting to another ingest node continues the same source and rung playlists on the edges', async () => {
    // Both edges are asked before the broadcast starts, so both mirror it from its first keyframe.
    for (const e of [edge1, edge2]) expect((await fetch(`${e.url}/hls/${BROADCAST}/master.m3u8`)).status).toBe(404);
    const first = ffmpegPublish(fixturePath(FIXTURE), `${ingest1.url}/ingest/${BROADCAST}`, { loops: 20 });
    procs.push(first);
    const urls = [edge1, edge2].flatMap((e) => [
      `${e.url}/hls/${BROADCAST}/playlist.m3u8`,
      `${e.url}/hls/${BROADCAST}/240p/playlist.m3u8`,
    ]);
    await waitForMasterListing(`${edge1.url}/hls/${BROADCAST}`, ['240p'], 40_000);
    await waitFor(async () => (await playlistState(urls[1]!)).lastMsn >= 1, 'two rung segments', {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const before = await Promise.all(urls.map(playlistState));

    await ingest1.stop({ signal: 'SIGKILL' });
    first.kill();
    // The name is A1's until its claim expires (3 s): A2 refuses it with 409 until then.
    const reclaimedAt = Date.now();
    await waitFor(
      async () => {
        const res = await fetch(`${ingest2.url}/ingest/${BROADCAST}`, { method: 'POST', body: new Uint8Array(0) });
        await res.body?.cancel();
        return res.status !== 409;
      },
      'ingest node A2 to take the name',
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    // Within the default grace period (5 s) a publisher has on a single node.
    const reclaimMs = Date.now() - reclaimedAt;
    expect(reclaimMs, `name free after ${reclaimMs} ms`).toBeLessThan(5_000);
    const second = ffmpegPublish(fixturePath(FIXTURE), `${ingest2.url}/ingest/${BROADCAST}`, { loops: 5 });
    procs.push(second);

    // Every playlist on both edges goes on: more segments, never ended, one discontinuity at least.
    for (const [i, url] of urls.entries()) {
      const now = await waitFor(
        async () => {
          const s = await playlistState(url);
          return s.lastMsn >= before[i]!.lastMsn + 3 ? s : undefined;
        },
        `${url} to go on`,
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      expect(now.ended, url).toBe(false);
      expect(now.discontinuities, url).toBeGreaterThanOrEqual(1);
    }
    // Both edges number the segments alike.
    const [s1, r1, s2, r2] = await Promise.all(urls.map(playlistState));
    expect(Math.abs(s1!.lastMsn - s2!.lastMsn)).toBeLessThanOrEqual(1);
    expect(Math.abs(r1!.lastMsn - r2!.lastMsn)).toBeLessThanOrEqual(1);
    // C3 mirrors the broadcast from this first request on, after the failover (compared at the end);
    // a player keeps asking it to the end.
    await fetch(`${lateEdge.url}/hls/${BROADCAST}/master.m3u8`);
    const lateSource = `${lateEdge.url}/hls/${BROADCAST}/playlist.m3u8`;
    await waitFor(async () => (await getText(lateSource)) !== undefined, 'C3 to list the source', {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    procs.push(ffmpegDecodeLive(lateSource));
  });

  it('edge killed: a player on the other edge notices nothing and decodes to the end', async () => {
    const url = `${edge2.url}/hls/${BROADCAST}/240p/playlist.m3u8`;
    const player = ffmpegDecodeLive(url);
    procs.push(player);
    const before = await playlistState(url);
    await edge1.stop({ signal: 'SIGKILL' });
    await waitFor(async () => (await playlistState(url)).lastMsn >= before.lastMsn + 2, 'the rung to go on', {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await waitFor(async () => (await playlistState(url)).ended, 'the end of the broadcast', {
      timeoutMs: 40_000,
      intervalMs: 200,
    });
    expect(await player.exited, player.output()).toBe(0);
    expect(decodeErrorLines(player.output())).toEqual([]);
    expect(decodedFrames(player.output())).toBeGreaterThan(150);
  });

  it('the edge first asked after the ingest failover lists the same segments as one that was there before: numbers, discontinuities, dates, parts', async () => {
    for (const file of ['playlist.m3u8', 'audio.m3u8', '240p/playlist.m3u8']) {
      const [early, later] = await Promise.all(
        [edge2, lateEdge].map((e) => endedPlaylist(`${e.url}/hls/${BROADCAST}/${file}`)),
      );
      expectSameSegments(file, early!, later!);
      // C3 started after the discontinuity: its numbers go on from the first ingest node's.
      expect(segmentsOf(later!).segments[0]!.discontinuity, `${file}\n${later}`).toBeGreaterThanOrEqual(1);
    }
  });
});
