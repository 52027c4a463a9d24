/**
 * The cluster's directory in JetStream KV: live nodes, broadcast names (each held by one ingest
 * node), tracks (producer, origin, codec, stream), ladder leases, and each source video's last
 * segment number. Every bucket lives in memory and bounds each entry's life, so what a dead node
 * wrote goes away by itself; a live node keeps its entries by writing them again (its heartbeat).
 */

import { DiscardPolicy, type JetStreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import type { BroadcastOrigin } from '../fragment/broadcaster.ts';
import {
  BROADCASTS_BUCKET,
  LEASES_BUCKET,
  NODES_BUCKET,
  NUMBERING_BUCKET,
  TRACKS_BUCKET,
  type TrackSubjects,
} from './names.ts';

/** One track in the directory. */
export type TrackEntry = {
  readonly broadcast: string;
  readonly track: string;
  /** The node producing it. */
  readonly node: string;
  /** The producing node's roles (a source whose ingest node transcodes is not placed elsewhere). */
  readonly roles: readonly string[];
  readonly origin: BroadcastOrigin;
  readonly codec: string;
  readonly timescale: number;
  /** Changes with every new init segment. */
  readonly metaId: string;
  /** Wall-clock ms of the last write. */
  readonly updatedMs: number;
  /**
   * Written once, as the entry's last write, when its producer withdrew the track (a rung the
   * bypass rule left to its source): readers drop their copy instead of ending it. The entry then
   * expires with its lifetime; nothing lists it meanwhile.
   */
  readonly withdrawn?: boolean;
};

/** One node in the directory. */
export type NodeEntry = {
  readonly id: string;
  readonly roles: readonly string[];
  readonly startedMs: number;
  readonly updatedMs: number;
  /** Transcode nodes: the most sources they take on, and the sources whose ladder they run. */
  readonly maxSources?: number;
  readonly ladders?: readonly string[];
  /** Ingest nodes: the broadcasts they hold. */
  readonly broadcasts?: readonly string[];
};

/**
 * The last LL-HLS segment a source video's producer marked (segment-marker.ts): whichever ingest
 * node publishes the name next goes on after it, as the edges that kept the broadcast do.
 */
export type NumberingEntry = { readonly msn: number; readonly discontinuitySequence: number };

/** How long a name's numbering is remembered after its last segment: a day. */
export const NUMBERING_TTL_MS = 24 * 3600 * 1000;

/** One claim on a name or a ladder: the node holding it. */
export type ClaimEntry = { readonly node: string; readonly sinceMs: number };

/** Bounds of each track's stream. */
export type TrackLimits = {
  /** Oldest fragment kept, in ms (about two GOPs). */
  readonly maxAgeMs: number;
  /** Most bytes kept. */
  readonly maxBytes: number;
};

/** How long an entry that is not written again lives, and how often live nodes write theirs. */
export type DirectoryTiming = {
  /** Lifetime of node and track entries. */
  readonly entryTtlMs: number;
  /** Lifetime of a ladder lease and of a broadcast name's claim (a dead node's are free after it). */
  readonly leaseTtlMs: number;
  /** How often a node writes its entries again. */
  readonly heartbeatMs: number;
};

/** Default timing: a dead node's ladders and names are free within 3 s, its other entries within 6 s. */
export const DEFAULT_TIMING: DirectoryTiming = { entryTtlMs: 6_000, leaseTtlMs: 3_000, heartbeatMs: 1_000 };

/** The buckets. */
export type Directory = {
  readonly nodes: KV;
  readonly broadcasts: KV;
  readonly tracks: KV;
  readonly leases: KV;
  readonly numbering: KV;
};

/** Opens (creating where needed) the directory's buckets. */
export async function openDirectory(nc: NatsConnection, timing: DirectoryTiming): Promise<Directory> {
  const kvm = new Kvm(nc);
  const open = (bucket: string, ttl: number): Promise<KV> =>
    kvm.create(bucket, { ttl, history: 1, storage: StorageType.Memory });
  const [nodes, broadcasts, tracks, leases, numbering] = await Promise.all([
    open(NODES_BUCKET, timing.entryTtlMs),
    // A dead ingest node's names are free as soon as its leases would be: its publisher may
    // reconnect to another ingest node before edges let go of the broadcast.
    open(BROADCASTS_BUCKET, timing.leaseTtlMs),
    open(TRACKS_BUCKET, timing.entryTtlMs),
    open(LEASES_BUCKET, timing.leaseTtlMs),
    open(NUMBERING_BUCKET, NUMBERING_TTL_MS),
  ]);
  return { nodes, broadcasts, tracks, leases, numbering };
}

/** Creates the track's memory stream, or brings an existing one to these bounds. */
export async function ensureTrackStream(
  jsm: JetStreamManager,
  subjects: TrackSubjects,
  limits: TrackLimits,
): Promise<void> {
  const config = {
    name: subjects.stream,
    subjects: [subjects.all],
    storage: StorageType.Memory,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos(limits.maxAgeMs),
    max_bytes: limits.maxBytes,
    num_replicas: 1,
  };
  try {
    await jsm.streams.add(config);
  } catch {
    await jsm.streams.update(subjects.stream, config);
  }
}

/** Parses a JSON entry, or undefined when it is not one. */
export function parseEntry<T>(value: Uint8Array | undefined): T | undefined {
  if (value === undefined || value.byteLength === 0) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(value)) as T;
  } catch {
    return undefined;
  }
}

/** Every (key, value) of a bucket now. */
export async function listEntries<T>(kv: KV): Promise<Array<{ key: string; value: T; revision: number }>> {
  const out: Array<{ key: string; value: T; revision: number }> = [];
  // A key updated while the listing runs (a heartbeat) can be listed more than once.
  const keys = new Set<string>();
  for await (const k of await kv.keys()) keys.add(k);
  for (const key of keys) {
    const e = await kv.get(key);
    if (e === null || e.operation !== 'PUT') continue;
    const value = parseEntry<T>(e.value);
    if (value !== undefined) out.push({ key, value, revision: e.revision });
  }
  return out;
}
