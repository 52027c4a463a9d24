/**
 * `TrackWindow`: the LL-HLS state of one (broadcast, track). It groups fragments into parts and
 * segments, keeps a sliding DVR window of them with every init version they use, measures bitrate,
 * and holds the waiters of blocking requests. Synchronous and transport-free; the bridge feeds it.
 */

import type { Fragment, FragmentMeta } from '../fragment/fragment.ts';

/** Which playlist a track feeds. */
export type TrackKind = 'video' | 'audio';

/** Timing shared by a source and its rungs: every playlist of one master advertises the same values. */
export interface GroupTiming {
  /** EXT-X-TARGETDURATION in whole seconds; never decreases. */
  readonly targetDurationS: number;
  /** PART-TARGET in seconds; never decreases. */
  readonly partTargetS: number;
  /** Records the duration of a completed segment. */
  observeSegment(durationS: number): void;
  /** Records the duration of a completed part. */
  observePart(durationS: number): void;
  /** Marks a change that may alter any playlist of the group. */
  touch(): void;
}

/** One init segment version of a track (`init-<version>.mp4`). */
export type InitVersion = {
  readonly version: number;
  readonly bytes: Uint8Array;
  readonly codec: string;
  readonly timescale: number;
};

/** A published part: consecutive fragments of one segment. */
export type HlsPart = {
  readonly msn: number;
  readonly index: number;
  readonly durationS: number;
  /** Starts with a keyframe (video) or an independent frame (audio). */
  readonly independent: boolean;
  /** The part bytes; a view into the segment bytes once the segment is complete. */
  bytes: Uint8Array;
};

/** A segment: complete, or the one being built (whose closed parts are already published). */
export type HlsSegment = {
  readonly msn: number;
  /** An EXT-X-DISCONTINUITY precedes this segment. */
  readonly discontinuity: boolean;
  /** Discontinuity Sequence Number of this segment (counts its own discontinuity). */
  readonly discontinuitySequence: number;
  readonly init: InitVersion;
  /** EXT-X-PROGRAM-DATE-TIME, ms since the epoch. */
  readonly programDateTimeMs: number;
  /** Presentation time of the first fragment, seconds (for boundary alignment across tracks). */
  readonly startTimeS: number;
  /** Start on the track's continuous timeline (sum of earlier segment durations), seconds. */
  readonly timelineS: number;
  /** Sum of the durations of its closed parts, seconds. */
  durationS: number;
  byteLength: number;
  readonly parts: HlsPart[];
  /** The segment bytes (concatenated parts), set when complete. */
  bytes: Uint8Array | undefined;
};

/** Where a track's numbering continues (a republished name never re-uses an immutable URL). */
export type TrackCursor = {
  readonly nextMsn: number;
  readonly discontinuitySequence: number;
  readonly nextInitVersion: number;
};

/** What a blocking wait ended with. */
export type WaitOutcome = 'ready' | 'timeout' | 'aborted' | 'closed';

/** State of a requested part. */
export type PartState = 'ready' | 'pending' | 'never';

/** The segments a playlist lists right now. */
export type Listing = {
  /** Complete segments inside the DVR window, oldest first. */
  readonly segments: readonly HlsSegment[];
  /** The segment being built, when it has at least one published part. */
  readonly open: HlsSegment | undefined;
  readonly mediaSequence: number;
  readonly discontinuitySequence: number;
  /** End of the listed media on the track timeline, seconds. */
  readonly endTimelineS: number;
};

/** Options of a track window. */
export type TrackWindowOptions = {
  kind: TrackKind;
  targetDurationMs: number;
  partTargetMs: number;
  dvrWindowMs: number;
  group: GroupTiming;
  /** The track whose segment boundaries this one follows (audio -> video, rung -> source). */
  leader?: () => TrackWindow | undefined;
  /** Numbering to continue from. */
  start?: TrackCursor;
  /** Wall clock, ms (PROGRAM-DATE-TIME when a fragment has no ingest time). */
  now?: () => number;
  /** Told about forced cuts and timestamp regressions. */
  onWarning?: (message: string, fields: Record<string, unknown>) => void;
};

