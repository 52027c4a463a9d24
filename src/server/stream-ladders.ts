/**
 * Per-broadcast ladders: set by the admin API (`PUT /api/v1/broadcasts/<broadcast>/ladder`, kept
 * until deleted) or by a publish admission answer (kept for that publish). The transcode runner
 * asks `lookup` when a broadcast's source appears, and again when the admin API changes the ladder
 * of a live broadcast (the change applies at the source's next keyframe).
 */

import { LvqrError } from '../core/errors.ts';
import type { RenditionSpec } from '../transcode/rendition.ts';

/** Who set a broadcast's ladder. */
export type LadderOrigin = 'default' | 'api' | 'admission';

/** Per-broadcast ladders set at most (a PUT beyond is refused). */
const MAX_LADDERS = 10_000;

/** A ladder in LVQR's JSON field names. */
export function ladderToJson(ladder: readonly RenditionSpec[]): Array<Record<string, unknown>> {
  return ladder.map((r) => ({
    name: r.name,
    width: r.width,
    height: r.height,
    video_bitrate_kbps: r.videoBitrateKbps,
    audio_bitrate_kbps: r.audioBitrateKbps,
  }));
}

/** The ladders set per broadcast and the ladder in effect for each live one. */
export class StreamLadders {
  readonly defaults: readonly RenditionSpec[];
  readonly #set = new Map<string, { ladder: RenditionSpec[]; origin: 'api' | 'admission' }>();
  readonly #active = new Map<string, readonly RenditionSpec[]>();

  /** A store whose unset broadcasts use `defaults`. */
  constructor(defaults: readonly RenditionSpec[]) {
    this.defaults = defaults;
  }

  /** Sets the ladder of `broadcast` (the caller re-plans a live broadcast). */
  set(broadcast: string, ladder: RenditionSpec[], origin: 'api' | 'admission'): void {
    if (!this.#set.has(broadcast) && this.#set.size >= MAX_LADDERS) {
      throw new LvqrError('admin.bad_request', `at most ${MAX_LADDERS} broadcasts may have their own ladder`);
    }
    this.#set.set(broadcast, { ladder, origin });
  }

  /** Drops the ladder set for `broadcast` (only one set by `origin`, when given); true if there was one. */
  delete(broadcast: string, origin?: 'api' | 'admission'): boolean {
    const current = this.#set.get(broadcast);
    if (current === undefined || (origin !== undefined && current.origin !== origin)) return false;
    return this.#set.delete(broadcast);
  }

  /** The ladder the next publish of `broadcast` gets, and who set it. */
  configured(broadcast: string): { ladder: readonly RenditionSpec[]; origin: LadderOrigin } {
    return this.#set.get(broadcast) ?? { ladder: this.defaults, origin: 'default' };
  }

  /** For the runner: the ladder of `broadcast` now (recorded as in effect), `undefined` for the default. */
  lookup(broadcast: string): readonly RenditionSpec[] | undefined {
    const set = this.#set.get(broadcast)?.ladder;
    this.#active.set(broadcast, set ?? this.defaults);
    return set;
  }

  /** The ladder in effect for the live broadcast `broadcast` (the default when none was recorded). */
  active(broadcast: string): readonly RenditionSpec[] {
    return this.#active.get(broadcast) ?? this.defaults;
  }

  /** Whether `broadcast` is live with a recorded ladder. */
  isActive(broadcast: string): boolean {
    return this.#active.has(broadcast);
  }

  /** The broadcast ended: forget its ladder in effect. */
  ended(broadcast: string): void {
    this.#active.delete(broadcast);
  }
}
