/**
 * `PassthroughTranscoderFactory`: a video-only transcoder that counts what it sees and produces
 * nothing (LVQR's scaffold, kept for wiring tests and as the cheapest runner benchmark).
 */

import type { Fragment } from '../fragment/fragment.ts';
import { VIDEO_TRACK } from '../fragment/fragment.ts';
import type { RenditionSpec } from './rendition.ts';
import type { Transcoder, TranscoderContext, TranscoderFactory, TranscoderStats } from './transcoder.ts';

/** Counts the fragments of one video track. */
export class PassthroughTranscoder implements Transcoder {
  #seen = 0;
  #bytes = 0;

  /** Fragments seen so far. */
  get fragmentsSeen(): number {
    return this.#seen;
  }

  onFragment(fragment: Fragment): void {
    this.#seen += 1;
    this.#bytes += fragment.payload.byteLength;
  }

  stats(): TranscoderStats {
    return { fragmentsSeen: this.#seen, bytesSeen: this.#bytes };
  }
}

/** Builds a `PassthroughTranscoder` for video tracks (`0.mp4`) only. */
export class PassthroughTranscoderFactory implements TranscoderFactory {
  readonly name = 'passthrough';
  readonly rendition: RenditionSpec;

  /** A passthrough factory for `rendition`. */
  constructor(rendition: RenditionSpec) {
    this.rendition = rendition;
  }

  build(ctx: TranscoderContext): Transcoder | undefined {
    return ctx.track === VIDEO_TRACK ? new PassthroughTranscoder() : undefined;
  }
}
