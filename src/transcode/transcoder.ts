/** The transcoder contract: a factory per (name, rendition) builds one transcoder per source track. */

import type { Fragment, FragmentMeta } from '../fragment/fragment.ts';
import type { RenditionSpec } from './rendition.ts';

/** What a transcoder is told about the track it serves. */
export type TranscoderContext = {
  /** Source broadcast name, e.g. `live/demo`. */
  readonly broadcast: string;
  /** Source track id, `0.mp4` or `1.mp4`. */
  readonly track: string;
  /** Source meta: at `build` time a snapshot (the init may be missing); at `onStart` it has the init. */
  readonly meta: FragmentMeta;
  /** The rung this transcoder produces. */
  readonly rendition: RenditionSpec;
  /** Aborted when the runner closes. */
  readonly signal: AbortSignal;
};

/** Live figures a transcoder may report for the runner's stats. */
export type TranscoderStats = Readonly<Record<string, unknown>>;

/**
 * One transcoder instance for one (rendition, broadcast, track). Each hook may return a Promise,
 * which the runner awaits before delivering the next fragment (that is the back-pressure).
 */
export interface Transcoder {
  /** Called once the source has an init segment, before any fragment. */
  onStart?(ctx: TranscoderContext): void | Promise<void>;
  /** Called for each source fragment, in order. */
  onFragment(fragment: Fragment): void | Promise<void>;
  /** Called before the first fragment that follows a source meta change (new init, restart). */
  onMetaChange?(meta: FragmentMeta): void | Promise<void>;
  /** Called once at the end (source ended or runner closed). */
  onStop?(): void | Promise<void>;
  /** Live figures merged into the runner's stats snapshot. */
  stats?(): TranscoderStats;
}

/** Builds transcoders for one rendition; `build` returns undefined to opt out of a track. */
export interface TranscoderFactory {
  /** Stable snake/kebab-case name, used in metrics (`software`, `passthrough`, ...). */
  readonly name: string;
  /** The rung this factory produces. */
  readonly rendition: RenditionSpec;
  /** A transcoder for this track, or undefined to skip it. */
  build(ctx: TranscoderContext): Transcoder | undefined;
}
