/**
 * What the master playlist states about an init version: CODECS, RESOLUTION and FRAME-RATE, read
 * once per version; a frame rate the init does not state is measured from the first fragments.
 */

import { readSamples } from '../container/index.ts';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Fragment } from '../fragment/fragment.ts';
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

type FrameRateProbe = { durations: number[]; done: boolean };

/** Sample durations read to measure a frame rate the init does not state. */
const FRAME_RATE_SAMPLES = 32;

/** Descriptions of init versions, cached per version (a version's bytes never change). */
export class InitDescriptions {
  readonly #describeInit: InitDescriber;
  readonly #logger: Logger;
  readonly #descriptions = new WeakMap<InitVersion, InitDescription>();
  readonly #probes = new WeakMap<InitVersion, FrameRateProbe>();

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

  /** Reads sample durations of the first fragments of a video init whose `moov` does not state a frame rate. */
  probeFrameRate(init: InitVersion | undefined, fragment: Fragment): void {
    if (init === undefined || this.describe(init, 'video').frameRate !== undefined) return;
    let probe = this.#probes.get(init);
    if (probe === undefined) {
      probe = { durations: [], done: false };
      this.#probes.set(init, probe);
    }
    if (probe.done) return;
    try {
      for (const sample of readSamples(fragment.payload)) probe.durations.push(sample.duration);
    } catch {
      probe.durations = [];
      probe.done = true;
      return;
    }
    if (probe.durations.length >= FRAME_RATE_SAMPLES) probe.done = true;
  }

  /** FRAME-RATE: what the init states, else the timescale over the median sample duration. */
  frameRate(init: InitVersion): number | undefined {
    const stated = this.describe(init, 'video').frameRate;
    if (stated !== undefined) return stated;
    const durations = this.#probes.get(init)?.durations;
    if (durations === undefined || durations.length < 3) return undefined;
    const median = [...durations].sort((a, b) => a - b)[Math.floor(durations.length / 2)]!;
    return median > 0 ? init.timescale / median : undefined;
  }
}
