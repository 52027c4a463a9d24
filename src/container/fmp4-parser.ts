/**
 * `Fmp4StreamParser`: turns an fMP4 byte stream, cut into chunks anyhow, into init and fragment
 * events. Multi-track `moof`s are split into one single-track `moof`+`mdat` per track, matching
 * the single-track init segment reported for that track (`0.mp4` video, `1.mp4` audio).
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
import { AUDIO_TRACK, createFragment, type Fragment, FragmentFlags, VIDEO_TRACK } from '../fragment/fragment.ts';
import {
  asContainerError,
  type Box,
  type BoxHeader,
  isPrintableFourcc,
  MAX_BOX_HEADER_BYTES,
  malformed,
  printable,
  readBoxHeader,
} from './boxes.ts';
import { allocateFragment } from './cmaf-writer.ts';
import { checkSampleBudget, parseMoof, SAMPLE_IS_NON_SYNC, type SampleDefaults, type TrafSamples } from './moof.ts';
import { parseMoov, requireTracks, roundRate, singleTrackInit, type TrackInfo } from './moov.ts';

/** Options of a parser. */
export type Fmp4ParserOptions = {
  /** Largest `moof`, `mdat` or skipped box in bytes (default 16 MiB). */
  maxBoxBytes?: number;
  /** Largest `ftyp` or `moov` in bytes (default 4 MiB, at most `maxBoxBytes`). */
  maxInitBytes?: number;
  /** Wall clock in ms for `ingestTimeMs` (default `Date.now`). */
  now?: () => number;
};

/** Output track id: `0.mp4` (video) or `1.mp4` (audio). */
export type OutputTrackId = typeof VIDEO_TRACK | typeof AUDIO_TRACK;

/**
 * A track of the stream as published: source track info plus its output id and single-track init.
 * When the init does not give the video frame rate (ffmpeg's `empty_moov` does not), `frameRate`
 * is undefined in the `init` event and the parser fills it in on that same object from the median
 * duration of the first 8 video samples (usually the first fragment).
 */
export type ParsedTrack = TrackInfo & {
  trackId: OutputTrackId;
  /** Single-track CMAF init: `ftyp` + `moov` with only this `trak` (as track_ID 1) and its `trex`. */
  initSegment: Uint8Array;
};

/** One sample of an emitted fragment. `offset`/`size` locate its bytes in `fragment.payload`. */
export type SampleInfo = {
  dts: number;
  pts: number;
  duration: number;
  keyframe: boolean;
  offset: number;
  size: number;
};

/** What `push` and `end` report, in stream order. */
export type ParserEvent =
  /** A complete `moov` (the first one, or a later one: restart or format change). */
  | { type: 'init'; tracks: ParsedTrack[] }
  /** One track's part of one `moof`+`mdat`, rewritten as a single-track fragment. */
  | { type: 'fragment'; fragment: Fragment; samples: SampleInfo[] };

/** Default `maxBoxBytes`. */
export const DEFAULT_MAX_BOX_BYTES = 16 * 1024 * 1024;
/** Default `maxInitBytes`. */
export const DEFAULT_MAX_INIT_BYTES = 4 * 1024 * 1024;

/** Video samples whose median duration gives the frame rate when the init does not. */
const FRAME_RATE_SAMPLES = 8;

type OpenBox = BoxHeader & { position: number };

type PendingMoof = { position: number; trafs: TrafSamples[] };

/**
 * A fragment that ends with samples of zero duration: held until the track's next decode time says
 * how long they last (a one-fragment delay, only for such streams).
 */
type HeldFragment = {
  fields: Omit<Fragment, 'duration'>;
  samples: SampleInfo[];
  /** Where the payload's `trun` entries start and how long each is (duration first). */
  entriesOffset: number;
  entrySize: number;
};

/** Positive sample durations remembered per track, to estimate one that never gets a next decode time. */
const RECENT_DURATIONS = 8;

