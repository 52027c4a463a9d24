/**
 * The registry bridge over a real nats-server, in one process: a track emitted into one node's
 * registry appears in another node's registry as if local (same meta, same fragments), a payload
 * larger than the server's max payload arrives whole, a node joining mid-stream starts at the newest
 * keyframe, broadcast names are unique across the cluster and each source's ladder has one owner.
 */

import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, joinCluster } from '../../src/cluster/index.ts';
import { trackSubjects } from '../../src/cluster/names.ts';
import { consoleLogger, silentLogger } from '../../src/core/log.ts';
import { type Fragment, FragmentFlags } from '../../src/fragment/fragment.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/registry.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { waitFor } from '../support/wait.ts';

let nats: RunningNats;
let nc: NatsConnection;
const clusters: Cluster[] = [];

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});

afterEach(async () => {
  // Each case starts from an empty directory: the nodes of the last one withdraw their entries.
  for (const c of clusters.splice(0)) await c.close().catch(() => {});
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

/** A node with its own registry; `publishing` lists the broadcasts it holds as an ingest node. */
async function node(nodeId: string, roles: string[], publishing: string[] = [], maxSources = 4) {
  const cluster = await joinCluster({
    urls: [nats.url],
    nodeId,
    roles,
    maxSources,
    // Segments of one 1/3 s GOP (ten 1/30 s fragments): every keyframe starts one.
    segments: { targetDurationMs: 300, partTargetMs: 100 },
    logger: process.env['CLUSTER_DEBUG'] ? consoleLogger('debug') : silentLogger,
  });
  clusters.push(cluster);
  const registry = new FragmentBroadcasterRegistry();
  cluster.attach({ registry, publishing: () => publishing });
  return { cluster, registry };
}

/** Deterministic bytes (a stand-in payload: the bridge never parses media). */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A video track (avc1.42c01e, 90 kHz) in `registry` with `init` as its init segment. */
function videoTrack(registry: FragmentBroadcasterRegistry, broadcast: string, init: Uint8Array) {
  return registry.getOrCreate(broadcast, '0.mp4', { codec: 'avc1.42c01e', timescale: 90_000, initSegment: init });
}

function fragment(i: number, keyframe: boolean, size = 2_000): Fragment {
  return {
    trackId: '0.mp4',
    groupId: Math.floor(i / 10),
    objectId: i % 10,
    priority: keyframe ? 0 : 1,
    dts: i * 3_000,
    pts: i * 3_000 + 6_000,
    duration: 3_000,
    flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
    payload: bytes(size, i + 1),
    ingestTimeMs: 1_700_000_000_000 + i,
  };
}

async function storedMessages(broadcast: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(trackSubjects(broadcast, '0.mp4').stream)).state.messages;
}

describe('the registry bridge over NATS JetStream', () => {
  it('a track of one node appears in an edge registry with its meta, and every fragment (one of 4 MB, over the 1 MiB max payload) arrives whole and in order', async () => {
    const producer = await node('p1', ['ingest'], ['live/big']);
    const edge = await node('e1', ['edge']);
    await edge.cluster.demand('live/big');
    const init = bytes(900, 7);
    const b = producer.registry.getOrCreate('live/big', '0.mp4', {
      codec: 'avc1.64001f',
      timescale: 90_000,
      initSegment: init,
      frameRate: 30,
    });
    const sent = [fragment(0, true, 4 * 1024 * 1024), ...Array.from({ length: 9 }, (_, i) => fragment(i + 1, false))];
    // The edge creates its track at the first sync point (the keyframe, with the init).
    for (const f of sent) b.emit(f);
    const local = await waitFor(() => edge.registry.get('live/big', '0.mp4'), 'the mirrored track', {
      timeoutMs: 10_000,
    });
    const sub = local.subscribe();
    expect(local.origin).toEqual({ kind: 'ingest', mirroredFrom: 'p1' });
    expect(local.meta.codec).toBe('avc1.64001f');
    expect(local.meta.timescale).toBe(90_000);
    expect(local.meta.frameRate).toBe(30);
    expect(local.meta.initSegment).toEqual(init);
    // The keyframe was emitted before this subscription: send the next GOP and check all of it.
    const next = [fragment(10, true, 4 * 1024 * 1024), ...Array.from({ length: 9 }, (_, i) => fragment(i + 11, false))];
    for (const f of next) b.emit(f);
    for (const want of next) {
      const got = await sub.next();
      expect(got, `fragment ${want.dts}`).toBeDefined();
      expect({ ...got!, payload: undefined }).toEqual({ ...want, payload: undefined });
      expect(got!.payload.byteLength).toBe(want.payload.byteLength);
      expect(Buffer.compare(Buffer.from(got!.payload), Buffer.from(want.payload))).toBe(0);
    }
    sub.close();
  });

  it("an edge that joins mid-stream starts at the oldest keyframe its stream holds, with the init that keyframe needs and the producer's numbering", async () => {
    const producer = await node('p2', ['ingest'], ['live/late']);
    const b = videoTrack(producer.registry, 'live/late', bytes(500, 1));
    // Before the stream's first keyframe: a delta frame no reader can start at.
    b.emit(fragment(0, false));
    for (let i = 1; i < 25; i++) b.emit(fragment(i, i % 10 === 1));
    await waitFor(async () => (await storedMessages('live/late').catch(() => 0)) >= 24, 'the stream to hold the GOPs', {
      timeoutMs: 10_000,
    });
    const late = await node('e2', ['edge']);
    await late.cluster.demand('live/late');
    const local = await waitFor(() => late.registry.get('live/late', '0.mp4'), 'the mirrored track', {
      timeoutMs: 10_000,
    });
    expect(local.meta.initSegment).toEqual(bytes(500, 1));
    // The edge's LL-HLS numbering starts where the producer's does: keyframe 1 starts segment 0,
    // and its PROGRAM-DATE-TIMEs count from it. Every track of a broadcast then starts at or before
    // its source's first listed segment on this edge, whenever the edge saw each of them.
    expect(local.numbering).toEqual({
      msn: 0,
      discontinuitySequence: 0,
      dateAnchor: { dateMs: 1_700_000_000_001, timeS: 9_000 / 90_000 },
    });
    b.emit(fragment(25, false));
    const stats = await waitFor(
      () =>
        (late.cluster.status()['mirrored'] as Array<{ broadcast: string; fragments: number }>).find(
          (m) => m.broadcast === 'live/late' && m.fragments >= 25,
        ),
      'fragment 25 mirrored',
    );
    // Fragments 1..25: from the oldest keyframe on, the delta frame before it left out.
    expect(stats.fragments).toBe(25);
  });

  it('a broadcast name held by one ingest node is refused to another with ingest.published_elsewhere', async () => {
    const a = await node('ia', ['ingest'], ['live/name']);
    const b = await node('ib', ['ingest'], []);
    await a.cluster.claim('live/name');
    await a.cluster.claim('live/name');
    await expect(b.cluster.claim('live/name')).rejects.toMatchObject({ code: 'ingest.published_elsewhere' });
    await b.cluster.claim('live/other');
  });

  it('each source ladder has exactly one transcode node, and no node takes more than --max-sources', async () => {
    const ingest = await node('src', ['ingest'], ['live/s1', 'live/s2']);
    for (const name of ['live/s1', 'live/s2']) {
      const b = videoTrack(ingest.registry, name, bytes(10, 2));
      b.emit(fragment(0, true));
    }
    const w1 = await node('w1', ['transcode'], [], 1);
    const w2 = await node('w2', ['transcode'], [], 1);
    const owners = await waitFor(
      () => {
        const s1 = [w1, w2].filter((w) => w.cluster.runsLadder('live/s1')).length;
        const s2 = [w1, w2].filter((w) => w.cluster.runsLadder('live/s2')).length;
        return s1 === 1 && s2 === 1
          ? [w1, w2].map((w) => (w.cluster.status()['ladders'] as string[]).length)
          : undefined;
      },
      'one owner per source',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    expect(owners).toEqual([1, 1]);
    // The owner mirrors its source into its registry, where the ladder reads it.
    const owner = w1.cluster.runsLadder('live/s1') ? w1 : w2;
    await waitFor(() => owner.registry.get('live/s1', '0.mp4'), 'the source on its ladder node', { timeoutMs: 10_000 });
  });
});

describe('the end of a track', () => {
  it('a track removed right after its last fragments ends on the edge only after those fragments', async () => {
    const producer = await node('pe', ['ingest'], ['live/end']);
    const edge = await node('ee', ['edge']);
    await edge.cluster.demand('live/end');
    const b = videoTrack(producer.registry, 'live/end', bytes(200, 5));
    b.emit(fragment(0, true));
    const local = await waitFor(() => edge.registry.get('live/end', '0.mp4'), 'the mirrored track', {
      timeoutMs: 10_000,
    });
    const sub = local.subscribe();
    // Big fragments, then the end at once: the directory's delete must not cut them off.
    for (let i = 1; i < 40; i++) b.emit(fragment(i, i % 10 === 0, 200_000));
    producer.registry.remove('live/end', '0.mp4');
    const got: number[] = [];
    for (;;) {
      const f = await sub.next();
      if (f === undefined) break;
      got.push(f.dts / 3_000);
    }
    expect(got).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
  });
});

describe('NATS restarts', () => {
  it('after nats-server restarts (its memory streams and buckets gone), nodes reconnect by themselves and the track flows again to the same local broadcaster', async () => {
    const producer = await node('pr', ['ingest'], ['live/restart']);
    const edge = await node('er', ['edge']);
    await edge.cluster.demand('live/restart');
    const b = videoTrack(producer.registry, 'live/restart', bytes(300, 3));
    let i = 0;
    const emitGop = (): void => {
      for (let k = 0; k < 10; k++, i++) b.emit(fragment(i, k === 0));
    };
    emitGop();
    const local = await waitFor(() => edge.registry.get('live/restart', '0.mp4'), 'the mirrored track', {
      timeoutMs: 10_000,
    });
    const sub = local.subscribe();
    await nats.restart();
    const restartedAt = i;
    // The producer goes on (a GOP every 200 ms) while the nodes find the new server.
    const timer = setInterval(emitGop, 200);
    try {
      const got = await waitFor(
        async () => {
          for (;;) {
            const f = sub.tryNext();
            if (f === undefined) return undefined;
            if (f.dts >= restartedAt * 3_000) return f;
          }
        },
        'a fragment emitted after the restart',
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      // It resumes at a keyframe, in the broadcaster the edge had before the restart.
      expect(got.flags.keyframe).toBe(true);
      expect(edge.registry.get('live/restart', '0.mp4')).toBe(local);
    } finally {
      clearInterval(timer);
      sub.close();
    }
  });
});
