/**
 * `TrackPublisher`: sends one local track to the cluster. It reads the local broadcaster through
 * an ordinary bounded subscription (so a publisher that falls behind drops whole GOPs, as any
 * reader does), writes each fragment into the track's memory stream, and keeps the track's
 * directory entry (codec, origin, producer) in KV, refreshed while the track lives. A source's
 * video also marks where the edges' segments start (segment-marker.ts), going on from the last
 * segment an earlier producer of the name marked (the numbering bucket, and the stream's newest
 * keyframe), so an edge that joins after an ingest failover numbers alike with one that was there.
 */

import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import { type Fragment, VIDEO_TRACK } from '../fragment/fragment.ts';
import { ensureTrackStream, type NumberingEntry, parseEntry, type TrackEntry, type TrackLimits } from './directory.ts';
import { trackKey, trackSubjects } from './names.ts';
import { type SegmentMark, SegmentMarker, type SegmentTargets } from './segment-marker.ts';
import { encodeFragment, segmentMarkOf, type WireMeta } from './wire.ts';

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
  /** With `segments`: the bucket of each source video's last marked segment (`NumberingEntry`). */
  readonly numbering?: KV | undefined;
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
  /** The newest mark not yet written to the numbering bucket, and whether a write is on its way. */
  #markToWrite: SegmentMark | undefined;
  #writingMark = false;
  #markWriteFailures = 0;

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
      if (marker !== undefined) {
        const last = await this.#lastMark(subjects);
        if (last !== undefined) marker.continueFrom(last);
      }
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
        if (mark !== undefined) this.#writeMark(mark);
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

  /**
   * The last segment an earlier producer of this source video marked: the later of the numbering
   * bucket's entry and the mark on the stream's newest keyframe (the bucket is written just after
   * the keyframe is published, so a producer that died in between left only the latter).
   */
  async #lastMark(subjects: ReturnType<typeof trackSubjects>): Promise<NumberingEntry | undefined> {
    const o = this.#o;
    const [stored, newest] = await Promise.all([
      o.numbering
        ?.get(this.#key)
        .then((e) => (e === null || e.operation !== 'PUT' ? undefined : parseEntry<NumberingEntry>(e.value)))
        .catch(() => undefined),
      o.jsm.streams
        .getMessage(subjects.stream, { last_by_subj: subjects.sync })
        .then((m) => (m === null ? undefined : segmentMarkOf(m.header)))
        .catch(() => undefined),
    ]);
    const valid = (e: NumberingEntry | undefined): e is NumberingEntry =>
      e !== undefined && Number.isInteger(e.msn) && e.msn >= 0 && Number.isInteger(e.discontinuitySequence);
    const found = [stored, newest].filter(valid);
    if (found.length === 0) return undefined;
    return found.reduce((a, b) => (b.msn > a.msn ? b : a));
  }

  /** Writes `mark` as the name's last segment (the newest one only, one write at a time). */
  #writeMark(mark: SegmentMark): void {
    const bucket = this.#o.numbering;
    if (bucket === undefined) return;
    this.#markToWrite = mark;
    if (this.#writingMark) return;
    this.#writingMark = true;
    void (async () => {
      while (this.#markToWrite !== undefined) {
        const { msn, discontinuitySequence } = this.#markToWrite;
        this.#markToWrite = undefined;
        const entry: NumberingEntry = { msn, discontinuitySequence };
        try {
          await bucket.put(this.#key, JSON.stringify(entry));
        } catch (error) {
          this.#markWriteFailures += 1;
          if (this.#markWriteFailures === 1 || this.#markWriteFailures % 100 === 0) {
            this.#o.logger.warn('cluster segment numbering not written', {
              broadcast: this.#o.broadcast,
              failures: this.#markWriteFailures,
              error: errorMessage(error),
            });
          }
        }
      }
      this.#writingMark = false;
    })();
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
   * own). A track its producer withdrew is marked so instead, for readers to drop their copies, and
   * the mark is left to expire with the entry's lifetime: a reader whose watch starts again in that
   * time still reads the withdrawal (after a delete it would only see the entry gone, and end its
   * copy as if the track had ended).
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
          return;
        }
        await this.#o.tracks.delete(this.#key, { previousSeq: this.#entryRevision });
      });
    } catch {
      // Written by another producer since, or NATS is gone: the entry expires by itself.
    }
  }
}
