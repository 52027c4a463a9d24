/**
 * `TrackPublisher`: sends one local track to the cluster. It reads the local broadcaster through
 * an ordinary bounded subscription (so a publisher that falls behind drops whole GOPs, as any
 * reader does), writes each fragment into the track's memory stream, and keeps the track's
 * directory entry (codec, origin, producer) in KV, refreshed while the track lives.
 */

import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import { type Fragment, VIDEO_TRACK } from '../fragment/fragment.ts';
import { ensureTrackStream, type TrackEntry, type TrackLimits } from './directory.ts';
import { trackKey, trackSubjects } from './names.ts';
import { type SegmentMark, SegmentMarker, type SegmentTargets } from './segment-marker.ts';
import { encodeFragment, type WireMeta } from './wire.ts';

/** Publishes awaiting their acknowledgement at most; the next one waits for the oldest. */
const MAX_IN_FLIGHT = 64;
/** Queue bound of the publisher's own subscription (fragments). */
const QUEUE_CAPACITY = 512;
/** After a failed publish, the stream is checked (and made again) at most this often. */
const STREAM_CHECK_MS = 1_000;
/** An audio track (no keyframes) gets a sync point this often, in seconds of media. */
const AUDIO_SYNC_S = 1;

/** What a track publisher needs. */
export type TrackPublisherOptions = {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly tracks: KV;
  readonly nodeId: string;
  readonly roles: readonly string[];
  readonly broadcast: string;
  readonly track: string;
  readonly broadcaster: FragmentBroadcaster;
  /** Largest message body (the server's max payload less header room). */
  readonly maxBodyBytes: number;
  readonly limits: TrackLimits;
  /** For a source's video: the edges' segment targets, to mark where their segments start (`SegmentMarker`). */
  readonly segments?: SegmentTargets | undefined;
  readonly logger: Logger;
};

/** Sends one local track into its stream and keeps its directory entry. */
export class TrackPublisher {
  readonly #o: TrackPublisherOptions;
  readonly #key: string;
  readonly #abort = new AbortController();
  #entry: TrackEntry | undefined;
  #entryRevision = 0;
  /**
   * The directory writes of this publisher, one after the other: a refresh whose put was still on
   * its way when the track was withdrawn made the withdrawal's compare-and-set fail (a stale
   * revision), so the entry was neither marked nor deleted and readers kept the track until it expired.
   */
  #writes: Promise<unknown> = Promise.resolve();
  #published = 0;
  #failed = 0;
  #handOver = false;
  #done: Promise<void> | undefined;

  /** A publisher of `options.broadcaster`; call `start()`. */
  constructor(options: TrackPublisherOptions) {
    this.#o = options;
    this.#key = trackKey(options.broadcast, options.track);
  }

  /** Who produces the track. */
  get origin(): FragmentBroadcaster['origin'] {
    return this.#o.broadcaster.origin;
  }

  /** Fragments written to the stream. */
  get published(): number {
    return this.#published;
  }