/** Tolerance of time comparisons, seconds. */
const EPS_S = 0.001;
/** Segments are force-cut (without a keyframe) past this many target durations. */
const MAX_SEGMENT_TARGETS = 10;
/** A follower waits at most this many target durations for its leader's boundary. */
const FOLLOW_CAP_TARGETS = 2;
/** How many recent leader segments a boundary lookup scans. */
const LEADER_SCAN = 8;
/** Parts stay listed for segments ending within this many target durations of the end (RFC 8216bis 6.2.2). */
const PART_LIST_TARGETS = 3;
/** Segments stay downloadable this many target durations after they leave the playlist. */
const RETAIN_AFTER_REMOVAL_TARGETS = 2;
/** Below this fraction of the target, a segment is left out of the peak bitrate (first/last segments). */
const PEAK_MIN_FRACTION = 0.5;

type PartBuilder = {
  payloads: Uint8Array[];
  bytes: number;
  ticks: number;
  independent: boolean;
};

/**
 * A held request: released by a change that satisfies `check`, its timeout, its signal (it is the
 * abort listener itself) or disposal. One object per request, no closures: a wake-up releases
 * hundreds at once.
 */
class Waiter {
  readonly check: () => boolean;
  readonly #waiters: Set<Waiter>;
  readonly #signal: AbortSignal | undefined;
  #resolve: ((outcome: WaitOutcome) => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    waiters: Set<Waiter>,
    check: () => boolean,
    signal: AbortSignal | undefined,
    resolve: (outcome: WaitOutcome) => void,
  ) {
    this.#waiters = waiters;
    this.check = check;
    this.#signal = signal;
    this.#resolve = resolve;
  }

  /** Joins the waiter set and starts the timeout and the abort watch. */
  hold(timeoutMs: number): void {
    this.#waiters.add(this);
    this.#timer = setTimeout(expire, timeoutMs, this);
    this.#signal?.addEventListener('abort', this, { once: true });
  }

  /** The signal's abort listener. */
  handleEvent(): void {
    this.finish('aborted');
  }

  /** Settles the wait once; later calls do nothing. */
  finish(outcome: WaitOutcome): void {
    const resolve = this.#resolve;
    if (resolve === undefined) return;
    this.#resolve = undefined;
    this.#waiters.delete(this);
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this);
    resolve(outcome);
  }
}

function expire(waiter: Waiter): void {
  waiter.finish('timeout');
}

