/**
 * The cluster end to end, with real processes: a nats-server started here, ingest node A, transcode
 * node B, edge C (and a second ingest node D). ffmpeg publishes to A; C serves the master and every
 * rung B produces; ffmpeg and ffprobe judge each rung as the single-node ladder tests do (every
 * source frame, IDRs where the source has them, the planned sizes, one audio group).
 */

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureInfo, fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getJson, getText, type RunningServer } from '../../testkit/server.ts';
import {
  ffmpegDecodeLive,
  ffmpegPublish,
  judgeLiveDecodes,
  type Proc,
  parseM3u8,
  waitForMasterListing,
} from '../e2e/helpers.ts';
import { launchChromium, openPage } from '../support/browser.ts';
import { probePackets } from '../support/ffprobe.ts';
import { expectSameSegments, segmentsOf } from '../support/segments.ts';
import { waitFor } from '../support/wait.ts';
import { clusterHealth, endedPlaylist, startNode } from './nodes.ts';

const FIXTURE = '720p30-nob-aac.mp4';
// 15 passes of the 3 s clip (45 s): the broadcast stays live through every check that needs it
// live (names, mirrors, dashboard) on a loaded machine (under the whole suite the dashboard once
// took 22 s to list the five nodes, and 30 s ended the broadcast before its check); longer would
// only add load.
const LOOPS = 14;
const RUNGS = [
  { name: '480p', width: 854, height: 480 },
  { name: '240p', width: 426, height: 240 },
] as const;

let nats: RunningNats;
let ingest: RunningServer;
let worker: RunningServer;
let edge: RunningServer;
let otherIngest: RunningServer;
let lateEdge: RunningServer;
let browserReady: Promise<Browser>;
let publisher: Proc;
let base: string;
const decodes = new Map<string, Proc>();

beforeAll(async () => {
  nats = await startNats();
  // The browser starts with the nodes: the dashboard check then takes no launch time out of the live broadcast.
  browserReady = launchChromium();
  browserReady.catch(() => {});
  [ingest, worker, edge, otherIngest, lateEdge] = await Promise.all([
    startNode('A', 'ingest', nats.url, ['--ingest-grace', '1']),
    // Video rungs only: the audio ladder across nodes is judged by audio-placement and failover.
    startNode('B', 'transcode', nats.url, [
      ...['--transcode-rendition', '480p,240p', '--transcode-overload', 'off'],
      ...['--transcode-audio', 'passthrough'],
    ]),
    startNode('C', 'edge', nats.url),
    startNode('D', 'ingest,edge', nats.url, ['--edge-idle', '2']),
    // E is asked once, 5 s in, and must keep the broadcast to its end (no player keeps asking it).
    startNode('E', 'edge', nats.url, ['--edge-idle', '600']),
  ]);
  base = `${edge.url}/hls/live/cl`;
  // A first request makes the edge mirror the broadcast from its first keyframe on.
  expect((await fetch(`${base}/master.m3u8`)).status).toBe(404);
  publisher = ffmpegPublish(fixturePath(FIXTURE), `${ingest.url}/ingest/live/cl`, { loops: LOOPS });
}, 120_000);

afterAll(async () => {
  await (await browserReady?.catch(() => undefined))?.close().catch(() => {});
  publisher?.kill();
  for (const d of decodes.values()) d.kill();
  await Promise.all([ingest, worker, edge, otherIngest, lateEdge].map((n) => n?.stop()));
  await nats?.stop();
});

