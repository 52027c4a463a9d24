/**
 * Failover with real processes: the transcode node running a source's ladder is killed with
 * SIGKILL; another transcode node takes the source over within 5 s, then that one stops gracefully
 * and the last one takes over; the rung playlist on the
 * edge goes on with rising media sequence numbers (a discontinuity exactly where the init changes),
 * decodable to the end; a second edge, with a player of its own through both failovers, lists the
 * same segments as the first.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getJson, getText, type RunningServer } from '../../testkit/server.ts';
import {
  decodedFrames,
  decodeErrorLines,
  ffmpegDecodeLive,
  ffmpegPublish,
  type Proc,
  waitForMasterListing,
} from '../e2e/helpers.ts';
import { expectSameSegments } from '../support/segments.ts';
import { waitFor } from '../support/wait.ts';
import { clusterHealth, endedPlaylist, type PlaylistSummary, playlistSummary, startNode } from './nodes.ts';

const FIXTURE = '360p30.mp4';
const LOOPS = 12; // 39 s of live input: long enough for a kill, a graceful stop and two takeovers
const BROADCAST = 'live/fo';

let nats: RunningNats;
let ingest: RunningServer;
let workers: RunningServer[];
let edge: RunningServer;
let edge2: RunningServer;
let publisher: Proc;
let rungUrl: string;

beforeAll(async () => {
  nats = await startNats();
  const worker = (id: string) =>
    startNode(id, 'transcode', nats.url, [
      '--transcode-rendition',
      '240p',
      '--transcode-overload',
      'off',
      '--transcode-audio',
      'ladder',
      '--transcode-audio-opus',
      'off',
    ]);
  let w1: RunningServer;
  let w2: RunningServer;
  let w3: RunningServer;
  [ingest, w1, w2, w3, edge, edge2] = await Promise.all([
    startNode('A', 'ingest', nats.url, ['--ingest-grace', '1']),
    worker('B1'),
    worker('B2'),
    worker('B3'),
    startNode('C', 'edge', nats.url),
    startNode('C2', 'edge', nats.url),
  ]);
  workers = [w1, w2, w3];
  rungUrl = `${edge.url}/hls/${BROADCAST}/240p/playlist.m3u8`;
  publisher = ffmpegPublish(fixturePath(FIXTURE), `${ingest.url}/ingest/${BROADCAST}`, { loops: LOOPS });
}, 120_000);

afterAll(async () => {
  publisher?.kill();
  await Promise.all([ingest, ...(workers ?? []), edge, edge2].map((n) => n?.stop()));
  await nats?.stop();
});

describe('a transcode node dies', () => {
  it('SIGKILL of the worker running the ladder: another worker takes the source within 5 s, a graceful stop hands it on, and the rung playlist goes on with rising media sequence numbers, never ended, and a player decodes across', async () => {
    await waitForMasterListing(`${edge.url}/hls/${BROADCAST}`, ['240p'], 40_000);
    const owners = await waitFor(
      async () => {
        const ladders = await Promise.all(workers.map(async (w) => (await clusterHealth(w))?.ladders ?? []));
        const held = workers.filter((_, i) => ladders[i]!.includes(BROADCAST));
        return held.length === 1 ? held : undefined;
      },
      'exactly one worker running the ladder',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const owner = owners[0]!;
    // The audio ladder runs where the video ladder does, and only there: the 240p variant on the
    // edge references the worker's 64 kb/s AAC rendition.
    const audioRenditions = async (w: RunningServer): Promise<string[]> =>
      (
        await getJson<{ audio: { renditions: Array<{ broadcast: string; rendition: string; taskState: string }> } }>(
          `${w.url}/api/v1/transcode`,
        )
      ).audio.renditions
        .filter((r) => r.broadcast === BROADCAST && r.taskState === 'running')
        .map((r) => r.rendition);
    await waitFor(
      async () => (await audioRenditions(owner)).join() === 'audio-aac-64k',
      'the audio rendition on the ladder owner',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    for (const w of workers) if (w !== owner) expect(await audioRenditions(w)).toEqual([]);
    await waitFor(
      async () =>
        /AUDIO="audio-aac-64k"[^\n]*\n240p\/playlist\.m3u8/.test(
          (await getText(`${edge.url}/hls/${BROADCAST}/master.m3u8`)) ?? '',
        ),
      'the edge master to pair the 240p variant with the AAC rendition',
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    // A player decoding the rung from the edge from now to the end; another on C2.
    const player = ffmpegDecodeLive(rungUrl);
    await waitForMasterListing(`${edge2.url}/hls/${BROADCAST}`, ['240p'], 20_000);
    const player2 = ffmpegDecodeLive(`${edge2.url}/hls/${BROADCAST}/240p/playlist.m3u8`);
    // Some rung segments before the kill.
    const before = playlistSummary(
      await waitFor(
        async () => {
          const t = await getText(rungUrl);
          return t !== undefined && playlistSummary(t).lastMsn >= 2 ? t : undefined;
        },
        'three rung segments',
        { timeoutMs: 20_000, intervalMs: 100 },
      ),
    );
    expect(before.discontinuities).toBe(0);

    // Every playlist the edge answers from here on, in order.
    const seen: PlaylistSummary[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t = await getText(rungUrl).catch(() => undefined);
        if (t !== undefined) seen.push(playlistSummary(t));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const killedAt = Date.now();
    await owner.stop({ signal: 'SIGKILL' });
    const takeOver = (from: readonly RunningServer[]) =>
      waitFor(
        async () => {
          for (const w of from) if ((await clusterHealth(w))?.ladders.includes(BROADCAST)) return w;
          return undefined;
        },
        'the takeover',
        { timeoutMs: 8_000, intervalMs: 50 },
      );
    const other = await takeOver(workers.filter((w) => w !== owner));
    const otherId = `B${workers.indexOf(other) + 1}`;
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThanOrEqual(5_000);

    // The edge now mirrors the rung from the new worker, and the rung goes on in the same playlist
    // with rising numbers. The new worker's init is normally the same bytes and a rung keeps its
    // source's timeline (src/hls/window.ts), so no discontinuity is needed; a different init gets a
    // new EXT-X-MAP after an EXT-X-DISCONTINUITY.
    await waitFor(
      async () =>
        (await clusterHealth(edge))?.mirrored.some((m) => m.broadcast === `${BROADCAST}/240p` && m.from === otherId),
      'the edge to mirror the rung from the new worker',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const afterText = await waitFor(
      async () => {
        const t = await getText(rungUrl);
        return t !== undefined && playlistSummary(t).lastMsn >= before.lastMsn + 4 ? t : undefined;
      },
      'four more rung segments after the takeover',
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const after = playlistSummary(afterText);
    const maps = new Set([...afterText.matchAll(/^#EXT-X-MAP:URI="([^"]+)"/gm)].map((m) => m[1]));
    expect(after.discontinuities).toBe(maps.size - 1);
    expect(after.lastMsn).toBeGreaterThan(before.lastMsn);

    // A graceful stop (SIGTERM) of that worker hands the ladder to the last one: its leases are
    // released at once and edges keep the rung (its entry is left to the successor), so the rung
    // playlist never ends and goes on.
    const stoppedAt = Date.now();
    await other.stop();
    await takeOver(workers.filter((w) => w !== owner && w !== other));
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    await waitFor(
      async () => {
        const t = await getText(rungUrl);
        return t !== undefined && playlistSummary(t).lastMsn >= after.lastMsn + 3;
      },
      'three more rung segments after the graceful handover',
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    polling = false;
    await poller;
    expect(seen.filter((p) => p.ended)).toEqual([]);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.sequence, `playlist ${i}`).toBeGreaterThanOrEqual(seen[i - 1]!.sequence);
      expect(seen[i]!.lastMsn, `playlist ${i}`).toBeGreaterThanOrEqual(seen[i - 1]!.lastMsn);
    }

    // The player decoded across the failover to the end of the broadcast without an error.
    expect(await publisher.exited, publisher.output()).toBe(0);
    await waitFor(async () => (await getText(rungUrl))?.includes('#EXT-X-ENDLIST'), 'the rung to end', {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const code = await player.exited;
    expect(code, player.output()).toBe(0);
    // ffmpeg's HLS reader keeps timestamps across EXT-X-DISCONTINUITY, so where a new worker's
    // different init starts at a source keyframe before the old worker's last frame, its muxer
    // reports the overlap; that is expected only where the playlist listed a discontinuity.
    const overlap = /non monotonically increasing dts/;
    const listedDiscontinuity = seen.some((p) => p.discontinuities > 0);
    const errors = decodeErrorLines(player.output()).filter((l) => !(listedDiscontinuity && overlap.test(l)));
    expect(errors, `discontinuity listed: ${listedDiscontinuity}`).toEqual([]);
    expect(decodedFrames(player.output())).toBeGreaterThan(300);
    expect(await player2.exited, player2.output()).toBe(0);

    // Both edges went through both failovers with a player each: they list the same segments, GAPs included.
    for (const file of ['playlist.m3u8', 'audio.m3u8', '240p/playlist.m3u8', 'audio-aac-64k/audio.m3u8']) {
      const [a, b] = await Promise.all([edge, edge2].map((e) => endedPlaylist(`${e.url}/hls/${BROADCAST}/${file}`)));
      expectSameSegments(file, a!, b!);
    }
  });
});