  /** Starts reading the local track; resolves when it ended and the entry was withdrawn. */
  start(): Promise<void> {
    this.#done ??= this.#run().catch((error: unknown) =>
      this.#o.logger.error('cluster track publisher failed', {
        broadcast: this.#o.broadcast,
        track: this.#o.track,
        error: errorMessage(error),
      }),
    );
    return this.#done;
  }

  /** Re-puts the directory entry (its KV lifetime is bounded: a dead producer's entry goes away). */
  refresh(): Promise<void> {
    return this.#serial(async () => {
      if (this.#entry === undefined || this.#abort.signal.aborted) return;
      this.#entry = { ...this.#entry, updatedMs: Date.now() };
      this.#entryRevision = await this.#o.tracks.put(this.#key, JSON.stringify(this.#entry));
    });
  }

  /** Runs `write` after every directory write before it; its failure is the caller's. */
  #serial<T>(write: () => Promise<T>): Promise<T> {
    const result = this.#writes.then(write);
    this.#writes = result.catch(() => undefined);
    return result;
  }

  /**
   * Stops publishing now. The entry is withdrawn (readers end the track), unless `handOver`: then
   * it is left to expire, so readers keep the track for a successor that writes it again (a rung
   * whose ladder another transcode node takes over). Idempotent.
   */
  async close(handOver = false): Promise<void> {
    if (handOver) this.#handOver = true;
    this.#abort.abort();
    await this.#done;
  }

  async #run(): Promise<void> {
    const o = this.#o;
    const subjects = trackSubjects(o.broadcast, o.track);
    const sub = o.broadcaster.subscribe({ capacity: QUEUE_CAPACITY });
    const signal = this.#abort.signal;
    const onAbort = (): void => sub.close();
    signal.addEventListener('abort', onAbort, { once: true });
    const inFlight: Array<Promise<PubAck | undefined>> = [];
    try {
      const first = await sub.waitForInit(signal);
      if (first === undefined) return;
      await ensureTrackStream(o.jsm, subjects, o.limits);
      const epoch = `${o.nodeId}/${Date.now().toString(36)}`;
      const video = o.track === VIDEO_TRACK;
      let version = -1;
      let meta: WireMeta | undefined;
      let lastSyncDts = Number.NEGATIVE_INFINITY;
      let lagged = 0;
      // Readers must never get a delta frame they cannot decode: after a start, a new init, a
      // skip or a lost publish, video waits for its next keyframe.
      let needSync = true;
      const marker = o.segments === undefined ? undefined : new SegmentMarker(o.segments);
      // A failed publish may mean the stream is gone (NATS restarted: memory streams are lost):
      // it is created again before the next publish, at most once a second.
      let streamCheckedMs = Date.now();
      let checkStream = false;
      const lost = (): void => {
        needSync = true;
        checkStream = true;
      };
      for (;;) {
        const fragment = await sub.next(signal);
        if (fragment === undefined) break;
        if (sub.metaVersion !== version) {
          version = sub.metaVersion;
          meta = { id: `${epoch}/${version}`, meta: sub.meta };
          await this.#putEntry(meta);
          marker?.newInit();
          needSync = true;
        }
        if (sub.lagged !== lagged) {
          lagged = sub.lagged;
          needSync = true;
        }
        let sync: boolean;
        if (video) {
          if (needSync && !fragment.flags.keyframe) continue;
          sync = fragment.flags.keyframe;
        } else {
          sync = needSync || fragment.dts - lastSyncDts >= AUDIO_SYNC_S * sub.meta.timescale;
        }
        if (sync) {
          needSync = false;
          lastSyncDts = fragment.dts;
        }
        if (checkStream && Date.now() - streamCheckedMs >= STREAM_CHECK_MS) {
          checkStream = false;
          streamCheckedMs = Date.now();
          await ensureTrackStream(o.jsm, subjects, o.limits).catch(() => {
            checkStream = true;
          });
        }
        const mark = marker?.mark(fragment, sub.meta.timescale);
        inFlight.push(...this.#publish(subjects, fragment, sync ? meta : undefined, lost, mark));
        while (inFlight.length > MAX_IN_FLIGHT) await inFlight.shift();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      sub.close();
      await Promise.all(inFlight);
      await this.#withdraw();
    }
  }

  #publish(
    subjects: ReturnType<typeof trackSubjects>,
    fragment: Fragment,
    meta: WireMeta | undefined,
    onFailure: () => void,
    mark: SegmentMark | undefined,
  ): Array<Promise<PubAck | undefined>> {
    const messages = encodeFragment(subjects, fragment, meta, this.#o.maxBodyBytes, mark);
    this.#published += 1;
    return messages.map((m) =>
      this.#o.js.publish(m.subject, m.data, { headers: m.headers }).catch((error: unknown) => {
        onFailure();
        this.#failed += 1;
        if (this.#failed === 1 || this.#failed % 100 === 0) {
          this.#o.logger.warn('cluster publish failed', {
            broadcast: this.#o.broadcast,
            track: this.#o.track,
            failures: this.#failed,
            error: errorMessage(error),
          });
        }
        return undefined;
      }),
    );
  }

  async #putEntry(meta: WireMeta): Promise<void> {
    const o = this.#o;
    const b = o.broadcaster;
    this.#entry = {
      broadcast: o.broadcast,
      track: o.track,
      node: o.nodeId,
      roles: [...o.roles],
      origin: b.origin,
      codec: meta.meta.codec,
      timescale: meta.meta.timescale,
      metaId: meta.id,
      updatedMs: Date.now(),
    };
    const entry = this.#entry;
    try {
      await this.#serial(async () => {
        this.#entryRevision = await o.tracks.put(this.#key, JSON.stringify(entry));
      });
    } catch (error) {
      o.logger.warn('cluster track entry not written', { broadcast: o.broadcast, error: errorMessage(error) });
    }
  }

  /**
   * Deletes the directory entry if it is still this publisher's (a successor may have written its
   * own); a track its producer withdrew is first marked so, for readers to drop their copies.
   */
  async #withdraw(): Promise<void> {
    const entry = this.#entry;
    this.#entry = undefined;
    if (entry === undefined || this.#handOver) return;
    try {
      await this.#serial(async () => {
        if (this.#o.broadcaster.withdrawn) {
          const marked: TrackEntry = { ...entry, withdrawn: true, updatedMs: Date.now() };
          this.#entryRevision = await this.#o.tracks.put(this.#key, JSON.stringify(marked), {
            previousSeq: this.#entryRevision,
          });
        }
        await this.#o.tracks.delete(this.#key, { previousSeq: this.#entryRevision });
      });
    } catch {
      // Written by another producer since, or NATS is gone: the entry expires by itself.
    }
  }
}
