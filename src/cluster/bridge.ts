/**
 * `ClusterBridge`: the seam between one node's registry and the cluster. Every track produced
 * here (ingest: sources; transcode: rungs) is published; every track this node's roles consume
 * (edge: the sources, rungs and audio of the broadcasts players ask it for, until they stop
 * asking; transcode: the sources whose ladder lease it holds) is mirrored into the local registry.
 * Ingest, transcode and HLS code only see the registry.
 */

import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KvWatchEntry } from '@nats-io/kv';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import { AUDIO_TRACK, VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import { BroadcastClaims } from './broadcast-claims.ts';
import {
  type Directory,
  type DirectoryTiming,
  type NodeEntry,
  parseEntry,
  type TrackEntry,
  type TrackLimits,
} from './directory.ts';
import { LadderPlacement } from './ladder-placement.ts';
import { tokenOf, trackKey } from './names.ts';
import type { SegmentTargets } from './segment-marker.ts';
import { abortableSleep, TrackConsumer } from './track-consumer.ts';
import { TrackPublisher } from './track-publisher.ts';

/** Longest a first request waits for its broadcast to be mirrored. */
const DEMAND_WAIT_MS = 5_000;

/** What a bridge is built from. */
export type BridgeOptions = {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly directory: Directory;
  readonly nodeId: string;
  readonly roles: readonly string[];
  readonly maxSources: number;
  /** An edge mirrors a broadcast from its first request until this long without one. */
  readonly edgeIdleMs: number;
  readonly timing: DirectoryTiming;
  readonly limits: TrackLimits;
  readonly maxBodyBytes: number;
  /** The edges' LL-HLS segment targets (a source's video carries where their segments start). */
  readonly segments: SegmentTargets;
  readonly logger: Logger;
  /** Creates the directory's buckets again (after NATS lost them: memory storage). */
  readonly reopenDirectory: () => Promise<void>;
};

/** What the bridge reads of the local service. */
export type LocalService = {
  readonly registry: FragmentBroadcasterRegistry;
  /** Broadcasts publishing (or in their grace period) on this node. */
  publishing(): string[];
};

/** A directory entry as this node last saw it (and since when the directory has lacked it). */
type Known = { entry: TrackEntry; seenMs: number; missingSinceMs?: number };

/** Publishes this node's tracks and mirrors the ones its roles consume. */
export class ClusterBridge {
  readonly #o: BridgeOptions;
  readonly #abort = new AbortController();
  readonly #publishers = new Map<string, TrackPublisher>();
  readonly #consumers = new Map<string, TrackConsumer>();
  /** Readers of tracks their producer ended, emitting the last fragments before they close. */
  readonly #finishing = new Map<string, TrackConsumer>();
  /** Local registry keys created by consumers (never published back). */
  readonly #mirrored = new Set<string>();
  readonly #known = new Map<string, Known>();
  /** Sources players asked this edge for, with the time of the last request. */
  readonly #demand = new Map<string, number>();
  readonly #claims: BroadcastClaims | undefined;
  readonly #placement: LadderPlacement | undefined;
  readonly #startedMs = Date.now();
  #local: LocalService | undefined;
  #offs: Array<() => void> = [];
  #loops: Promise<void>[] = [];
  /** Ends the current directory watch (it is started again). */
  #stopWatch: (() => void) | undefined;

  /** A bridge for one node; `attach` starts it. */
  constructor(options: BridgeOptions) {
    this.#o = options;
    const { directory, nodeId, logger } = options;
    if (this.#runs('ingest')) this.#claims = new BroadcastClaims(directory.broadcasts, nodeId, logger);
    if (this.#runs('transcode')) {
      this.#placement = new LadderPlacement(directory.leases, nodeId, options.maxSources, logger);
    }
  }

  /** Claims a broadcast name for a publisher of this node (see `BroadcastClaims.claim`). */
  claim(broadcast: string): Promise<void> {
    if (this.#claims === undefined) return Promise.resolve();
    return this.#claims.claim(broadcast);
  }

  /**
   * Whether this node runs `broadcast`'s ladder: a source published here (when this node
   * transcodes too), or one whose lease it holds.
   */
  runsLadder(broadcast: string): boolean {
    if (this.#placement === undefined) return false;
    if (this.#placement.holds(broadcast)) return true;
    return this.#local?.publishing().includes(broadcast) ?? false;
  }

  /**
   * A player asked this edge for `broadcast` (a source or a rung): its source, rungs and audio are
   * mirrored until nobody asked for `edgeIdleMs`. A name not live yet is remembered, so a broadcast
   * that starts later is mirrored from its first keyframe. Resolves once the broadcast is in the
   * local registry (at once when it already is, or is unknown), or after `DEMAND_WAIT_MS`.
   */
  async demand(broadcast: string): Promise<void> {
    if (!this.#runs('edge') || this.#local === undefined || this.#abort.signal.aborted) return;
    const registry = this.#local.registry;
    const local = (): boolean =>
      registry.get(broadcast, VIDEO_TRACK) !== undefined || registry.get(broadcast, AUDIO_TRACK) !== undefined;
    let source = broadcast;
    let known = false;
    for (const { entry } of this.#known.values()) {
      if (entry.broadcast !== broadcast) continue;
      known = true;
      if (entry.origin.kind === 'rendition') source = entry.origin.source;
    }
    const fresh = !this.#demand.has(source);
    this.#demand.set(source, Date.now());
    if (!fresh || !known || local()) return;
    this.#reconcile();
    const deadline = Date.now() + DEMAND_WAIT_MS;
    while (!local() && Date.now() < deadline && !this.#abort.signal.aborted) {
      await abortableSleep(20, this.#abort.signal);
    }
  }

  /** This node's part of the cluster, for the APIs. */
  status(): Record<string, unknown> {
    return {
      node: this.#o.nodeId,
      roles: this.#o.roles,
      published: [...this.#publishers.keys()].length,
      mirrored: [...this.#consumers.values()].map((c) => ({
        broadcast: c.entry.broadcast,
        track: c.entry.track,
        from: c.entry.node,
        fragments: c.received,
        gaps: c.gaps,
      })),
      ladders: this.#placement?.held() ?? [],
      maxSources: this.#placement?.maxSources,
    };
  }

  /** Starts publishing `local`'s tracks, watching the directory and the heartbeat. */
  attach(local: LocalService): void {
    this.#local = local;
    const { registry } = local;
    this.#offs.push(
      registry.onEntryCreated((broadcast, track, broadcaster) => this.#onCreated(broadcast, track, broadcaster)),
      registry.onEntryRemoved((broadcast, track) => this.#onRemoved(broadcast, track)),
    );
    for (const e of registry.entries()) this.#onCreated(e.broadcast, e.track, e.broadcaster);
    this.#loops.push(this.#watch(), this.#heartbeat());
  }

  /** Stops publishing and mirroring, withdraws this node's entries and leases. Idempotent. */
  async close(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    for (const off of this.#offs) off();
    this.#offs = [];
    // Rungs first, handed over (their entries stay until another node writes them), then the
    // leases, so edges keep the rung playlists while the next transcode node takes the ladders.
    await Promise.all([...this.#publishers.values()].map((p) => p.close(p.origin.kind === 'rendition')));
    this.#publishers.clear();
    await this.#placement?.close().catch(() => {});
    await Promise.all([...this.#consumers.values(), ...this.#finishing.values()].map((c) => c.close()));
    this.#consumers.clear();
    await Promise.all(this.#loops);
    await this.#claims?.close().catch(() => {});
    await this.#o.directory.nodes.delete(tokenOf(this.#o.nodeId)).catch(() => {});
  }

  #runs(role: string): boolean {
    return this.#o.roles.includes(role);
  }

  #onCreated(broadcast: string, track: string, broadcaster: FragmentBroadcaster): void {
    const key = trackKey(broadcast, track);
    if (this.#mirrored.has(key) || this.#publishers.has(key) || this.#abort.signal.aborted) return;
    const o = this.#o;
    const publisher = new TrackPublisher({
      js: o.js,
      jsm: o.jsm,
      tracks: o.directory.tracks,
      nodeId: o.nodeId,
      roles: o.roles,
      broadcast,
      track,
      broadcaster,
      maxBodyBytes: o.maxBodyBytes,
      limits: o.limits,
      segments: broadcaster.origin.kind === 'ingest' && track === VIDEO_TRACK ? o.segments : undefined,
      numbering: o.directory.numbering,
      logger: o.logger,
    });
    this.#publishers.set(key, publisher);
    void publisher.start().then(() => {
      if (this.#publishers.get(key) === publisher) this.#publishers.delete(key);
    });
  }

  #onRemoved(broadcast: string, track: string): void {
    const key = trackKey(broadcast, track);
    this.#mirrored.delete(key);
  }

  /** Follows the track directory: puts and deletes as they happen. */
  async #watch(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        const watch = await this.#o.directory.tracks.watch();
        this.#stopWatch = () => watch.stop();
        const stop = (): void => watch.stop();
        this.#abort.signal.addEventListener('abort', stop, { once: true });
        for await (const e of watch) this.#onDirectory(e);
        this.#abort.signal.removeEventListener('abort', stop);
      } catch (error) {
        this.#o.logger.debug('cluster directory watch restarts', { error: errorMessage(error) });
      }
      await abortableSleep(500, this.#abort.signal);
    }
  }

  #onDirectory(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') {
      this.#known.delete(e.key);
    } else {
      const entry = parseEntry<TrackEntry>(e.value);
      if (entry === undefined) return;
      if (entry.withdrawn === true) {
        this.#withdrawn(e.key);
      } else {
        this.#known.set(e.key, { entry, seenMs: Date.now() });
      }
    }
    this.#reconcile();
  }

  /** Its producer withdrew the track (a bypassed rung): the local copy goes at once, not after a drain. */
  #withdrawn(key: string): void {
    this.#known.delete(key);
    const consumer = this.#consumers.get(key) ?? this.#finishing.get(key);
    this.#consumers.delete(key);
    if (consumer !== undefined) void consumer.withdraw();
  }

  /** Opens a consumer for each known track this node wants, closes the others. */
  #reconcile(): void {
    if (this.#abort.signal.aborted || this.#local === undefined) return;
    const registry = this.#local.registry;
    for (const [key, known] of this.#known) {
      if (!this.#wants(known.entry)) continue;
      const existing = this.#consumers.get(key);
      if (existing !== undefined) {
        existing.update(known.entry);
        continue;
      }
      if (this.#publishers.has(key)) continue;
      // The track's previous reader still emits its last fragments: it stops now, and this one
      // starts once it removed its local track.
      const finishing = this.#finishing.get(key);
      if (finishing !== undefined) {
        void finishing.close();
        continue;
      }
      const consumer = new TrackConsumer({
        js: this.#o.js,
        jsm: this.#o.jsm,
        registry,
        entry: known.entry,
        numberAsProducer: this.#runs('edge'),
        // Mirrored for players: from the oldest keyframe (every track then starts at or before
        // its source's first segment here). For a ladder only: the newest (no backlog to encode).
        fromOldest: this.#demanded(known.entry),
        onCreating: () => this.#mirrored.add(key),
        logger: this.#o.logger,
      });
      this.#consumers.set(key, consumer);
      consumer.start();
    }
    for (const [key, consumer] of this.#consumers) {
      const known = this.#known.get(key);
      if (known !== undefined && this.#wants(known.entry)) continue;
      this.#consumers.delete(key);
      if (known !== undefined) {
        void consumer.close();
        continue;
      }
      // Withdrawn by its producer: the track ended, after the fragments still on their way here.
      this.#finishing.set(key, consumer);
      void consumer.finish().then(() => {
        this.#finishing.delete(key);
        this.#reconcile();
      });
    }
  }

  #wants(entry: TrackEntry): boolean {
    if (entry.node === this.#o.nodeId) return false;
    if (this.#demanded(entry)) return true;
    return entry.origin.kind === 'ingest' && (this.#placement?.holds(entry.broadcast) ?? false);
  }

  /** Whether this node is an edge that players asked for the track's broadcast within `--edge-idle`. */
  #demanded(entry: TrackEntry): boolean {
    if (!this.#runs('edge')) return false;
    const source = entry.origin.kind === 'rendition' ? entry.origin.source : entry.broadcast;
    const asked = this.#demand.get(source);
    return asked !== undefined && Date.now() - asked < this.#o.edgeIdleMs;
  }

  /** Sources that may need a transcode node: published by a node that does not transcode them itself. */
  #placeableSources(): string[] {
    const out = new Set<string>();
    for (const { entry } of this.#known.values()) {
      if (entry.origin.kind !== 'ingest' || entry.track !== '0.mp4') continue;
      if (entry.roles.includes('transcode')) continue;
      out.add(entry.broadcast);
    }
    return [...out];
  }

  /**
   * Entries the watch has not shown for longer than their lifetime: gone when the directory has
   * not held them for another lifetime (the producer stopped writing: its entry expired), else the watch missed
   * their updates (it lost its consumer with the server) and is started again. Kept while NATS
   * does not answer.
   */
  async #checkStale(): Promise<void> {
    const { directory, timing } = this.#o;
    let watchBroken = false;
    for (const [key, known] of [...this.#known]) {
      if (Date.now() - known.seenMs <= timing.entryTtlMs) continue;
      const current = await directory.tracks.get(key).catch(() => undefined);
      if (current === undefined) continue;
      const entry = current?.operation === 'PUT' ? parseEntry<TrackEntry>(current.value) : undefined;
      if (entry === undefined) {
        // Absent for another lifetime: the producer is gone. (Right after NATS restarts, every
        // entry is absent until its producer writes it again, a heartbeat later.)
        known.missingSinceMs ??= Date.now();
        if (Date.now() - known.missingSinceMs > timing.entryTtlMs) this.#known.delete(key);
        continue;
      }
      if (entry.withdrawn === true) this.#withdrawn(key);
      else this.#known.set(key, { entry, seenMs: Date.now() });
      watchBroken = true;
    }
    if (watchBroken) this.#stopWatch?.();
  }

  async #heartbeat(): Promise<void> {
    const { directory, timing, nodeId, roles, logger } = this.#o;
    let failed = false;
    while (!this.#abort.signal.aborted) {
      try {
        if (failed) await this.#o.reopenDirectory();
        const node: NodeEntry = {
          id: nodeId,
          roles,
          startedMs: this.#startedMs,
          updatedMs: Date.now(),
          ...(this.#placement === undefined
            ? {}
            : { maxSources: this.#placement.maxSources, ladders: this.#placement.held() }),
          ...(this.#claims === undefined ? {} : { broadcasts: this.#claims.held() }),
        };
        await directory.nodes.put(tokenOf(nodeId), JSON.stringify(node));
        await Promise.all([...this.#publishers.values()].map((p) => p.refresh()));
        await this.#claims?.refresh(this.#local?.publishing() ?? []);
        await this.#checkStale();
        const now = Date.now();
        for (const [source, asked] of this.#demand) {
          if (now - asked >= this.#o.edgeIdleMs) this.#demand.delete(source);
        }
        const change = await this.#placement?.tick(this.#placeableSources());
        if (change !== undefined && (change.gained.length > 0 || change.lost.length > 0)) {
          logger.info('ladder placement changed', { node: nodeId, ...change });
        }
        this.#reconcile();
        if (failed) {
          // The watch's consumer may have lost its stream with the server: watch afresh.
          this.#stopWatch?.();
          logger.info('cluster heartbeat works again', { node: nodeId });
        }
        failed = false;
      } catch (error) {
        if (!failed) logger.warn('cluster heartbeat failed', { error: errorMessage(error) });
        failed = true;
      }
      await abortableSleep(timing.heartbeatMs, this.#abort.signal);
    }
  }
}
