/**
 * `BroadcastTable`: the broadcasts the bridge serves. It drains each registry entry's subscription
 * into its track's window, indexes rungs under their source, keeps the timing group shared by a
 * source and its rungs, and frees an ended broadcast after its linger time (remembering where its
 * numbering continues). A track its producer withdraws (`FragmentBroadcaster.withdraw`: a bypassed
 * rung) is dropped at once: nothing of it is served, and its broadcast goes with its last track.
 */

import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { BroadcastOrigin, FragmentBroadcaster, FragmentSubscription } from '../fragment/broadcaster.ts';
import { AUDIO_TRACK, VIDEO_TRACK } from '../fragment/fragment.ts';
import { type GroupTiming, mediaSlabs, type TrackCursor, type TrackKind } from './track-media.ts';
import { TrackWindow } from './window.ts';

/** One served track, as the serving side reads it. */
export type HlsTrack = {
  readonly kind: TrackKind;
  readonly window: TrackWindow;
};

/** One served broadcast, as the serving side reads it. */
export type HlsBroadcast = {
  readonly name: string;
  readonly origin: BroadcastOrigin;
  readonly tracks: ReadonlyMap<TrackKind, HlsTrack>;
};

/** Options of a `BroadcastTable` (validated by the bridge). */
export type BroadcastTableOptions = {
  targetDurationMs: number;
  partTargetMs: number;
  dvrWindowMs: number;
  lingerMs: number;
  now: () => number;
  logger: Logger;
  /**
   * Whether the rung `rendition` of `source` is paused (by the ladder's overload policy): only a
   * paused rung's playlist follows its source with GAP segments. A rung that is merely behind
   * (a busy machine) keeps its own media, however late.
   */
  isRungPaused: (source: string, rendition: string) => boolean;
};

type TrackState = HlsTrack & {
  readonly subs: Set<FragmentSubscription>;
  /** Id of the newest subscription; older ones drain first, then hand over. */
  session: number;
  /** Drains of this track, chained in creation order. */
  chain: Promise<void>;
};

type BroadcastState = {
  readonly name: string;
  origin: BroadcastOrigin;
  readonly tracks: Map<TrackKind, TrackState>;
  linger: ReturnType<typeof setTimeout> | undefined;
};

/** Timing shared by a source and its rungs; `version` bumps at every change to any of their playlists. */
export class Group implements GroupTiming {
  /** EXT-X-TARGETDURATION, whole seconds. */
  targetDurationS: number;
  /** PART-TARGET, seconds. */
  partTargetS: number;
  /** Bumps at every `touch()`. */
  version = 0;

  /** Timing starting from the configured targets. */
  constructor(targetDurationMs: number, partTargetMs: number) {
    this.targetDurationS = Math.max(1, Math.ceil(targetDurationMs / 1000 - 0.001));
    this.partTargetS = partTargetMs / 1000;
  }

  /** Raises the target duration to the rounded segment duration when it exceeds it. */
  observeSegment(durationS: number): void {
    // RFC 8216 4.3.3.1: each EXTINF rounded to the nearest integer must not exceed the target.
    const rounded = Math.round(durationS);
    if (rounded > this.targetDurationS) this.targetDurationS = rounded;
  }

  /** Raises the part target to a longer part's duration (whole ms). */
  observePart(durationS: number): void {
    if (durationS > this.partTargetS + 0.0005) this.partTargetS = Math.ceil(durationS * 1000) / 1000;
  }

  /** Bumps `version`. */
  touch(): void {
    this.version += 1;
  }
}

const TRACK_KIND: Record<string, TrackKind> = { [VIDEO_TRACK]: 'video', [AUDIO_TRACK]: 'audio' };
/** Numbering of freed names is remembered for this many tracks. */
const MAX_TOMBSTONES = 4096;

/** The name of the group a broadcast belongs to: its source's name for a rung, else its own. */
export function groupName(b: HlsBroadcast): string {
  return b.origin.kind === 'rendition' ? b.origin.source : b.name;
}

