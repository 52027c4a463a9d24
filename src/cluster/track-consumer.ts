/**
 * `TrackConsumer`: makes one track of another node appear in the local registry as if it were
 * local. It starts at a sync point of the track's stream (a keyframe carrying the init: the oldest
 * the stream holds for players, the newest for a ladder), reads on with an ordered consumer, and
 * emits into a local broadcaster; readers downstream (ladder, HLS) cannot tell it from a local
 * track. A gap in the stream (messages aged out while this node was slow, or lost) makes it wait
 * for the next sync point, so whole GOPs are dropped and no delta frame follows a gap. A new init
 * from the producer (another worker took over, the publisher came back) is a meta change
 * downstream, which HLS marks as a discontinuity.
 */

import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import { backoffDelayMs } from '../core/backoff.ts';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { FragmentBroadcaster, TrackNumbering } from '../fragment/broadcaster.ts';
import { VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { TrackEntry } from './directory.ts';
import { trackSubjects } from './names.ts';
import type { SegmentMark } from './segment-marker.ts';
import { Reassembler } from './wire.ts';

/** A read with no message for this long is started again (from where it stopped, if it can). */
const IDLE_RESTART_MS = 4_000;
/** Messages the client buffers ahead of this reader at most. */
const BUFFERED_MESSAGES = 256;
/** Longest an ended track is read on for the fragments its producer wrote before it ended. */
const DRAIN_MS = 5_000;

/** What a track consumer needs. */
export type TrackConsumerOptions = {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly registry: FragmentBroadcasterRegistry;
  readonly entry: TrackEntry;
  /**
   * Whether the local track starts where the producer's LL-HLS numbering says (an edge): a source's
   * video at a keyframe that starts a segment, with that segment's numbering; a rung at its
   * source's boundaries, with its numbering. Every edge then lists the same video alike. Audio
   * starts at once (a late master would otherwise lack its audio group for up to a segment).
   */
  readonly numberAsProducer: boolean;
  /**
   * Whether the first read starts at the oldest sync point the stream holds (a track mirrored for
   * players: every track of a broadcast then starts at or before its source's first listed segment,
   * however long after the source's its entry was seen or its reader started; HLS drops what lies
   * before) rather than the newest (a source read for a ladder: no backlog to encode first).
   */
  readonly fromOldest: boolean;
  /** Called just before the local broadcaster is created (the bridge must not publish it back). */
  readonly onCreating: () => void;
  readonly logger: Logger;
};

/** Reads one remote track into a local broadcaster. */
export class TrackConsumer {
  readonly #o: TrackConsumerOptions;
  readonly #abort = new AbortController();
  #entry: TrackEntry;
  #broadcaster: FragmentBroadcaster | undefined;
  #metaId: string | undefined;
  /** A meta whose local track is not created yet (it waits for a segment's start). */
  #pendingMeta: FragmentBroadcaster['meta'] | undefined;
  #close: (() => void) | undefined;
  #done: Promise<void> | undefined;
  #received = 0;
  #gaps = 0;
  /** Where reading stopped: the stream (by creation time) and the next sequence to read. */
  #position: { created: string; nextSeq: number } | undefined;
  /** Whether the last read stopped between a gap and the next sync point. */
  #waiting = true;
  /** While finishing: the stream's last sequence when the producer ended, and who waits for it. */
  #drain: { lastSeq: number; reached: () => void } | undefined;

  /** A consumer of `options.entry`; call `start()`. */
  constructor(options: TrackConsumerOptions) {
    this.#o = options;
    this.#entry = options.entry;
  }

  /** The directory entry this consumer follows. */
  get entry(): TrackEntry {
    return this.#entry;
  }

  /** Fragments emitted locally. */
  get received(): number {
    return this.#received;
  }

  /** Gaps seen (each dropped up to the next sync point). */
  get gaps(): number {
    return this.#gaps;
  }

  /** Follows a newer entry of the same track (another producer took it over: same stream). */
  update(entry: TrackEntry): void {
    this.#entry = entry;
  }

  /** Starts reading; retries (with back-off) while the stream is missing or NATS is away. */
  start(): void {
    this.#done ??= this.#run();
  }

  /**
   * The producer ended the track (withdrew its entry): reads on until what the stream held at
   * that moment is emitted (at most `DRAIN_MS`), then closes. The entry's delete can overtake the
   * last fragments, which are still on their way to this reader.
   */
  async finish(): Promise<void> {
    const position = this.#position;
    if (position !== undefined && !this.#abort.signal.aborted) {
      const { broadcast, track } = this.#entry;
      const info = await this.#o.jsm.streams.info(trackSubjects(broadcast, track).stream).catch(() => undefined);
      if (info !== undefined && info.created === position.created && position.nextSeq <= info.state.last_seq) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            this.#abort.signal.removeEventListener('abort', done);
            this.#drain = undefined;
            resolve();
          };
          const timer = setTimeout(done, DRAIN_MS);
          this.#abort.signal.addEventListener('abort', done, { once: true });
          this.#drain = { lastSeq: info.state.last_seq, reached: done };
          // Read on while the stream's state was asked for.
          if ((this.#position?.nextSeq ?? 0) > info.state.last_seq) done();
        });
      }
    }
    await this.close();
  }

  /** Stops reading and removes the local track (its readers drain, then end). Idempotent. */
  close(): Promise<void> {
    return this.#stop(false);
  }

  /** The producer withdrew the track: stops reading and withdraws the local copy (not served any more). */
  withdraw(): Promise<void> {
    return this.#stop(true);
  }

  async #stop(withdraw: boolean): Promise<void> {
    this.#abort.abort();
    this.#close?.();
    await this.#done;
    const { registry } = this.#o;
    const { broadcast, track } = this.#entry;
    const local = this.#broadcaster;
    if (local !== undefined && registry.get(broadcast, track) === local) {
      if (withdraw) local.withdraw();
      registry.remove(broadcast, track);
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#abort.signal.aborted) {
      failures += 1;
      try {
        if (await this.#readOnce()) failures = 1;
      } catch (error) {
        this.#o.logger.debug('cluster track reader restarts', {
          broadcast: this.#entry.broadcast,
          track: this.#entry.track,
          error: errorMessage(error),
        });
      }
      if (this.#abort.signal.aborted) break;
      await abortableSleep(backoffDelayMs(failures, 200, 2_000), this.#abort.signal);
    }
  }

  /**
   * Reads until the stream's messages end (or none came for `IDLE_RESTART_MS`); true when it got
   * any. It resumes right after the last message read when the stream is the same one and still
   * holds it; otherwise (a new stream: NATS restarted, or the reader fell too far behind) it starts
   * at the newest sync point. The first read starts at the oldest one with `fromOldest`.
   */
  async #readOnce(): Promise<boolean> {
    const { js, jsm } = this.#o;
    const { broadcast, track } = this.#entry;
    const subjects = trackSubjects(broadcast, track);
    const info = await jsm.streams.info(subjects.stream);
    const { created } = info;
    const position = this.#position;
    const resume =
      position !== undefined && position.created === created && position.nextSeq >= info.state.first_seq
        ? position.nextSeq
        : undefined;
    // Without a sequence the read starts at the stream's first message (and waits for a sync point).
    // After a first read, a reader that fell behind starts again at the newest sync point: from the
    // oldest it could fall behind again.
    let startSeq = resume;
    if (startSeq === undefined && !(this.#o.fromOldest && position === undefined)) {
      const newest = await jsm.streams.getMessage(subjects.stream, { last_by_subj: subjects.sync }).catch(() => null);
      startSeq = newest?.seq;
    }
    const start: Partial<OrderedConsumerOptions> =
      startSeq === undefined
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq };
    const consumer = await js.consumers.get(subjects.stream, start);
    const messages = await consumer.consume({ max_messages: BUFFERED_MESSAGES });
    this.#close = () => void messages.close();
    if (this.#abort.signal.aborted) void messages.close();
    // A consumer whose stream vanished (NATS restarted) waits forever: read again when idle.
    let lastMessageMs = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastMessageMs > IDLE_RESTART_MS) void messages.close();
    }, IDLE_RESTART_MS / 4);
    const reassembler = new Reassembler(track);
    let lastSeq = resume === undefined ? undefined : resume - 1;
    let waiting = resume === undefined || this.#waiting;
    let dropped = 0;
    let any = false;
    try {
      for await (const m of messages) {
        lastMessageMs = Date.now();
        if (lastSeq !== undefined && m.seq !== lastSeq + 1) {
          reassembler.reset();
          if (!waiting) this.#gaps += 1;
          waiting = true;
        }
        lastSeq = m.seq;
        this.#position = { created, nextSeq: m.seq + 1 };
        any = true;
        const decoded = reassembler.push({ subject: m.subject, headers: m.headers, data: m.data });
        if (reassembler.dropped !== dropped) {
          dropped = reassembler.dropped;
          waiting = true;
        }
        this.#waiting = waiting;
        if (decoded === undefined) continue;
        if (decoded.meta !== undefined) {
          waiting = false;
          this.#waiting = false;
          if (decoded.meta.id !== this.#metaId) {
            this.#metaId = decoded.meta.id;
            this.#applyMeta(decoded.meta.meta);
          }
        }
        if (this.#pendingMeta !== undefined) this.#create(decoded.segment);
        if (!waiting && this.#broadcaster !== undefined) {
          this.#broadcaster.emit(decoded.fragment);
          this.#received += 1;
        }
        if (this.#drain !== undefined && m.seq >= this.#drain.lastSeq) this.#drain.reached();
      }
    } finally {
      clearInterval(watchdog);
    }
    return any;
  }

  #applyMeta(meta: FragmentBroadcaster['meta']): void {
    if (this.#broadcaster !== undefined && !this.#broadcaster.closed) {
      this.#broadcaster.setMeta(meta);
      return;
    }
    this.#broadcaster = undefined;
    this.#pendingMeta = meta;
  }

  /** Creates the local track with the pending meta, unless it must wait for a segment's start. */
  #create(segment: SegmentMark | undefined): void {
    const meta = this.#pendingMeta;
    const { registry } = this.#o;
    const { broadcast, track, origin } = this.#entry;
    if (meta === undefined) return;
    let numbering: TrackNumbering | undefined;
    if (this.#o.numberAsProducer) {
      if (origin.kind === 'ingest' && track === VIDEO_TRACK) {
        if (segment === undefined) return;
        numbering = segment;
      } else if (origin.kind === 'rendition' || track !== VIDEO_TRACK) {
        // A rung or any audio: its leader's numbering, from one of its leader's segment boundaries.
        numbering = 'leader';
      }
    }
    this.#pendingMeta = undefined;
    if (registry.get(broadcast, track) !== undefined) {
      this.#o.logger.warn('cluster track already exists locally; not mirrored', { broadcast, track });
      return;
    }
    this.#o.onCreating();
    // Tagged as a mirror: what the producing node reports of the track (events) is not said again here.
    this.#broadcaster = registry.getOrCreate(broadcast, track, meta, {
      origin: { ...origin, mirroredFrom: this.#entry.node },
      ...(numbering === undefined ? {} : { numbering }),
    });
  }
}

/** Waits `ms`, or less when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
