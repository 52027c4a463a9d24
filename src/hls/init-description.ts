/**
 * What the master playlist states about an init version: CODECS, RESOLUTION and FRAME-RATE, read
 * once per version; a frame rate the init does not state is the one ingest measured (in the meta).
 */

import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { InitVersion, TrackKind } from './track-media.ts';

/** One track as an init segment describes it (the fields of the container's `TrackInfo` used here). */
export type InitTrackDescription = {
  readonly kind: string;
  readonly codec: string;
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  readonly frameRate?: number | undefined;
};

/** Reads an init segment: the container's `describeInit` (an array) or any stand-in returning `{ tracks }`. */
export type InitDescriber = (
  init: Uint8Array,
) => readonly InitTrackDescription[] | { readonly tracks: readonly InitTrackDescription[] };

/** One init version as described: the init's codec string when the describer gives none. */
export type InitDescription = {
  readonly codec: string;
  readonly width: number | undefined;
  readonly height: number | undefined;
  readonly frameRate: number | undefined;
};

/** Descriptions of init versions, cached per version (a version's bytes never change). */
export class InitDescriptions {
  readonly #describeInit: InitDescriber;
  readonly #logger: Logger;
  readonly #descriptions = new WeakMap<InitVersion, InitDescription>();

  /** Descriptions read with `describeInit`; a describer that throws is logged (debug) and the track meta used. */
  constructor(describeInit: InitDescriber, logger: Logger) {
    this.#describeInit = describeInit;
    this.#logger = logger;
  }

  /** The description of `init`'s `kind` track (else its first track). */
  describe(init: InitVersion, kind: TrackKind): InitDescription {
    const cached = this.#descriptions.get(init);
    if (cached !== undefined) return cached;
    let description: InitDescription = { codec: init.codec, width: undefined, height: undefined, frameRate: undefined };
    try {
      const out = this.#describeInit(init.bytes);
      const tracks = 'tracks' in out ? out.tracks : out;
      const track = tracks.find((x) => x.kind === kind) ?? tracks[0];
      if (track !== undefined) {
        description = {
          codec: track.codec || init.codec,
          width: track.width,
          height: track.height,
          frameRate: track.frameRate,
        };
      }
    } catch (error) {
      this.#logger.debug('init segment not described; using the track meta', { error: errorMessage(error) });
    }
    this.#descriptions.set(init, description);
    return description;
  }

  /** FRAME-RATE: what the init states, else what ingest measured (the meta's). */
  frameRate(init: InitVersion): number | undefined {
    return this.describe(init, 'video').frameRate ?? init.meta.frameRate;
  }
}
