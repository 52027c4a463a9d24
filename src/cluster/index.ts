/**
 * The cluster: ingest, transcode and edge roles on separate nodes, joined by NATS JetStream. This
 * folder is the only code that knows NATS; it bridges the local registry (see `bridge.ts`).
 *
 * Transport: each track has a memory stream bounded by age and bytes (about two GOPs) on its own
 * subjects; each fragment is one message (timing and flags in a header); sync points (video
 * keyframes, audio once a second) carry the init, so a reader starts at one at once (an edge at
 * the oldest held, a ladder at the newest). Bodies above the server's max payload travel as chunks
 * and arrive whole. A source's video marks the keyframes that start an LL-HLS segment with its
 * numbering (`segment-marker.ts`): an edge starts a mirrored broadcast there, so every edge lists
 * the same segments whenever it joined.
 *
 * Back-pressure: a publisher reads its local track through a bounded subscription and keeps a
 * bounded number of publishes in flight; a reader buffers a bounded number of messages and, after
 * a gap, waits for the next sync point. Nothing grows without bound; a slow node loses whole GOPs.
 *
 * Directory (JetStream KV, memory, entries expire unless rewritten): nodes, broadcast names
 * (unique across the cluster), tracks, ladder leases (one transcode node per source, renewed by
 * heartbeat, capacity-limited).
 *
 * Not a media server of its own: what a node serves is what its registry holds.
 */

import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { errorMessage, LvqrError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { ClusterBridge, type LocalService } from './bridge.ts';
import { DEFAULT_TIMING, type DirectoryTiming, openDirectory, type TrackLimits } from './directory.ts';
import { type ClusterOverview, clusterOverview } from './overview.ts';
import type { SegmentTargets } from './segment-marker.ts';
import { HEADER_ROOM_BYTES } from './wire.ts';

export type { LocalService } from './bridge.ts';
export type { ClusterOverview } from './overview.ts';

/** Default bounds of a track's stream: about two GOPs of a 2 s segment target, at most 64 MiB. */
export const DEFAULT_TRACK_LIMITS: TrackLimits = { maxAgeMs: 5_000, maxBytes: 64 * 1024 * 1024 };

/** How long an edge mirrors a broadcast nobody asks for. */
export const DEFAULT_EDGE_IDLE_MS = 30_000;

/** What joining the cluster needs. */
export type ClusterOptions = {
  readonly urls: readonly string[];
  readonly nodeId: string;
  readonly roles: readonly string[];
  readonly maxSources: number;
  /** An edge lets a broadcast go after this long without a request (default 30 s). */
  readonly edgeIdleMs?: number;
  readonly logger: Logger;
  readonly timing?: DirectoryTiming;
  readonly limits?: TrackLimits;
  /** The edges' LL-HLS segment targets (`--hls-target-duration`, `--hls-part-target`); default 2000 / 200 ms. */
  readonly segments?: SegmentTargets;
};

/** This node's membership of the cluster. */
export type Cluster = {
  /** Claims a broadcast name for a publisher here; throws `ingest.published_elsewhere` when another node holds it. */
  claim(broadcast: string): Promise<void>;
  /** Whether this node runs `broadcast`'s ladder. */
  runsLadder(broadcast: string): boolean;
  /** A player asked this edge for `broadcast` (see `ClusterBridge.demand`). */
  demand(broadcast: string): Promise<void>;
  /** Starts bridging the local service's registry. */
  attach(local: LocalService): void;
  /** This node's view, for the APIs. */
  status(): Record<string, unknown>;
  /** The whole cluster from the directory: nodes, and where each broadcast and ladder runs. */
  overview(): Promise<ClusterOverview>;
  /** Withdraws this node and closes the connection. Idempotent. */
  close(): Promise<void>;
};

/** Connects to NATS, opens the directory and returns the (not yet attached) bridge. */
export async function joinCluster(options: ClusterOptions): Promise<Cluster> {
  const timing = options.timing ?? DEFAULT_TIMING;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: [...options.urls],
      name: options.nodeId,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      timeout: 5_000,
    });
  } catch (error) {
    throw new LvqrError('config.invalid', `cannot reach NATS at ${options.urls.join(', ')}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  try {
    const jsm = await jetstreamManager(nc);
    const directory = await openDirectory(nc, timing);
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const bridge = new ClusterBridge({
      js: jetstream(nc),
      jsm,
      directory,
      nodeId: options.nodeId,
      roles: options.roles,
      maxSources: options.maxSources,
      edgeIdleMs: options.edgeIdleMs ?? DEFAULT_EDGE_IDLE_MS,
      timing,
      limits: options.limits ?? DEFAULT_TRACK_LIMITS,
      maxBodyBytes: Math.max(1024, maxPayload - HEADER_ROOM_BYTES),
      segments: options.segments ?? { targetDurationMs: 2000, partTargetMs: 200 },
      logger: options.logger,
      reopenDirectory: async () => {
        await openDirectory(nc, timing);
      },
    });
    options.logger.info('joined the cluster', { node: options.nodeId, roles: options.roles.join(','), maxPayload });
    let closing: Promise<void> | undefined;
    return {
      claim: (broadcast) => bridge.claim(broadcast),
      runsLadder: (broadcast) => bridge.runsLadder(broadcast),
      demand: (broadcast) => bridge.demand(broadcast),
      attach: (local) => bridge.attach(local),
      status: () => bridge.status(),
      overview: () => clusterOverview(directory),
      close() {
        closing ??= (async () => {
          await bridge.close();
          await nc.drain().catch(() => {});
        })();
        return closing;
      },
    };
  } catch (error) {
    await nc.close().catch(() => {});
    throw new LvqrError(
      'config.invalid',
      `NATS at ${options.urls.join(', ')} has no usable JetStream: ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
}