/** Per output track counters; they run on across inits so ids stay monotonic for a parser's life. */
type OutputState = {
  sequence: number;
  groupId: number;
  objectId: number;
  fragments: number;
};

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
  #chunks: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  /** Stream offset of the first buffered byte. */
  #position = 0;
  #box: OpenBox | undefined;
  #skip = 0;
  #fileStart = 0;
  /** `trex` defaults by track id of the latest moov; undefined before the first (no views of input kept). */
  #defaults: Map<number, SampleDefaults> | undefined;
  #outputOf = new Map<number, ParsedTrack>();
  #tracks: ParsedTrack[] = [];
  #pendingMoof: PendingMoof | undefined;
  #states = new Map<OutputTrackId, OutputState>();
  #frameRateDurations: number[] | undefined;
  /**
   * Decode time of the last sample per output track since the latest moov on this parser. Not
   * carried over by `continueFrom`: a reconnecting publisher may restart its clock (the HLS layer
   * turns that into a discontinuity); within one connection and one init, time only moves forward.
   */
  #lastDts = new Map<OutputTrackId, number>();
  #held = new Map<OutputTrackId, HeldFragment>();
  #recentDurations = new Map<OutputTrackId, number[]>();
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
  }

  /** Tracks of the latest init (with `frameRate` filled in once learned); empty before the first. */
  get tracks(): readonly ParsedTrack[] {
    return this.#tracks;
  }

  /** Bytes of the stream fully consumed so far. */
  get bytesConsumed(): number {
    return this.#position;
  }

  /**
   * Starts this (unused) parser where `previous` left off, for a publisher that reconnects: it keeps
   * the previous init, track mapping and fragment counters (sequence, group and object ids run on)
   * but none of its buffered bytes, pending moof, held fragments (`flush` it first) or error. The
   * new stream's offsets start at 0.
   */
  continueFrom(previous: Fmp4StreamParser): void {
    if (!(previous instanceof Fmp4StreamParser)) throw argumentError('previous', 'an Fmp4StreamParser', previous);
    if (this.#position > 0 || this.#buffered > 0 || this.#defaults !== undefined || this.#ended) {
      throw argumentError('this', 'a parser that has not been fed yet', `${this.#position + this.#buffered} bytes fed`);
    }
    this.#defaults = previous.#defaults;
    this.#tracks = previous.#tracks;
    this.#outputOf = previous.#outputOf;
    this.#frameRateDurations = previous.#frameRateDurations?.slice();
    this.#states = new Map([...previous.#states].map(([id, state]) => [id, { ...state }]));
  }

  /** Feeds the next chunk of the stream; returns the events it completes. */
  push(chunk: Uint8Array): ParserEvent[] {
    if (!(chunk instanceof Uint8Array)) throw argumentError('chunk', 'a Uint8Array', chunk);
    if (this.#error !== undefined) throw this.#error;
    if (this.#ended) {
      this.#error = new ContainerError('ingest.malformed_box', 'bytes pushed after end() of the stream');
      throw this.#error;
    }
    const events: ParserEvent[] = [];
    if (chunk.length === 0) return events;
    try {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      this.#process(events);
      // Keep no view of the caller's buffer past this call.
      const last = this.#chunks.length - 1;
      if (last >= this.#head) {
        this.#chunks[last] = this.#chunks[last]!.slice();
      }
      return events;
    } catch (err) {
      this.#error = asContainerError(err);
      this.#completedBeforeError = events;
      throw this.#error;
    }
  }

  /** Ends the stream: completes a box that runs to the end; throws `ingest.truncated` if one is half received. */
  end(): ParserEvent[] {
    if (this.#error !== undefined) throw this.#error;
    const events: ParserEvent[] = [];
    if (this.#ended) return events;
    try {
      const open = this.#box;
      if (open !== undefined) {
        if (open.size !== undefined) {
          throw new ContainerError(
            'ingest.truncated',
            `stream ended inside '${open.type}' at ${open.position}: ${this.#buffered} of ${open.size} bytes`,
          );
        }
        this.#box = undefined;
        this.#handle(open, this.#take(this.#buffered), events);
      } else if (this.#skip > 0 && this.#skip !== Number.POSITIVE_INFINITY) {
        throw new ContainerError(
          'ingest.truncated',
          `stream ended ${this.#skip} bytes before the end of a skipped box`,
        );
      } else if (this.#buffered > 0 && this.#skip === 0) {
        throw new ContainerError('ingest.truncated', `stream ended inside a box header (${this.#buffered} bytes)`);
      }
      const pending = this.#pendingMoof;
      if (pending?.trafs.some((t) => t.samples.length > 0)) {
        throw new ContainerError(
          'ingest.truncated',
          `stream ended after the moof at ${pending.position}, before its mdat`,
        );
      }
      this.#releaseAll(events);
      this.#learnFrameRate(2);
      this.#ended = true;
      this.#chunks = [];
      this.#head = 0;
      this.#buffered = 0;
      return events;
    } catch (err) {
      this.#error = asContainerError(err);
      this.#completedBeforeError = events;
      throw this.#error;
    }
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
    this.#releaseAll(events);
    return events;
  }

  #process(events: ParserEvent[]): void {
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, this.#buffered);
        this.#drop(n);
        this.#skip -= n;
        if (this.#skip > 0) return;
      }
      const open = this.#box;
      if (open === undefined) {
        if (this.#buffered < 8) return;
        const head = this.#peek(Math.min(this.#buffered, MAX_BOX_HEADER_BYTES));
        const header = readBoxHeader(head, 0, head.length);
        if (header === undefined) return;
        this.#open(header);
        continue;
      }
      if (open.size === undefined) {
        if (this.#buffered > this.#limit(open.type)) this.#tooLarge(open.type, this.#buffered);
        return;
      }
      if (this.#buffered < open.size) return;
      const bytes = this.#take(open.size);
      this.#box = undefined;
      this.#handle(open, bytes, events);
    }
  }

  #limit(type: string): number {
    return type === 'ftyp' || type === 'moov' ? this.#maxInitBytes : this.#maxBoxBytes;
  }

  #tooLarge(type: string, size: number): never {
    throw new ContainerError(
      'ingest.box_too_large',
      `'${type}' box of ${size} bytes exceeds the ${this.#limit(type)}-byte limit`,
      { details: { type, size, limit: this.#limit(type) } },
    );
  }

  /** Validates a box header as soon as it is complete; errors here need no body. */
  #open(header: BoxHeader): void {
    const { type, size } = header;
    if (!isPrintableFourcc(type)) {
      malformed(`bytes at stream offset ${this.#position} do not start a box (type ${printable(type)})`, {
        position: this.#position,
      });
    }
    if (type === 'mdat' && this.#pendingMoof === undefined) {
      throw new ContainerError(
        'ingest.mdat_without_moof',
        `mdat at stream offset ${this.#position} has no moof before it`,
      );
    }
    if (type === 'moof') {
      if (this.#defaults === undefined) {
        throw new ContainerError('ingest.no_init', `moof at stream offset ${this.#position} arrived before any moov`);
      }
      this.#dropPendingMoof('moof');
    }
    if (size !== undefined && size > this.#limit(type)) this.#tooLarge(type, size);
    if (type === 'ftyp' || type === 'moov' || type === 'moof' || type === 'mdat') {
      this.#box = { ...header, position: this.#position };
    } else {
      this.#skip = size ?? Number.POSITIVE_INFINITY;
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

  #handle(open: OpenBox, bytes: Uint8Array, events: ParserEvent[]): void {
    const b: Box = {
      type: open.type,
      offset: 0,
      headerSize: open.headerSize,
      bytes,
      body: bytes.subarray(open.headerSize),
    };
    switch (open.type) {
      case 'ftyp':
        this.#fileStart = open.position;
        return;
      case 'moov':
        this.#onMoov(b, events);
        return;
      case 'moof': {
        const defaults = this.#defaults!;
        const trafs = parseMoof(b, {
          moofPosition: open.position,
          fileStart: this.#fileStart,
          defaults: (id) => defaults.get(id),
        });
        this.#pendingMoof = { position: open.position, trafs };
        return;
      }
      case 'mdat':
        this.#onMdat(open.position, b, events);
        return;
    }
  }

  #onMoov(b: Box, events: ParserEvent[]): void {
    this.#dropPendingMoof('moov');
    const moov = parseMoov(b);
    requireTracks(moov);
    this.#releaseAll(events);
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
    this.#lastDts.clear();
    this.#recentDurations.clear();
    this.#tracks = tracks;
    this.#outputOf = outputOf;
    this.#frameRateDurations = video !== undefined && video.info.frameRate === undefined ? [] : undefined;
    events.push({ type: 'init', tracks });
  }

  #onMdat(mdatPosition: number, mdat: Box, events: ParserEvent[]): void {
    const pending = this.#pendingMoof!;
    this.#pendingMoof = undefined;
    const ingestTimeMs = this.#now();
    const dataStart = mdatPosition + mdat.headerSize;
    const dataEnd = mdatPosition + mdat.bytes.length;
    checkSampleBudget(pending.trafs, { moofPosition: pending.position, dataStart, dataEnd });
    for (const traf of pending.trafs) {
      const track = this.#outputOf.get(traf.mp4TrackId);
      if (track === undefined || traf.samples.length === 0) continue;
      for (const s of traf.samples) {
        if (s.position < dataStart || s.position + s.size > dataEnd) {
          throw new ContainerError(
            'ingest.bad_sample_table',
            `track ${traf.mp4TrackId}: a sample at stream offset ${s.position} (${s.size} bytes) lies outside ` +
              `the mdat [${dataStart}, ${dataEnd})`,
            { details: { position: s.position, size: s.size, mdatStart: dataStart, mdatEnd: dataEnd } },
          );
        }
      }
      this.#checkTimeline(track, traf, pending.position);
      const held = this.#held.get(track.trackId);
      if (held !== undefined) this.#release(held, traf.baseMediaDecodeTime, events);
      const state = this.#state(track.trackId);
      state.sequence++;
      const { payload, dataOffset, entriesOffset, entrySize } = allocateFragment(
        state.sequence,
        traf.baseMediaDecodeTime,
        traf.samples,
        traf.sampleDescriptionIndex,
      );
      const samples: SampleInfo[] = [];
      let at = dataOffset;
      let dts = traf.baseMediaDecodeTime;
      let discardable = true;
      for (const s of traf.samples) {
        const from = s.position - mdatPosition;
        payload.set(mdat.bytes.subarray(from, from + s.size), at);
        samples.push({
          dts,
          pts: dts + s.compositionOffset,
          duration: s.duration,
          keyframe: (s.flags & SAMPLE_IS_NON_SYNC) === 0,
          offset: at,
          size: s.size,
        });
        if (((s.flags >>> 22) & 3) !== 2) discardable = false; // sample_is_depended_on == 2: none depend on it
        at += s.size;
        dts += s.duration;
      }
      const first = samples[0]!;
      let flags: FragmentFlags;
      let groupId: number;
      let objectId: number;
      if (track.kind === 'audio') {
        flags = FragmentFlags.AUDIO;
        groupId = state.fragments;
        objectId = 0;
      } else {
        if (first.keyframe) {
          state.groupId++;
          state.objectId = 0;
          flags = FragmentFlags.KEYFRAME;
        } else {
          if (state.groupId < 0) state.groupId = 0;
          else state.objectId++;
          flags = discardable ? FragmentFlags.DELTA_DISCARDABLE : FragmentFlags.DELTA;
        }
        groupId = state.groupId;
        objectId = state.objectId;
      }
      state.fragments++;
      this.#lastDts.set(track.trackId, samples.at(-1)!.dts);
      const fields: Omit<Fragment, 'duration'> = {
        trackId: track.trackId,
        groupId,
        objectId,
        priority: track.kind === 'audio' || first.keyframe ? 0 : 1,
        dts: first.dts,
        pts: first.pts,
        flags,
        payload,
        ingestTimeMs,
      };
      const pendingFragment: HeldFragment = { fields, samples, entriesOffset, entrySize };
      if (samples.at(-1)!.duration === 0) this.#held.set(track.trackId, pendingFragment);
      else this.#emit(pendingFragment, events);
    }
  }

  /**
   * Releases a held fragment. Its trailing zero-duration samples share the time until `nextDts`
   * (the track's next decode time) evenly; without one, each gets the median of the track's
   * recent durations. The durations are written into the payload's `trun`.
   */
  #release(held: HeldFragment, nextDts: number | undefined, events: ParserEvent[]): void {
    this.#held.delete(held.fields.trackId as OutputTrackId);
    const { samples } = held;
    let run = samples.length;
    while (run > 0 && samples[run - 1]!.duration === 0) run--;
    const count = samples.length - run;
    const start = samples[run]!.dts;
    let total: number;
    if (nextDts === undefined) {
      const recent = [...(this.#recentDurations.get(held.fields.trackId as OutputTrackId) ?? [])].sort((a, b) => a - b);
      total = (recent[Math.floor(recent.length / 2)] ?? 0) * count;
    } else {
      total = Math.max(0, Math.min(nextDts - start, 0xffff_ffff));
    }
    const view = new DataView(held.fields.payload.buffer, held.fields.payload.byteOffset);
    let dts = start;
    for (let i = run; i < samples.length; i++) {
      const s = samples[i]!;
      // Even shares; the rounding remainder goes to the last sample.
      const duration = i === samples.length - 1 ? start + total - dts : Math.floor(total / count);
      s.pts += dts - s.dts;
      s.dts = dts;
      s.duration = duration;
      view.setUint32(held.entriesOffset + i * held.entrySize, duration);
      dts += duration;
    }
    this.#emit(held, events);
  }

  /** Releases every held fragment (no next decode time is coming on this parser). */
  #releaseAll(events: ParserEvent[]): void {
    for (const held of [...this.#held.values()]) this.#release(held, undefined, events);
  }

  #emit({ fields, samples }: HeldFragment, events: ParserEvent[]): void {
    const trackId = fields.trackId as OutputTrackId;
    let duration = 0;
    let recent = this.#recentDurations.get(trackId);
    if (recent === undefined) {
      recent = [];
      this.#recentDurations.set(trackId, recent);
    }
    for (const s of samples) {
      duration += s.duration;
      if (s.duration > 0) recent.push(s.duration);
    }
    if (recent.length > RECENT_DURATIONS) recent.splice(0, recent.length - RECENT_DURATIONS);
    events.push({ type: 'fragment', fragment: createFragment({ ...fields, duration }), samples });
    if (trackId === VIDEO_TRACK && this.#frameRateDurations !== undefined) {
      for (const s of samples) this.#frameRateDurations.push(s.duration);
      this.#learnFrameRate(FRAME_RATE_SAMPLES);
    }
  }

  /**
   * Decode times never go backwards within one init: a fragment may not start before the previous
   * fragment's last sample (the same time is tolerated: ffmpeg repeats it around zero-duration
   * samples). A publisher restarting its clock sends a new moov first.
   */
  #checkTimeline(track: ParsedTrack, traf: TrafSamples, moofPosition: number): void {
    const last = this.#lastDts.get(track.trackId);
    if (last !== undefined && traf.baseMediaDecodeTime < last) {
      throw new ContainerError(
        'ingest.timestamp_regression',
        `${track.kind} track ${traf.mp4TrackId}: the moof at stream offset ${moofPosition} starts at decode time ` +
          `${traf.baseMediaDecodeTime} (timescale ${track.timescale}), before the previous sample at ${last}; ` +
          'send a new init segment (moov) to restart the timeline',
        { details: { track: traf.mp4TrackId, decodeTime: traf.baseMediaDecodeTime, previous: last, moofPosition } },
      );
    }
  }

  /** Sets the video track's frame rate from the median sample duration once `minSamples` are known. */
  #learnFrameRate(minSamples: number): void {
    const durations = this.#frameRateDurations;
    if (durations === undefined || durations.length < minSamples) return;
    this.#frameRateDurations = undefined;
    const sorted = [...durations].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const video = this.#tracks.find((t) => t.trackId === VIDEO_TRACK);
    if (median > 0 && video !== undefined) video.frameRate = roundRate(video.timescale / median);
  }

  #state(trackId: OutputTrackId): OutputState {
    let state = this.#states.get(trackId);
    if (state === undefined) {
      state = { sequence: 0, groupId: -1, objectId: 0, fragments: 0 };
      this.#states.set(trackId, state);
    }
    return state;
  }

  // ---- chunk queue ----

  /** Copies the first `n` (<= buffered) bytes without consuming them. */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[this.#head]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (let i = this.#head; at < n; i++) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
    }
    return out;
  }

  /** Consumes `n` (<= buffered) bytes; a view when they lie in one chunk, else a joined copy. */
  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[this.#head]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      this.#consume(n);
      return out;
    }
    out = new Uint8Array(n);
    let at = 0;
    for (let i = this.#head; at < n; i++) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
    }
    this.#consume(n);
    return out;
  }

  /** Consumes `n` (<= buffered) bytes without reading them. */
  #drop(n: number): void {
    this.#consume(n);
  }

  #consume(n: number): void {
    this.#buffered -= n;
    this.#position += n;
    let left = n;
    while (left > 0) {
      const c = this.#chunks[this.#head]!;
      if (c.length <= left) {
        left -= c.length;
        this.#head++;
      } else {
        this.#chunks[this.#head] = c.subarray(left);
        left = 0;
      }
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
