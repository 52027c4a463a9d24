/**
 * `Fmp4StreamParser`: turns an fMP4 byte stream, cut into chunks anyhow, into init and fragment
 * events. Multi-track `moof`s are split into one single-track `moof`+`mdat` per track, matching
 * the single-track init segment reported for that track (`0.mp4` video, `1.mp4` audio).
 *
 * The stages, each in its own file: `BoxFramer` (over a `ChunkQueue`) cuts the stream into whole
 * top-level boxes; this file checks their order and reads `moov` and `moof`; `TrackSplitter` cuts
 * each `moof`+`mdat` into per-track drafts; `DurationRepair` completes them into fragments;
 * `FrameRateMeter` measures a video frame rate the init does not state.
 *
 * Buffering: chunks are queued as they come and joined only once a whole box is present, so
 * input cut into 1-byte chunks costs linear time. Boxes other than ftyp/moov/moof/mdat are
 * dropped as they arrive, never buffered. A kept chunk tail is copied, so callers may reuse
 * their buffers after `push` returns.
 *
 * Timing: decode times come from every `tfdt`. A fragment that ends with zero-duration samples
 * (a muxer that does not know them yet) is held until the track's next decode time, and those
 * samples share the time until it; `flush`, `end` and a new `moov` release it with the median of
 * the recent durations instead. A decode time that goes backwards within one init is
 * `ingest.timestamp_regression`.
 */

import { argumentError, ContainerError } from '../core/errors.ts';
import { AUDIO_TRACK, VIDEO_TRACK } from '../fragment/fragment.ts';
import { BoxFramer, type FramedBox } from './box-framer.ts';
import { asContainerError, type BoxHeader, malformed } from './boxes.ts';
import { DurationRepair, type FragmentSink } from './duration-repair.ts';
import { FRAME_RATE_MIN_SAMPLES, FrameRateMeter } from './frame-rate.ts';
import { parseMoof, type SampleDefaults } from './moof.ts';
import { parseMoov, requireTracks, singleTrackInit } from './moov.ts';
import type { ParsedTrack, ParserEvent } from './parser-events.ts';
import { type PendingMoof, TrackSplitter } from './track-splitter.ts';

export type { FragmentEvent, OutputTrackId, ParsedTrack, ParserEvent, SampleInfo } from './parser-events.ts';

/** Options of a parser. */
export type Fmp4ParserOptions = {
  /** Largest `moof`, `mdat` or skipped box in bytes (default 16 MiB). */
  maxBoxBytes?: number;
  /** Largest `ftyp` or `moov` in bytes (default 4 MiB, at most `maxBoxBytes`). */
  maxInitBytes?: number;
  /** Wall clock in ms for `ingestTimeMs` (default `Date.now`). */
  now?: () => number;
};

/** Default `maxBoxBytes`. */
export const DEFAULT_MAX_BOX_BYTES = 16 * 1024 * 1024;
/** Default `maxInitBytes`. */
export const DEFAULT_MAX_INIT_BYTES = 4 * 1024 * 1024;

/** Top-level boxes the parser reads; every other one is skipped. */
const KEPT_BOXES: ReadonlySet<string> = new Set(['ftyp', 'moov', 'moof', 'mdat']);

/**
 * Incremental fMP4 parser for ingest.
 *
 * Error policy: everything it is fed either parses or throws a `ContainerError`
 * (`ingest.malformed_box`, `ingest.box_too_large`, `ingest.truncated`, `ingest.no_init`,
 * `ingest.mdat_without_moof`, `ingest.no_tracks`, `ingest.bad_sample_table`,
 * `ingest.timestamp_regression`); unexpected failures
 * are wrapped as `ingest.malformed_box`. After a throw the parser is poisoned: `push` and `end`
 * rethrow the same error; bytes pushed after `end()` poison it too. Only a non-`Uint8Array` argument
 * throws a `TypeError` (and poisons nothing).
 */
export class Fmp4StreamParser {
  readonly #maxBoxBytes: number;
  readonly #maxInitBytes: number;
  readonly #now: () => number;
  readonly #framer: BoxFramer;
  readonly #splitter = new TrackSplitter();
  readonly #repair = new DurationRepair();
  #frameRate = new FrameRateMeter(undefined);
  #fileStart = 0;
  /** `trex` defaults by track id of the latest moov; undefined before the first (no views of input kept). */
  #defaults: Map<number, SampleDefaults> | undefined;
  #outputOf = new Map<number, ParsedTrack>();
  #tracks: ParsedTrack[] = [];
  #pendingMoof: PendingMoof | undefined;
  /** Events the failing `push`/`end` completed before its error, for `flush`. */
  #completedBeforeError: ParserEvent[] = [];
  #error: ContainerError | undefined;
  #ended = false;