/** Concatenates byte arrays. */
export function concatBytes(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total ?? chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The LL-HLS window of one (broadcast, track). */
export class TrackWindow {
  readonly kind: TrackKind;
  readonly #targetS: number;
  readonly #partTargetS: number;
  readonly #dvrS: number;
  readonly #group: GroupTiming;
  readonly #leader: (() => TrackWindow | undefined) | undefined;
  readonly #now: () => number;
  readonly #warn: (message: string, fields: Record<string, unknown>) => void;
  /** Complete segments, oldest first (includes those kept briefly after leaving the playlist). */
  #segments: HlsSegment[] = [];
  #open: HlsSegment | undefined;
  #part: PartBuilder | undefined;
  /** Ticks of the closed parts of the open segment. */
  #segmentTicks = 0;
  #init: InitVersion | undefined;
  #inits: InitVersion[] = [];
  #nextMsn: number;
  #discSeq: number;
  #nextInitVersion: number;
  #pendingDiscontinuity = false;
  #hasHistory = false;
  #lastDts: number | undefined;
  /** Where the last fragment ended (dts + duration), to spot a jump forward. */
  #lastEndDts: number | undefined;
  #timelineEndS = 0;
  #ended = false;
  #disposed = false;
  #waiters = new Set<Waiter>();
  #version = 0;
  #fragments = 0;
  #dropped = 0;
  #gaps = 0;
  #forcedCuts = 0;

  /** A window with no media yet. */
  constructor(options: TrackWindowOptions) {
    this.kind = options.kind;
    this.#targetS = options.targetDurationMs / 1000;
    this.#partTargetS = options.partTargetMs / 1000;
    this.#dvrS = options.dvrWindowMs / 1000;
    this.#group = options.group;
    this.#leader = options.leader;
    this.#now = options.now ?? Date.now;
    this.#warn = options.onWarning ?? (() => {});
    this.#nextMsn = options.start?.nextMsn ?? 0;
    this.#discSeq = options.start?.discontinuitySequence ?? 0;
    this.#nextInitVersion = options.start?.nextInitVersion ?? 1;
  }

  /** True after `end()` (EXT-X-ENDLIST) until `resume()`. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bumps at every published change (part, segment, init, end). */
  get version(): number {
    return this.#version;
  }

  /** The init in effect for new media, or undefined before the first one. */
  get init(): InitVersion | undefined {
    return this.#init;
  }

  /** Fragments appended, dropped (no init yet, or no keyframe to start a segment), lag gaps, forced cuts. */
  get counters(): { fragments: number; dropped: number; gaps: number; forcedCuts: number } {
    return { fragments: this.#fragments, dropped: this.#dropped, gaps: this.#gaps, forcedCuts: this.#forcedCuts };
  }

  /** Held blocking requests. */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  /** Numbering a successor of this window continues from. */
  cursor(): TrackCursor {
    return {
      nextMsn: this.#nextMsn,
      discontinuitySequence: this.#discSeq + (this.#hasHistory ? 1 : 0),
      nextInitVersion: this.#nextInitVersion,
    };
  }

  /** Applies a new meta: a new init version when the bytes differ; a discontinuity once media was seen. */
  setMeta(meta: FragmentMeta): void {
    if (this.#disposed) return;
    if (this.#hasHistory) this.#breakTimeline();
    const initSegment = meta.initSegment;
    if (initSegment === undefined) {
      this.#init = undefined;
    } else if (
      this.#init === undefined ||
      this.#init.timescale !== meta.timescale ||
      !sameBytes(this.#init.bytes, initSegment)
    ) {
      this.#init = { version: this.#nextInitVersion, bytes: initSegment, codec: meta.codec, timescale: meta.timescale };
      this.#nextInitVersion += 1;
      this.#inits.push(this.#init);
      this.#pruneInits();
    }
    this.#changed();
  }

  /** Adds one fragment (one `moof`+`mdat`). */
  append(fragment: Fragment): void {
    if (this.#ended || this.#disposed) return;
    const init = this.#init;
    if (init === undefined) {
      this.#dropped += 1;
      return;
    }
    const ts = init.timescale;
    if (this.#lastDts !== undefined && fragment.dts < this.#lastDts) {
      this.#warn('timestamps went backwards: discontinuity', {
        kind: this.kind,
        dts: fragment.dts,
        last: this.#lastDts,
      });
      this.#breakTimeline();
    } else if (this.#lastEndDts !== undefined && fragment.dts - this.#lastEndDts > this.#partTargetS * ts) {
      // More than a part target of media is missing (a paused rung, skipped GOPs, a publisher that
      // jumped ahead): the playlist timeline would drift from the media, so start a new one.
      this.#warn('timestamps jumped forward: discontinuity', {
        kind: this.kind,
        dts: fragment.dts,
        expected: this.#lastEndDts,
      });
      this.#breakTimeline();
    }
    this.#lastDts = fragment.dts;
    this.#lastEndDts = fragment.dts + fragment.duration;
    const timeS = fragment.pts / ts;
    const durationS = fragment.duration / ts;
    const startsPicture = this.kind === 'audio' || fragment.flags.keyframe;
    let forced = false;
    if (this.#open !== undefined) {
      if (startsPicture && this.#shouldCut(timeS)) {
        this.#closeSegment();
      } else if (!startsPicture && this.#openDurationS() >= MAX_SEGMENT_TARGETS * this.#targetS) {
        this.#forcedCuts += 1;
        this.#warn('no keyframe for too long: segment cut without one', { kind: this.kind, msn: this.#open.msn });
        this.#closeSegment();
        forced = true;
      }
    }
    if (this.#open === undefined) {
      if (!startsPicture && !forced) {
        this.#dropped += 1;
        return;
      }
      this.#openSegment(fragment, timeS);
    }
    if (this.#part !== undefined && (this.#part.ticks + fragment.duration) / ts > this.#partTargetS + EPS_S) {
      this.#closePart();
    }
    if (this.#part === undefined) {
      const independent = this.kind === 'audio' ? fragment.flags.independent : fragment.flags.keyframe;
      this.#part = { payloads: [], bytes: 0, ticks: 0, independent };
    }
    const part = this.#part;
    part.payloads.push(fragment.payload);
    part.bytes += fragment.payload.byteLength;
    part.ticks += fragment.duration;
    this.#fragments += 1;
    // Publish the part now if the next fragment of the same length would not fit.
    const partS = part.ticks / ts;
    if (partS >= this.#partTargetS - EPS_S || partS + durationS > this.#partTargetS + EPS_S) this.#closePart();
  }

  /** The subscriber lost fragments: the part in progress ends here (the next one starts independent). */
  gap(): void {
    if (this.#disposed) return;
    this.#gaps += 1;
    this.#closePart();
  }

  /** Finishes the last segment and marks the playlist ended (EXT-X-ENDLIST). */
  end(): void {
    if (this.#ended || this.#disposed) return;
    if (this.#open !== undefined) this.#closeSegment();
    this.#ended = true;
    this.#changed();
  }

  /** The name is published again: the playlist goes on after a discontinuity. */
  resume(): void {
    if (!this.#ended || this.#disposed) return;
    this.#ended = false;
    if (this.#hasHistory) this.#pendingDiscontinuity = true;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
    this.#changed();
  }

  /** Frees the media and releases every waiter with `closed`. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#ended = true;
    this.#segments = [];
    this.#open = undefined;
    this.#part = undefined;
    this.#inits = [];
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.finish('closed');
  }

  /**
   * Resolves once `check()` holds (checked at every published change), or with `timeout`, `aborted`
   * (the signal fired) or `closed` (the window was disposed).
   */
  waitUntil(check: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (this.#disposed) return Promise.resolve('closed');
    if (check()) return Promise.resolve('ready');
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => new Waiter(this.#waiters, check, signal, resolve).hold(timeoutMs));
  }

  /** MSN of the last complete segment (one below the first MSN when there is none). */
  get lastCompleteMsn(): number {
    const last = this.#segments.at(-1);
    if (last !== undefined) return last.msn;
    return (this.#open?.msn ?? this.#nextMsn) - 1;
  }

  /** The last published part, or undefined before the first. */
  latestPart(): { msn: number; index: number } | undefined {
    const open = this.#open;
    if (open !== undefined && open.parts.length > 0) return { msn: open.msn, index: open.parts.length - 1 };
    const last = this.#segments.at(-1);
    return last === undefined ? undefined : { msn: last.msn, index: last.parts.length - 1 };
  }

  /**
   * True once the playlist holds segment `msn` (no `part`), or part `part` of segment `msn` or any
   * later part (RFC 8216bis 6.2.5.2; a part past a segment's last is part 0 of the next). Always
   * true once ended.
   */
  hasReached(msn: number, part?: number): boolean {
    if (this.#ended) return true;
    const lastComplete = this.lastCompleteMsn;
    if (part === undefined) return lastComplete >= msn;
    if (lastComplete > msn) return true;
    const open = this.#open;
    if (lastComplete === msn) {
      const seg = this.#segments.at(-1);
      if (seg !== undefined && part < seg.parts.length) return true;
      return open !== undefined && open.parts.length > 0;
    }
    return open !== undefined && open.msn === msn && open.parts.length > part;
  }

  /** A complete segment still retained, or undefined. */
  segment(msn: number): HlsSegment | undefined {
    const first = this.#segments[0];
    if (first === undefined) return undefined;
    return this.#segments[msn - first.msn];
  }

  /** A published part, or undefined. */
  part(msn: number, index: number): HlsPart | undefined {
    const open = this.#open;
    const seg = open !== undefined && open.msn === msn ? open : this.segment(msn);
    return seg?.parts[index];
  }

  /**
   * Whether part (`msn`, `index`) exists, may still appear (`pending`: it is at most `lookahead`
   * parts past the live edge) or never will.
   */
  partState(msn: number, index: number, lookahead: number): PartState {
    if (this.part(msn, index) !== undefined) return 'ready';
    if (this.#ended || this.#disposed) return 'never';
    const open = this.#open;
    if (open !== undefined) {
      if (msn === open.msn) return index <= open.parts.length + lookahead ? 'pending' : 'never';
      if (msn === open.msn + 1) return index <= lookahead ? 'pending' : 'never';
      return 'never';
    }
    return msn === this.#nextMsn && index <= lookahead ? 'pending' : 'never';
  }

  /** The init version `version` if a retained segment (or the current init) uses it. */
  initVersion(version: number): InitVersion | undefined {
    return this.#inits.find((i) => i.version === version);
  }

  /** Where the next part will appear (EXT-X-PRELOAD-HINT), or undefined once ended. */
  nextPartHint(): { msn: number; index: number } | undefined {
    if (this.#ended || this.#disposed || this.#init === undefined) return undefined;
    const open = this.#open;
    if (open === undefined) return { msn: this.#nextMsn, index: 0 };
    if (this.#part === undefined && this.#cutIsDue()) return { msn: open.msn + 1, index: 0 };
    return { msn: open.msn, index: open.parts.length };
  }

  /** The segments the playlist lists now: the DVR window (at least four target durations). */
  listing(): Listing {
    const open = this.#open !== undefined && this.#open.parts.length > 0 ? this.#open : undefined;
    const endS = open !== undefined ? open.timelineS + open.durationS : this.#timelineEndS;
    const windowS = Math.max(this.#dvrS, 4 * this.#group.targetDurationS);
    let start = 0;
    while (start < this.#segments.length - 1 && endS - this.#segments[start]!.timelineS > windowS + EPS_S) start += 1;
    const segments = this.#segments.slice(start);
    const first = segments[0] ?? open;
    const mediaSequence = first?.msn ?? this.#nextMsn;
    const discontinuitySequence =
      first === undefined ? this.#discSeq : first.discontinuitySequence - (first.discontinuity ? 1 : 0);
    return { segments, open, mediaSequence, discontinuitySequence, endTimelineS: endS };
  }

  /** Whether a listed segment's parts are still listed (it ends within three target durations of the end). */
  listsParts(segment: HlsSegment, endTimelineS: number): boolean {
    const fromEndS = endTimelineS - (segment.timelineS + segment.durationS);
    return fromEndS < PART_LIST_TARGETS * this.#group.targetDurationS - EPS_S;
  }

  /**
   * Peak and average bitrate in bits/s over the listed complete segments (the peak ignores short
   * first/last segments); before the first complete segment, an estimate from the parts so far.
   */
  bitrate(): { peakBps: number; averageBps: number; estimated: boolean } {
    const { segments } = this.listing();
    if (segments.length === 0) {
      const open = this.#open;
      if (open === undefined || open.durationS <= 0) return { peakBps: 0, averageBps: 0, estimated: true };
      const bps = (open.byteLength * 8) / open.durationS;
      return { peakBps: bps, averageBps: bps, estimated: true };
    }
    let bytes = 0;
    let seconds = 0;
    let peak = 0;
    let peakAny = 0;
    for (const seg of segments) {
      bytes += seg.byteLength;
      seconds += seg.durationS;
      if (seg.durationS <= 0) continue;
      const bps = (seg.byteLength * 8) / seg.durationS;
      peakAny = Math.max(peakAny, bps);
      if (seg.durationS >= PEAK_MIN_FRACTION * this.#targetS) peak = Math.max(peak, bps);
    }
    const averageBps = seconds > 0 ? (bytes * 8) / seconds : 0;
    return { peakBps: peak > 0 ? peak : peakAny, averageBps, estimated: false };
  }

  /**
   * MSN and discontinuity sequence of the segment holding presentation time `timeS` (or of the
   * oldest segment of the current timeline when `timeS` is earlier), for aligning a follower.
   */
  locate(timeS: number): { msn: number; discontinuitySequence: number } | undefined {
    let found: HlsSegment | undefined;
    for (const seg of this.#recent(Number.POSITIVE_INFINITY)) {
      found = seg;
      if (seg.startTimeS <= timeS + EPS_S || seg.discontinuity) break;
    }
    return found === undefined ? undefined : { msn: found.msn, discontinuitySequence: found.discontinuitySequence };
  }

  /** True when a segment of the current timeline starts in (`afterS`, `untilS`]. */
  hasBoundary(afterS: number, untilS: number): boolean {
    for (const seg of this.#recent(LEADER_SCAN)) {
      if (seg.startTimeS <= afterS) return false;
      if (seg.discontinuity) return false;
      if (seg.startTimeS <= untilS) return true;
    }
    return false;
  }

  /** Whether this window has ever opened a segment. */
  get hasMedia(): boolean {
    return this.#hasHistory;
  }

  /** The open segment then up to `limit` recent complete ones, newest first. */
  *#recent(limit: number): Generator<HlsSegment> {
    if (this.#open !== undefined) yield this.#open;
    for (let i = this.#segments.length - 1, n = 0; i >= 0 && n < limit; i--, n++) yield this.#segments[i]!;
  }

  #activeLeader(): TrackWindow | undefined {
    const leader = this.#leader?.();
    if (leader === undefined || leader === this || leader.ended || leader.#disposed) return undefined;
    return leader;
  }

  #capS(): number {
    return FOLLOW_CAP_TARGETS * Math.max(this.#targetS, this.#group.targetDurationS);
  }

  /** Decides whether a fragment that may start a segment (keyframe, or any audio) at `timeS` cuts. */
  #shouldCut(timeS: number): boolean {
    const open = this.#open!;
    const segS = this.#openDurationS();
    const leader = this.#activeLeader();
    if (leader === undefined) return segS >= this.#targetS - EPS_S;
    // Cut at the leader's boundary once it is known; a leader that lags (or stalls) is waited for, within a cap.
    return leader.hasBoundary(open.startTimeS + EPS_S, timeS + EPS_S) || segS >= this.#capS();
  }

  /** Whether the next segment-starting fragment is expected to cut (for the preload hint). */
  #cutIsDue(): boolean {
    const open = this.#open!;
    const segS = this.#openDurationS();
    const leader = this.#activeLeader();
    if (leader === undefined) return segS >= this.#targetS - EPS_S;
    return leader.hasBoundary(open.startTimeS + EPS_S, open.startTimeS + segS + EPS_S);
  }

  #openDurationS(): number {
    const open = this.#open;
    if (open === undefined) return 0;
    const partS = this.#part === undefined || this.#init === undefined ? 0 : this.#part.ticks / this.#init.timescale;
    return open.durationS + partS;
  }

  #openSegment(fragment: Fragment, timeS: number): void {
    const init = this.#init!;
    if (!this.#hasHistory) {
      // A follower that starts late takes its leader's numbering, so MSNs line up across playlists.
      const at = this.#leader?.()?.locate(timeS);
      if (at !== undefined && at.msn >= this.#nextMsn && at.discontinuitySequence >= this.#discSeq) {
        this.#nextMsn = at.msn;
        this.#discSeq = at.discontinuitySequence;
      }
    }
    const discontinuity = this.#pendingDiscontinuity && this.#hasHistory;
    if (discontinuity) this.#discSeq += 1;
    const previous = this.#segments.at(-1);
    let pdt = fragment.ingestTimeMs;
    if (!(pdt > 0)) {
      pdt =
        previous !== undefined && !discontinuity ? previous.programDateTimeMs + previous.durationS * 1000 : this.#now();
    }
    this.#open = {
      msn: this.#nextMsn,
      discontinuity,
      discontinuitySequence: this.#discSeq,
      init,
      programDateTimeMs: pdt,
      startTimeS: timeS,
      timelineS: this.#timelineEndS,
      durationS: 0,
      byteLength: 0,
      parts: [],
      bytes: undefined,
    };
    this.#nextMsn += 1;
    this.#segmentTicks = 0;
    this.#pendingDiscontinuity = false;
    this.#hasHistory = true;
  }

  #closePart(): void {
    const builder = this.#part;
    this.#part = undefined;
    const open = this.#open;
    if (builder === undefined || open === undefined || builder.payloads.length === 0) return;
    const durationS = builder.ticks / open.init.timescale;
    open.parts.push({
      msn: open.msn,
      index: open.parts.length,
      durationS,
      independent: builder.independent,
      bytes: concatBytes(builder.payloads, builder.bytes),
    });
    this.#segmentTicks += builder.ticks;
    open.durationS = this.#segmentTicks / open.init.timescale;
    open.byteLength += builder.bytes;
    this.#group.observePart(durationS);
    this.#changed();
  }

  #closeSegment(): void {
    this.#closePart();
    const seg = this.#open;
    this.#open = undefined;
    if (seg === undefined || seg.parts.length === 0) return;
    const bytes = concatBytes(
      seg.parts.map((p) => p.bytes),
      seg.byteLength,
    );
    // The parts become views of the segment bytes: one copy of the media is kept.
    let offset = 0;
    for (const part of seg.parts) {
      const length = part.bytes.byteLength;
      part.bytes = bytes.subarray(offset, offset + length);
      offset += length;
    }
    seg.bytes = bytes;
    this.#segments.push(seg);
    this.#timelineEndS = seg.timelineS + seg.durationS;
    this.#group.observeSegment(seg.durationS);
    this.#trim();
    this.#changed();
  }

  /** Closes the media so far; the next segment carries EXT-X-DISCONTINUITY. */
  #breakTimeline(): void {
    if (this.#open !== undefined) this.#closeSegment();
    this.#pendingDiscontinuity = true;
    this.#lastDts = undefined;
    this.#lastEndDts = undefined;
  }

  /** Frees segments that left the playlist more than a couple of target durations ago. */
  #trim(): void {
    const td = this.#group.targetDurationS;
    const keepS = Math.max(this.#dvrS, 4 * td) + RETAIN_AFTER_REMOVAL_TARGETS * td;
    let drop = 0;
    while (drop < this.#segments.length - 1 && this.#timelineEndS - this.#segments[drop]!.timelineS > keepS + EPS_S) {
      drop += 1;
    }
    if (drop > 0) {
      this.#segments.splice(0, drop);
      this.#pruneInits();
    }
  }

  #pruneInits(): void {
    const used = new Set<InitVersion>();
    for (const seg of this.#segments) used.add(seg.init);
    if (this.#open !== undefined) used.add(this.#open.init);
    if (this.#init !== undefined) used.add(this.#init);
    this.#inits = this.#inits.filter((i) => used.has(i));
  }

  #changed(): void {
    this.#version += 1;
    this.#group.touch();
    if (this.#waiters.size === 0) return;
    for (const waiter of this.#waiters) {
      if (waiter.check()) waiter.finish('ready');
    }
  }
}
