/**
 * A track publisher's directory writes against a real nats-server: a withdrawal (a bypassed rung)
 * must mark the entry withdrawn even when a heartbeat refresh of the same entry is still on its
 * way, and leave the mark to expire, so that a reader whose watch starts again meanwhile reads it.
 */

import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIMING, openDirectory, parseEntry, type TrackEntry } from '../../src/cluster/directory.ts';
import { trackKey } from '../../src/cluster/names.ts';
import { TrackPublisher } from '../../src/cluster/track-publisher.ts';
import { silentLogger } from '../../src/core/log.ts';
import { FragmentFlags } from '../../src/fragment/fragment.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/registry.ts';
import { type RunningNats, startNats } from '../../testkit/nats.ts';
import { waitFor } from '../support/wait.ts';

let nats: RunningNats;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

/** `kv` whose puts reach the server `delayMs` late, in the order they were made (a loaded node). */
function slowPuts(kv: KV, delayMs: number): KV {
  return new Proxy(kv, {
    get(target, prop, receiver) {
      if (prop !== 'put') {
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: Parameters<KV['put']>) => {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        return target.put(...args);
      };
    },
  });
}

describe('TrackPublisher', () => {
  it('a withdrawn track is marked withdrawn even while a refresh of its entry is on its way, and the mark expires', async () => {
    const directory = await openDirectory(nc, DEFAULT_TIMING);
    const broadcast = 'live/wd';
    const track = '0.mp4';
    const key = trackKey(broadcast, track);
    const registry = new FragmentBroadcasterRegistry();
    const broadcaster = registry.getOrCreate(broadcast, track, {
      codec: 'avc1.42c01e',
      timescale: 90_000,
      initSegment: new Uint8Array(64).fill(1),
    });
    const seen: TrackEntry[] = [];
    const watch = await directory.tracks.watch({ key });
    const watching = (async () => {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const entry = parseEntry<TrackEntry>(e.value);
        if (entry !== undefined) seen.push(entry);
      }
    })();
    const publisher = new TrackPublisher({
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      tracks: slowPuts(directory.tracks, 200),
      nodeId: 'n1',
      roles: ['transcode'],
      broadcast,
      track,
      broadcaster,
      maxBodyBytes: 512 * 1024,
      limits: { maxAgeMs: 5_000, maxBytes: 8 * 2 ** 20 },
      logger: silentLogger,
    });
    const done = publisher.start();
    try {
      broadcaster.emit({
        trackId: track,
        groupId: 0,
        objectId: 0,
        priority: 0,
        dts: 0,
        pts: 0,
        duration: 3_000,
        flags: FragmentFlags.KEYFRAME,
        payload: new Uint8Array(500).fill(2),
        ingestTimeMs: Date.now(),
      });
      await waitFor(async () => (await directory.tracks.get(key))?.operation === 'PUT' || undefined, 'the entry', {
        timeoutMs: 10_000,
        intervalMs: 50,
      });
      // A heartbeat refresh is on its way when the producer withdraws the track.
      const refreshed = publisher.refresh();
      broadcaster.withdraw();
      await done;
      await refreshed;
      await waitFor(() => (seen.at(-1)?.withdrawn === true ? true : undefined), 'the withdrawn mark', {
        timeoutMs: 5_000,
        intervalMs: 50,
      });
      // The bucket holds the mark as the key's last value, which is what a watch started now (a
      // reader whose watch was down) gets first.
      const stored = await directory.tracks.get(key);
      expect(stored?.operation).toBe('PUT');
      const lateEntry = stored === null ? undefined : parseEntry<TrackEntry>(stored.value);
      expect(lateEntry?.withdrawn).toBe(true);
      expect(lateEntry?.node).toBe('n1');
      // Nothing writes it again: it expires with the entry lifetime.
      const withdrawnAt = Date.now();
      await waitFor(
        async () => {
          const now = await directory.tracks.get(key);
          return now === null || now.operation !== 'PUT' ? true : undefined;
        },
        'the mark to expire',
        { timeoutMs: DEFAULT_TIMING.entryTtlMs + 5_000, intervalMs: 100 },
      );
      expect(Date.now() - withdrawnAt).toBeGreaterThan(DEFAULT_TIMING.entryTtlMs / 2);
      expect(seen.at(-1)?.withdrawn).toBe(true);
    } finally {
      watch.stop();
      await watching;
      await publisher.close();
    }
  }, 30_000);
});