  /** Creates a parser; see `Fmp4ParserOptions` for the limits. */
  constructor(options: Fmp4ParserOptions = {}) {
    const maxBox = options.maxBoxBytes ?? DEFAULT_MAX_BOX_BYTES;
    if (!Number.isSafeInteger(maxBox) || maxBox < 8) throw argumentError('maxBoxBytes', 'an integer >= 8', maxBox);
    const maxInit = options.maxInitBytes ?? Math.min(DEFAULT_MAX_INIT_BYTES, maxBox);
    if (!Number.isSafeInteger(maxInit) || maxInit < 8) throw argumentError('maxInitBytes', 'an integer >= 8', maxInit);
    this.#maxBoxBytes = maxBox;
    this.#maxInitBytes = maxInit;
    this.#now = options.now ?? Date.now;
    this.#framer = new BoxFramer({
      keep: KEPT_BOXES,
      limitOf: (type) => (type === 'ftyp' || type === 'moov' ? this.#maxInitBytes : this.#maxBoxBytes),
      check: (header, position) => this.#checkOrder(header, position),
    });
  }

  /** Tracks of the latest init (with `frameRate` filled in once learned); empty before the first. */
  get tracks(): readonly ParsedTrack[] {
    return this.#tracks;
  }

  /** Bytes of the stream fully consumed so far. */
  get bytesConsumed(): number {
    return this.#framer.position;
  }

  /**
   * Starts this (unused) parser where `previous` left off, for a publisher that reconnects: it keeps
   * the previous init, track mapping and fragment counters (sequence, group and object ids run on)
   * but none of its buffered bytes, pending moof, held fragments (`flush` it first) or error. The
   * new stream's offsets start at 0.
   */
  continueFrom(previous: Fmp4StreamParser): void {
    if (!(previous instanceof Fmp4StreamParser)) throw argumentError('previous', 'an Fmp4StreamParser', previous);
    const fed = this.#framer.position + this.#framer.buffered;
    if (fed > 0 || this.#defaults !== undefined || this.#ended) {
      throw argumentError('this', 'a parser that has not been fed yet', `${fed} bytes fed`);
    }
    this.#defaults = previous.#defaults;
    this.#tracks = previous.#tracks;
    this.#outputOf = previous.#outputOf;
    this.#frameRate = previous.#frameRate.copy();
    this.#splitter.continueFrom(previous.#splitter);
  }

  /** Feeds the next chunk of the stream; returns the events it completes. */
  push(chunk: Uint8Array): ParserEvent[] {
    if (!(chunk instanceof Uint8Array)) throw argumentError('chunk', 'a Uint8Array', chunk);
    if (this.#error !== undefined) throw this.#error;
    if (this.#ended)
      this.#poison(new ContainerError('ingest.malformed_box', 'bytes pushed after end() of the stream'), []);
    if (chunk.length === 0) return [];
    return this.#guarded((events) => {
      const framer = this.#framer;
      framer.push(chunk);
      for (let box = framer.next(); box !== undefined; box = framer.next()) this.#handle(box, events);
      // Keep no view of the caller's buffer past this call.
      framer.detach();
    });
  }

  /** Ends the stream: completes a box that runs to the end; throws `ingest.truncated` if one is half received. */
  end(): ParserEvent[] {
    if (this.#error !== undefined) throw this.#error;
    if (this.#ended) return [];
    return this.#guarded((events) => {
      const last = this.#framer.end();
      if (last !== undefined) this.#handle(last, events);
      const pending = this.#pendingMoof;
      if (pending?.trafs.some((t) => t.samples.length > 0)) {
        throw new ContainerError(
          'ingest.truncated',
          `stream ended after the moof at ${pending.position}, before its mdat`,
        );
      }
      this.#repair.releaseAll(this.#sink(events));
      this.#frameRate.settle(FRAME_RATE_MIN_SAMPLES);
      this.#ended = true;
    });
  }

  /**
   * For a publisher that went away: returns what was complete but not yet returned. That is what the
   * failing `push` or `end` completed before its error (the error discards its return value), then
   * the fragments held for their durations (see the module doc), released with estimated ones (the
   * median of the track's recent sample durations). Never throws.
   */
  flush(): ParserEvent[] {
    const events = this.#completedBeforeError;
    this.#completedBeforeError = [];
    this.#repair.releaseAll(this.#sink(events));
    return events;
  }

  /** Runs `work` with a fresh event list and returns it; any error poisons the parser. */
  #guarded(work: (events: ParserEvent[]) => void): ParserEvent[] {
    const events: ParserEvent[] = [];
    try {
      work(events);
      return events;
    } catch (err) {
      this.#poison(asContainerError(err), events);
    }
  }

  /** Fails the parser for good with `error`; `completed` are the events `flush` still returns. */
  #poison(error: ContainerError, completed: ParserEvent[]): never {
    this.#error = error;
    this.#completedBeforeError = completed;
    throw error;
  }

  /** Box order, checked at each header: an mdat needs its moof, a moof needs an init and ends the previous one. */
  #checkOrder({ type }: BoxHeader, position: number): void {
    if (type === 'mdat' && this.#pendingMoof === undefined) {
      throw new ContainerError('ingest.mdat_without_moof', `mdat at stream offset ${position} has no moof before it`);
    }
    if (type === 'moof') {
      if (this.#defaults === undefined) {
        throw new ContainerError('ingest.no_init', `moof at stream offset ${position} arrived before any moov`);
      }
      this.#dropPendingMoof('moof');
    }
  }

  /** A moof must be followed by its mdat before the next moof or moov (an empty moof may not). */
  #dropPendingMoof(next: string): void {
    const pending = this.#pendingMoof;
    if (pending === undefined) return;
    if (pending.trafs.some((t) => t.samples.length > 0)) {
      malformed(`moof at stream offset ${pending.position} is followed by a ${next} instead of its mdat`);
    }
    this.#pendingMoof = undefined;
  }

  #handle(box: FramedBox, events: ParserEvent[]): void {
    switch (box.type) {
      case 'ftyp':
        this.#fileStart = box.position;
        return;
      case 'moov':
        this.#onMoov(box, events);
        return;
      case 'moof': {
        const defaults = this.#defaults!;
        const trafs = parseMoof(box, {
          moofPosition: box.position,
          fileStart: this.#fileStart,
          defaults: (id) => defaults.get(id),
        });
        this.#pendingMoof = { position: box.position, trafs };
        return;
      }
      case 'mdat':
        this.#onMdat(box, events);
        return;
    }
  }

  #onMoov(box: FramedBox, events: ParserEvent[]): void {
    this.#dropPendingMoof('moov');
    const moov = parseMoov(box);
    requireTracks(moov);
    this.#repair.releaseAll(this.#sink(events));
    const video = moov.tracks.find((t) => t.info.kind === 'video');
    const audio = moov.tracks.find((t) => t.info.kind === 'audio');
    const tracks: ParsedTrack[] = [];
    const outputOf = new Map<number, ParsedTrack>();
    for (const [t, trackId] of [
      [video, VIDEO_TRACK],
      [audio, AUDIO_TRACK],
    ] as const) {
      if (t === undefined) continue;
      const parsed: ParsedTrack = { ...t.info, trackId, initSegment: singleTrackInit(moov, t) };
      tracks.push(parsed);
      outputOf.set(t.info.mp4TrackId, parsed);
    }
    this.#defaults = moov.defaults;
    this.#splitter.restartTimeline();
    this.#repair.reset();
    this.#tracks = tracks;
    this.#outputOf = outputOf;
    this.#frameRate = new FrameRateMeter(tracks.find((t) => t.trackId === VIDEO_TRACK));
    events.push({ type: 'init', tracks });
  }

  #onMdat(mdat: FramedBox, events: ParserEvent[]): void {
    const pending = this.#pendingMoof!;
    this.#pendingMoof = undefined;
    const repair = this.#repair;
    const sink = this.#sink(events);
    this.#splitter.split(pending, mdat, this.#outputOf, this.#now(), {
      reached: (trackId, decodeTime) => repair.advance(trackId, decodeTime, sink),
      cut: (draft) => repair.accept(draft, sink),
    });
  }

  /** Where completed fragments go: `events`, and the frame rate meter for video. */
  #sink(events: ParserEvent[]): FragmentSink {
    return (event) => {
      events.push(event);
      if (event.fragment.trackId === VIDEO_TRACK) this.#frameRate.add(event.samples);
    };
  }
}