/** Served broadcasts by name, fed from registry entries. */
export class BroadcastTable {
  readonly #options: BroadcastTableOptions;
  readonly #broadcasts = new Map<string, BroadcastState>();
  /** Source name -> names of its rungs. */
  readonly #rungs = new Map<string, Set<string>>();
  readonly #groups = new Map<string, Group>();
  readonly #tombstones = new Map<string, TrackCursor>();
  /**
   * Every window copies its parts and segments into these: media of one lifetime (a part until its
   * segment completes, a segment for the DVR window, the same for every track) shares a few large
   * blocks, which go when the last media in them does. Small media of its own (a low rung's or an
   * audio track's segments, every part) sat between shorter-lived allocations in glibc's main heap.
   */
  readonly #slabs = mediaSlabs();
  #closed = false;
  #onClosed: () => void = () => {};
  /** Resolves (undefined) when `close()` runs. */
  readonly #closedSignal = new Promise<undefined>((resolve) => {
    this.#onClosed = () => resolve(undefined);
  });

  /** An empty table. */
  constructor(options: BroadcastTableOptions) {
    this.#options = options;
  }

  /** The broadcast named `name`, or undefined. */
  get(name: string): HlsBroadcast | undefined {
    return this.#broadcasts.get(name);
  }

  /** Every broadcast, in creation order. */
  values(): IterableIterator<HlsBroadcast> {
    return this.#broadcasts.values();
  }

  /** The rungs of `source` that exist now. */
  rungsOf(source: string): HlsBroadcast[] {
    const names = this.#rungs.get(source);
    if (names === undefined) return [];
    const out: HlsBroadcast[] = [];
    for (const name of names) {
      const rung = this.#broadcasts.get(name);
      if (rung !== undefined) out.push(rung);
    }
    return out;
  }

  /** True when every track of broadcast `name` ended and none is still draining a subscription. */
  isEnded(name: string): boolean {
    const b = this.#broadcasts.get(name);
    return b !== undefined && this.#allEnded(b);
  }

  /** The timing group of `b` (created on first use). */
  groupOf(b: HlsBroadcast): Group {
    const name = groupName(b);
    let group = this.#groups.get(name);
    if (group === undefined) {
      group = new Group(this.#options.targetDurationMs, this.#options.partTargetMs);
      this.#groups.set(name, group);
    }
    return group;
  }

  /** Starts draining a registry entry (`0.mp4` video, `1.mp4` audio; other tracks are ignored). */
  attach(name: string, track: string, broadcaster: FragmentBroadcaster): void {
    const kind = TRACK_KIND[track];
    if (kind === undefined || this.#closed) return;
    let b = this.#broadcasts.get(name);
    if (b === undefined) {
      b = { name, origin: broadcaster.origin, tracks: new Map(), linger: undefined };
      this.#broadcasts.set(name, b);
    } else {
      this.#unindexRung(b);
      b.origin = broadcaster.origin;
    }
    if (b.linger !== undefined) {
      clearTimeout(b.linger);
      b.linger = undefined;
    }
    if (b.origin.kind === 'rendition') {
      let set = this.#rungs.get(b.origin.source);
      if (set === undefined) {
        set = new Set();
        this.#rungs.set(b.origin.source, set);
      }
      set.add(name);
    }
    let t = b.tracks.get(kind);
    if (t === undefined) {
      t = {
        kind,
        window: this.#newWindow(b, kind, broadcaster),
        subs: new Set(),
        session: 0,
        chain: Promise.resolve(),
      };
      b.tracks.set(kind, t);
    }
    const sub = broadcaster.subscribe();
    t.subs.add(sub);
    t.session += 1;
    const session = t.session;
    const state = t;
    const owner = b;
    t.chain = t.chain.then(() => this.#drain(owner, state, sub, session));
    broadcaster.onClose(() => {
      if (broadcaster.withdrawn && state.session === session) this.#withdraw(owner, state);
    });
  }

  /** Closes every subscription and frees every broadcast (their waiters get `closed`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClosed();
    for (const b of this.#broadcasts.values()) {
      if (b.linger !== undefined) clearTimeout(b.linger);
      for (const t of b.tracks.values()) {
        for (const sub of t.subs) sub.close();
        t.subs.clear();
        t.window.dispose();
      }
    }
    this.#broadcasts.clear();
    this.#rungs.clear();
    this.#groups.clear();
  }

  #newWindow(b: BroadcastState, kind: TrackKind, broadcaster: FragmentBroadcaster): TrackWindow {
    const key = `${b.name}\u0000${kind}`;
    const numbering = broadcaster.numbering;
    let start = this.#tombstones.get(key);
    this.#tombstones.delete(key);
    if (start === undefined && numbering !== undefined && numbering !== 'leader') {
      start = {
        nextMsn: numbering.msn,
        discontinuitySequence: numbering.discontinuitySequence,
        ...(numbering.dateAnchor === undefined ? {} : { dateAnchor: numbering.dateAnchor }),
      };
    }
    const leader =
      kind === 'video'
        ? () => this.#sourceOf(b)?.tracks.get('video')?.window
        : () => b.tracks.get('video')?.window ?? this.#sourceOf(b)?.tracks.get('video')?.window;
    const { logger } = this.#options;
    return new TrackWindow({
      kind,
      targetDurationMs: this.#options.targetDurationMs,
      partTargetMs: this.#options.partTargetMs,
      dvrWindowMs: this.#options.dvrWindowMs,
      group: this.groupOf(b),
      leader,
      ...(start === undefined ? {} : { start }),
      startAtLeader: numbering === 'leader',
      // A mirrored follower (audio, a rung): a source's video has no leader to wait for.
      holdForLeader:
        broadcaster.origin.mirroredFrom !== undefined && (kind === 'audio' || broadcaster.origin.kind === 'rendition'),
      now: this.#options.now,
      onWarning: (message, fields) => logger.warn(message, { broadcast: b.name, ...fields }),
      slabs: this.#slabs,
    });
  }

  async #drain(b: BroadcastState, t: TrackState, sub: FragmentSubscription, session: number): Promise<void> {
    const { logger } = this.#options;
    try {
      // The subscription cannot be aborted while it waits for an init: `close()` ends the wait instead.
      const meta = await Promise.race([sub.waitForInit(), this.#closedSignal]);
      if (meta === undefined || this.#closed) return;
      t.window.resume();
      t.window.setMeta(meta);
      let version = sub.metaVersion;
      let lagged = sub.lagged;
      for (;;) {
        const fragment = await sub.next();
        if (fragment === undefined || this.#closed) break;
        try {
          if (sub.metaVersion !== version) {
            version = sub.metaVersion;
            t.window.setMeta(sub.meta);
          }
          if (sub.lagged !== lagged) {
            logger.warn('hls subscriber lagged; fragments skipped', {
              broadcast: b.name,
              track: t.kind,
              skipped: sub.lagged - lagged,
            });
            lagged = sub.lagged;
            t.window.gap();
          }
          t.window.append(fragment);
          if (t.kind === 'video' && b.origin.kind !== 'rendition') this.#followRungs(b.name);
        } catch (error) {
          logger.error('hls packaging failed for a fragment', {
            broadcast: b.name,
            track: t.kind,
            error: errorMessage(error),
          });
        }
      }
    } catch (error) {
      logger.error('hls drain failed', { broadcast: b.name, track: t.kind, error: errorMessage(error) });
    } finally {
      sub.close();
      t.subs.delete(sub);
      if (!this.#closed && t.session === session && b.tracks.get(t.kind) === t) {
        t.window.end();
        this.#maybeLinger(b);
      }
    }
  }

  /** The source's video moved on: paused rungs list GAP segments after it (`TrackWindow.follow`). */
  #followRungs(source: string): void {
    const names = this.#rungs.get(source);
    if (names === undefined) return;
    for (const name of names) {
      const rung = this.#broadcasts.get(name);
      if (rung === undefined || rung.origin.kind !== 'rendition') continue;
      let paused = false;
      try {
        paused = this.#options.isRungPaused(source, rung.origin.rendition);
      } catch {
        // A failing callback is taken as "not paused": the rung keeps its own media.
      }
      if (paused) rung.tracks.get('video')?.window.follow();
    }
  }

  /** `t`'s producer withdrew it: it stops being served now; the broadcast goes with its last track. */
  #withdraw(b: BroadcastState, t: TrackState): void {
    if (this.#closed || this.#broadcasts.get(b.name) !== b || b.tracks.get(t.kind) !== t) return;
    b.tracks.delete(t.kind);
    for (const sub of t.subs) sub.close();
    t.subs.clear();
    this.#remember(`${b.name}\u0000${t.kind}`, t.window.cursor());
    t.window.dispose();
    this.#options.logger.debug('hls track withdrawn', { broadcast: b.name, track: t.kind });
    if (b.tracks.size > 0) {
      this.#maybeLinger(b);
      return;
    }
    if (b.linger !== undefined) clearTimeout(b.linger);
    this.#free(b);
  }

  #allEnded(b: BroadcastState): boolean {
    for (const t of b.tracks.values()) if (!t.window.ended || t.subs.size > 0) return false;
    return true;
  }

  #maybeLinger(b: BroadcastState): void {
    if (b.linger !== undefined || !this.#allEnded(b)) return;
    b.linger = setTimeout(() => this.#free(b), this.#options.lingerMs);
  }

  #free(b: BroadcastState): void {
    if (this.#broadcasts.get(b.name) !== b) return;
    b.linger = undefined;
    this.#broadcasts.delete(b.name);
    this.#unindexRung(b);
    for (const t of b.tracks.values()) {
      for (const sub of t.subs) sub.close();
      this.#remember(`${b.name}\u0000${t.kind}`, t.window.cursor());
      t.window.dispose();
    }
    const name = groupName(b);
    let used = false;
    for (const other of this.#broadcasts.values()) if (groupName(other) === name) used = true;
    if (!used) this.#groups.delete(name);
    this.#options.logger.debug('hls broadcast freed', { broadcast: b.name });
  }

  #remember(key: string, cursor: TrackCursor): void {
    this.#tombstones.delete(key);
    this.#tombstones.set(key, cursor);
    while (this.#tombstones.size > MAX_TOMBSTONES) {
      const oldest = this.#tombstones.keys().next().value;
      if (oldest === undefined) break;
      this.#tombstones.delete(oldest);
    }
  }

  #unindexRung(b: BroadcastState): void {
    if (b.origin.kind !== 'rendition') return;
    const set = this.#rungs.get(b.origin.source);
    set?.delete(b.name);
    if (set?.size === 0) this.#rungs.delete(b.origin.source);
  }

  #sourceOf(b: BroadcastState): BroadcastState | undefined {
    return b.origin.kind === 'rendition' ? this.#broadcasts.get(b.origin.source) : undefined;
  }
}
