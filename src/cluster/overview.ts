/**
 * The whole cluster as the directory knows it, for `/api/v1/broadcasts`: the live nodes with their
 * roles, each broadcast with the ingest node holding it and the transcode node running its ladder,
 * and each track with the node producing it.
 */

import type { ClaimEntry, Directory, NodeEntry, TrackEntry } from './directory.ts';
import { listEntries } from './directory.ts';
import { textOf } from './names.ts';

/** One broadcast across the cluster. */
export type BroadcastPlacement = {
  readonly broadcast: string;
  /** The ingest node holding the name (undefined for rungs and names not claimed). */
  readonly ingestNode: string | undefined;
  /** The transcode node running the ladder (undefined when none does). */
  readonly ladderNode: string | undefined;
  /** Each track with the node producing it. */
  readonly tracks: ReadonlyArray<{ readonly track: string; readonly node: string; readonly codec: string }>;
};

/** What `/api/v1/broadcasts` shows of the cluster. */
export type ClusterOverview = {
  readonly nodes: ReadonlyArray<Pick<NodeEntry, 'id' | 'roles' | 'maxSources' | 'ladders' | 'broadcasts'>>;
  readonly broadcasts: readonly BroadcastPlacement[];
};

/** Reads the directory now (one KV read per entry). */
export async function clusterOverview(directory: Directory): Promise<ClusterOverview> {
  const [nodes, claims, leases, allTracks] = await Promise.all([
    listEntries<NodeEntry>(directory.nodes),
    listEntries<ClaimEntry>(directory.broadcasts),
    listEntries<ClaimEntry>(directory.leases),
    listEntries<TrackEntry>(directory.tracks),
  ]);
  // A withdrawn track's entry stays until it expires: it is not produced any more.
  const tracks = allTracks.filter((t) => t.value.withdrawn !== true);
  const names = new Set<string>();
  for (const c of claims) names.add(textOf(c.key));
  for (const t of tracks) names.add(t.value.broadcast);
  const ingestOf = new Map(claims.map((c) => [textOf(c.key), c.value.node]));
  const ladderOf = new Map(leases.map((l) => [textOf(l.key), l.value.node]));
  return {
    nodes: nodes
      .map(({ value: n }) => ({
        id: n.id,
        roles: n.roles,
        ...(n.maxSources === undefined ? {} : { maxSources: n.maxSources, ladders: n.ladders ?? [] }),
        ...(n.broadcasts === undefined ? {} : { broadcasts: n.broadcasts }),
      }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    broadcasts: [...names].sort().map((broadcast) => ({
      broadcast,
      ingestNode: ingestOf.get(broadcast),
      ladderNode: ladderOf.get(broadcast),
      tracks: tracks
        .filter((t) => t.value.broadcast === broadcast)
        .map((t) => ({ track: t.value.track, node: t.value.node, codec: t.value.codec }))
        .sort((a, b) => (a.track < b.track ? -1 : 1)),
    })),
  };
}