describe('ingest, transcode and edge on separate nodes', () => {
  it('the edge lists the source and every rung the transcode node produces, with CODECS, RESOLUTION, FRAME-RATE and the one audio group', async () => {
    const text = await waitForMasterListing(
      base,
      RUNGS.map((r) => r.name),
      30_000,
    );
    for (const name of ['source', ...RUNGS.map((r) => r.name)]) {
      decodes.set(
        name,
        ffmpegDecodeLive(name === 'source' ? `${base}/playlist.m3u8` : `${base}/${name}/playlist.m3u8`),
      );
    }
    const master = parseM3u8(text);
    const audio = Object.values(master.mediaGroups.AUDIO.audio) as Array<{ uri: string }>;
    expect(audio.map((a) => a.uri)).toEqual(['audio.m3u8']);
    const variants = master.playlists as Array<{ uri: string; attributes: Record<string, unknown> }>;
    expect(variants.map((v) => v.uri)).toEqual(['playlist.m3u8', ...RUNGS.map((r) => `${r.name}/playlist.m3u8`)]);
    const source = fixtureInfo(FIXTURE).video;
    const sizes = [{ width: source.width, height: source.height }, ...RUNGS];
    variants.forEach((v, i) => {
      expect(v.attributes['AUDIO'], v.uri).toBe('audio');
      expect(v.attributes['CODECS'], v.uri).toMatch(/^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
      expect(v.attributes['RESOLUTION'], v.uri).toEqual({ width: sizes[i]!.width, height: sizes[i]!.height });
      expect(v.attributes['FRAME-RATE'], v.uri).toBeCloseTo(30, 1);
    });
    // Where each part runs: the source is mirrored from A, the rungs from B; B runs the ladder.
    const c = await clusterHealth(edge);
    expect(new Set(c?.mirrored.map((m) => `${m.broadcast}#${m.track}@${m.from}`))).toEqual(
      new Set(['live/cl#0.mp4@A', 'live/cl#1.mp4@A', 'live/cl/480p#0.mp4@B', 'live/cl/240p#0.mp4@B']),
    );
    expect((await clusterHealth(worker))?.ladders).toEqual(['live/cl']);
    // Each node says at start which cluster node it is.
    expect(worker.stdout()).toContain(`cluster     node B, roles transcode, NATS ${nats.url}`);
  });

  it('a second edge is first asked 5 s into the broadcast (its playlists are compared with the first edge at the end)', async () => {
    const listedMs = async (): Promise<number> => {
      const text = await getText(`${base}/playlist.m3u8`);
      const segments = text === undefined ? [] : segmentsOf(text).segments;
      return segments.length === 0 ? 0 : segments[segments.length - 1]!.pdtMs - segments[0]!.pdtMs;
    };
    await waitFor(async () => (await listedMs()) >= 5_000, 'C to list 5 s of media', {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    // E mirrors the broadcast from this first request on (a 404 while it has nothing yet).
    await fetch(`${lateEdge.url}/hls/live/cl/master.m3u8`);
  });

  it("the edge's /api/v1/broadcasts shows the whole cluster: every node with its roles, and where each broadcast, ladder and track runs", async () => {
    type Overview = {
      nodes: Array<{ id: string; roles: string[]; ladders?: string[] }>;
      broadcasts: Array<{
        broadcast: string;
        ingestNode?: string;
        ladderNode?: string;
        tracks: Array<{ track: string; node: string }>;
      }>;
    };
    const api = await getJson<{ cluster: Overview; broadcasts: Array<{ name: string }> }>(
      `${edge.url}/api/v1/broadcasts`,
    );
    expect(api.cluster.nodes.map((n) => `${n.id}:${n.roles.join(',')}`)).toEqual([
      'A:ingest',
      'B:transcode',
      'C:edge',
      'D:ingest,edge',
      'E:edge',
    ]);
    expect(api.cluster.nodes.find((n) => n.id === 'B')?.ladders).toEqual(['live/cl']);
    const where = Object.fromEntries(
      api.cluster.broadcasts.map((b) => [
        b.broadcast,
        { ingest: b.ingestNode, ladder: b.ladderNode, tracks: b.tracks.map((t) => `${t.track}@${t.node}`) },
      ]),
    );
    expect(where).toEqual({
      'live/cl': { ingest: 'A', ladder: 'B', tracks: ['0.mp4@A', '1.mp4@A'] },
      'live/cl/240p': { tracks: ['0.mp4@B'] },
      'live/cl/480p': { tracks: ['0.mp4@B'] },
    });
    // The edge's own list holds what it serves: the source and its rungs.
    expect(api.broadcasts.map((b) => b.name).sort()).toEqual(['live/cl', 'live/cl/240p', 'live/cl/480p']);
  });

  it("the edge's dashboard shows the cluster: every node with its roles and ladders, and where the broadcast's name, ladder and tracks run", async () => {
    const browser = await browserReady;
    try {
      const log: string[] = [];
      const { page } = await openPage(browser, log, { width: 1200, height: 900 });
      expect((await page.goto(`${edge.url}/`))?.status()).toBe(200);
      const rows = (selector: string): Promise<string[][]> =>
        page.$$eval(`${selector} tr`, (trs) =>
          trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')),
        );
      // The page refreshes every second; on a loaded machine (five nodes, a ladder and the browser
      // on two cores) its first answers can take a while. What it shows meanwhile goes into the
      // error, with the page's log.
      const nodes = await waitFor(
        async () => {
          const r = await rows('#cluster-nodes');
          if (r.length === 5) return r;
          const status = await page.textContent('#status');
          throw new Error(`rows ${JSON.stringify(r)}, status ${JSON.stringify(status)}, log: ${log.join(' | ')}`);
        },
        "the cluster's five nodes on the dashboard",
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      expect(await page.isVisible('#cluster')).toBe(true);
      expect(nodes).toEqual([
        ['A', 'ingest', '-', '-'],
        ['B', 'transcode', 'live/cl', '1 / 4'],
        ['C', 'edge', '-', '-'],
        ['D', 'ingest, edge', '-', '-'],
        ['E', 'edge', '-', '-'],
      ]);
      expect(await rows('#cluster-broadcasts')).toEqual([
        ['live/cl', 'A', 'B', '0.mp4 @ A, 1.mp4 @ A'],
        ['live/cl/240p', '-', '-', '0.mp4 @ B'],
        ['live/cl/480p', '-', '-', '0.mp4 @ B'],
      ]);
    } finally {
      await browser.close();
    }
  });

  it('an edge mirrors a broadcast only once a player asks for it, and lets it go after --edge-idle without requests', async () => {
    const mirroredBy = async (node: RunningServer): Promise<string[]> =>
      ((await clusterHealth(node))?.mirrored ?? []).map((m) => `${m.broadcast}#${m.track}`).sort();
    // D (ingest and edge, 2 s idle) has not been asked for live/cl: it mirrors nothing.
    expect(await mirroredBy(otherIngest)).toEqual([]);
    // The first request is answered once D has the broadcast (a player retries a 404 meanwhile).
    await waitFor(
      async () => (await getText(`${otherIngest.url}/hls/live/cl/master.m3u8`))?.includes('playlist.m3u8'),
      'the master from D',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const all = ['live/cl#0.mp4', 'live/cl#1.mp4', 'live/cl/240p#0.mp4', 'live/cl/480p#0.mp4'];
    await waitFor(
      async () => JSON.stringify(await mirroredBy(otherIngest)) === JSON.stringify(all),
      'D to mirror the source, its audio and both rungs',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    // Nobody asks any more: after 2 s (and a heartbeat) D lets all of it go.
    await waitFor(async () => (await mirroredBy(otherIngest)).length === 0, 'D to let live/cl go', {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
  });

  it('a publisher of the same name on another ingest node is refused with 409 ingest.published_elsewhere', async () => {
    const res = await fetch(`${otherIngest.url}/ingest/live/cl`, { method: 'POST', body: new Uint8Array(16) });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ingest.published_elsewhere');
    // Nodes without the role do not take publishers or serve playlists.
    expect((await fetch(`${worker.url}/ingest/live/x`, { method: 'POST', body: new Uint8Array(8) })).status).toBe(404);
    expect((await fetch(`${ingest.url}/hls/live/cl/master.m3u8`)).status).toBe(404);
  });

  it('every rung, decoded live from the edge to the end, has every source frame at the planned size and IDRs exactly where the source has them', async () => {
    expect(await publisher.exited, publisher.output()).toBe(0);
    for (const url of [`${base}/playlist.m3u8`, ...RUNGS.map((r) => `${base}/${r.name}/playlist.m3u8`)]) {
      await waitFor(async () => (await getText(url))?.includes('#EXT-X-ENDLIST'), `ENDLIST in ${url}`, {
        timeoutMs: 30_000,
        intervalMs: 200,
      });
    }
    await judgeLiveDecodes(decodes, base, RUNGS, fixtureInfo(FIXTURE).video.frameCount * (LOOPS + 1));
    const keyframes = async (url: string): Promise<number[]> => {
      const packets = await probePackets(url);
      const first = packets[0]!.pts;
      return packets.filter((p) => p.keyframe).map((p) => p.pts - first);
    };
    const sourceIdrs = await keyframes(`${base}/playlist.m3u8`);
    expect(sourceIdrs.length).toBeGreaterThan(3);
    // IDRs exactly where the source has them.
    for (const r of RUNGS) expect(await keyframes(`${base}/${r.name}/playlist.m3u8`), r.name).toEqual(sourceIdrs);
  });

  it('the edge asked 5 s in lists the same segments as the edge asked before the start: MSNs, PROGRAM-DATE-TIMEs, parts, discontinuity sequence', async () => {
    const late = `${lateEdge.url}/hls/live/cl`;
    for (const file of ['playlist.m3u8', 'audio.m3u8', '480p/playlist.m3u8']) {
      const [early = '', later = ''] = await Promise.all([base, late].map((b) => endedPlaylist(`${b}/${file}`)));
      // E joined 5 s late; by the end both windows may have slid to the same start.
      expectSameSegments(file, early, later);
    }
    // The master playlists name the same variants with the same attributes (bitrates are measured per edge).
    const [earlyMaster, lateMaster] = await Promise.all([base, late].map((b) => getText(`${b}/master.m3u8`)));
    const unmeasured = (text: string | undefined): string | undefined =>
      text?.replace(/,?(AVERAGE-)?BANDWIDTH=\d+/g, '');
    expect(unmeasured(lateMaster)).toBe(unmeasured(earlyMaster));
  });
});
