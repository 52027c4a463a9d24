/**
 * A rung the bypass rule leaves to its source, in a cluster: the transcode node publishes the
 * source-sized rung from its first frame while it measures the source, then withdraws it. The edge,
 * which mirrored that rung for its players, must drop its copy at once (404, gone from its
 * broadcast list), as a single node does, instead of ending it and serving its first GOP for the
 * linger time.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { getJson, type RunningServer } from '../../testkit/server.ts';
import { type Proc, run } from '../e2e/helpers.ts';
import { waitFor } from '../support/wait.ts';
import { startNode } from './nodes.ts';

const BROADCAST = 'live/cb';

let nats: RunningNats;
let ingest: RunningServer;
let worker: RunningServer;
let edge: RunningServer;
let publisher: Proc | undefined;
/** How long after the transcode node's decision the edge had dropped its copy, per tested try. */
const dropMs: number[] = [];

beforeAll(async () => {
  nats = await startNats();
  [ingest, worker, edge] = await Promise.all([
    startNode('A', 'ingest', nats.url),
    startNode('B', 'transcode', nats.url, ['--transcode-rendition', '720p,240p', '--transcode-audio', 'passthrough']),
    startNode('C', 'edge', nats.url, ['--edge-idle', '600', '--log-level', 'debug']),
  ]);
}, 120_000);

afterAll(async () => {
  publisher?.kill();
  await Promise.all([ingest, worker, edge].map((n) => n?.stop()));
  await nats?.stop();
});

/** Names of the broadcasts a node holds locally. */
async function localBroadcasts(node: RunningServer): Promise<string[]> {
  const api = await getJson<{ broadcasts: Array<{ name: string }> }>(`${node.url}/api/v1/broadcasts`);
  return api.broadcasts.map((b) => b.name);
}

/**
 * One try of the scenario with broadcast `name`: false when the transcode node decided before the
 * edge had mirrored the rung (a race a loaded machine can lose: the rule decides 4 s into the
 * source's first GOP), true once the checks passed.
 */
async function attempt(name: string): Promise<boolean> {
  const rung = `${name}/720p`;
  // A player asks the edge first, so it mirrors the broadcast, rungs included, from the start.
  const master = `${edge.url}/hls/${name}/master.m3u8`;
  let edgeHadRung = false;
  let asking = true;
  const asker = (async () => {
    while (asking) {
      await fetch(master).catch(() => undefined);
      const names: string[] = await localBroadcasts(edge).catch(() => []);
      if (names.includes(rung)) edgeHadRung = true;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  // A live 1280x720 encoder far below the 720p rung's 2500 kb/s, with a 5 s GOP: the rule decides
  // 4 s into it (before the rung's second forced keyframe), normally while the edge has the rung.
  // Long enough to stay live through the checks on a loaded machine.
  publisher = run('ffmpeg', [
    ...['-nostdin', '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30'],
    ...['-t', '40', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-threads', '1'],
    ...['-pix_fmt', 'yuv420p', '-g', '150', '-keyint_min', '150', '-sc_threshold', '0', '-b:v', '600k'],
    ...['-f', 'mp4', '-movflags', 'frag_every_frame+empty_moov+default_base_moof'],
    `${ingest.url}/ingest/${name}`,
  ]);
  try {
    await waitFor(
      async () => {
        const api = await getJson<{ sources: Array<{ broadcast: string; rungs: Array<Record<string, unknown>> }> }>(
          `${worker.url}/api/v1/transcode`,
        );
        const rungs = api.sources.find((s) => s.broadcast === name)?.rungs ?? [];
        return rungs.find((r) => r['rendition'] === '720p')?.['state'] === 'bypassed';
      },
      'the transcode node to bypass the 720p rung',
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    if (!edgeHadRung) return false;
    // Ended instead, the rung would stay listed and served (with ENDLIST) for the linger time (30 s).
    const decidedMs = Date.now();
    let edgeState = '';
    try {
      await waitFor(
        async () => {
          const listed = (await localBroadcasts(edge)).includes(rung);
          const status = (await fetch(`${edge.url}/hls/${rung}/playlist.m3u8`)).status;
          edgeState = `edge lists the rung: ${listed}, its playlist answers ${status}`;
          return !listed && status === 404;
        },
        "the edge to drop the bypassed rung's copy",
        { timeoutMs: 15_000, intervalMs: 50 },
      );
    } catch (error) {
      // What the edge logged about the broadcast and its directory watch says which path it took (withdrawn, ended, or neither).
      const edgeLog = edge
        .stdout()
        .split('\n')
        .filter((line) => line.includes(name) || line.includes('directory'))
        .slice(-20)
        .join('\n');
      throw new Error(`${String(error)}: ${edgeState}; the edge's last log lines on ${name}:\n${edgeLog}`);
    }
    dropMs.push(Date.now() - decidedMs);
    // The rung's directory entry stays, marked withdrawn, until it expires (6 s): the cluster's
    // overview leaves it out meanwhile.
    const overview = await getJson<{ cluster?: { broadcasts: Array<{ broadcast: string }> } }>(
      `${edge.url}/api/v1/broadcasts`,
    );
    expect(overview.cluster?.broadcasts.map((b) => b.broadcast)).not.toContain(rung);
    // The source and the other rung go on at the edge (polled: under a loaded machine's full suite
    // the edge's list was once found empty right after the drop, cause not found; the failure
    // message says what each node held then).
    const goesOn = async (): Promise<boolean> => {
      const names = await localBroadcasts(edge);
      return names.includes(name) && names.includes(`${name}/240p`);
    };
    const held = async (): Promise<string> => {
      const lists = await Promise.all([ingest, worker, edge].map((n) => localBroadcasts(n).catch((e) => [String(e)])));
      return `ingest ${JSON.stringify(lists[0])}, transcode ${JSON.stringify(lists[1])}, edge ${JSON.stringify(lists[2])}; publisher ${publisher?.child.exitCode === null ? 'running' : `exited ${publisher?.child.exitCode}`}: ${publisher?.output().slice(-300)}`;
    };
    try {
      await waitFor(goesOn, 'the source and its 240p rung to go on at the edge', {
        timeoutMs: 10_000,
        intervalMs: 100,
      });
    } catch (error) {
      throw new Error(`${String(error)}: ${await held()}`);
    }
    return true;
  } finally {
    asking = false;
    await asker;
    publisher.kill();
  }
}

describe('a bypassed rung in a cluster', () => {
  it('the edge drops its copy of the rung as soon as the transcode node withdraws it', async () => {
    // The edge must have mirrored the rung before the decision for the drop to be tested: a try
    // that lost that race is made again under another name, at most three times.
    const tries: string[] = [];
    for (let i = 0; i < 3 && !tries.some((t) => t.endsWith('tested')); i++) {
      const name = `${BROADCAST}${i}`;
      tries.push((await attempt(name)) ? `${name} tested` : `${name}: decided before the edge had the rung`);
    }
    console.log(`bypass in a cluster: ${tries.join('; ')}; edge dropped its copy ${dropMs.join(', ')} ms after`);
    expect(tries.at(-1), tries.join('; ')).toMatch(/ tested$/);
  }, 200_000);
});
