/**
 * The audio ladder in a cluster runs where the source's video ladder runs, and only there: two
 * nodes with the `transcode` and `edge` roles, one holding the source's ladder lease, the other
 * mirroring the source for its own players. The second has the source's audio track in its
 * registry too, yet makes no audio rendition (two nodes publishing the same rendition would fight
 * over it), and the master it serves pairs the rung with the first node's AAC rendition.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getJson, getText, type RunningServer } from '../../testkit/server.ts';
import { ffmpegPublish, type Proc } from '../e2e/helpers.ts';
import { waitFor } from '../support/wait.ts';
import { clusterHealth, startNode } from './nodes.ts';

const BROADCAST = 'live/ap';
const LADDER = ['--transcode-rendition', '240p', '--transcode-audio', 'ladder', '--transcode-audio-opus', 'off'];

let nats: RunningNats;
let ingest: RunningServer;
let nodes: RunningServer[];
let publisher: Proc;

beforeAll(async () => {
  nats = await startNats();
  [ingest, ...nodes] = await Promise.all([
    startNode('A', 'ingest', nats.url, ['--ingest-grace', '1']),
    startNode('B1', 'transcode,edge', nats.url, LADDER),
    startNode('B2', 'transcode,edge', nats.url, LADDER),
  ]);
  publisher = ffmpegPublish(fixturePath('360p30.mp4'), `${ingest.url}/ingest/${BROADCAST}`, { loops: 8 });
}, 120_000);

afterAll(async () => {
  publisher?.kill();
  await Promise.all([ingest, ...(nodes ?? [])].map((n) => n?.stop()));
  await nats?.stop();
});

/** The audio renditions `node` runs for the broadcast. */
async function audioRenditions(node: RunningServer): Promise<string[]> {
  const api = await getJson<{
    audio: { renditions: Array<{ broadcast: string; rendition: string; taskState: string }> };
  }>(`${node.url}/api/v1/transcode`);
  return api.audio.renditions
    .filter((r) => r.broadcast === BROADCAST && r.taskState === 'running')
    .map((r) => r.rendition);
}

describe('audio ladder placement', () => {
  it('only the node holding the ladder lease makes the audio rendition; the other edge mirrors it', async () => {
    const owner = await waitFor(
      async () => {
        for (const n of nodes) if ((await clusterHealth(n))?.ladders.includes(BROADCAST)) return n;
        return undefined;
      },
      'a node to take the ladder',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const other = nodes.find((n) => n !== owner)!;
    // A player on the other node: it mirrors the source (video and audio) and the renditions.
    const master = await waitFor(
      async () => {
        const text = await getText(`${other.url}/hls/${BROADCAST}/master.m3u8`);
        return text !== undefined && /AUDIO="audio-aac-64k"[^\n]*\n240p\/playlist\.m3u8/.test(text) ? text : undefined;
      },
      'the other node to pair the 240p variant with the AAC rendition',
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(master).toContain('URI="audio-aac-64k/audio.m3u8"');
    const mirrored = (await clusterHealth(other))?.mirrored ?? [];
    expect(mirrored.some((m) => m.broadcast === BROADCAST && m.track === '1.mp4')).toBe(true);
    expect(await audioRenditions(owner)).toEqual(['audio-aac-64k']);
    expect(await audioRenditions(other)).toEqual([]);
    // The rendition the other node serves comes from the owner.
    const ownerId = (await clusterHealth(owner))!.node;
    expect(mirrored.find((m) => m.broadcast === `${BROADCAST}/audio-aac-64k`)?.from).toBe(ownerId);
  }, 90_000);
});
