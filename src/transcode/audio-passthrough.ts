/**
 * `AudioPassthroughTranscoderFactory`: copies a source's audio track `<source>/1.mp4` into
 * `<source>/<rendition>/1.mp4`, sharing payload bytes (no copy), following init changes, and
 * closing the output when the source ends. Outputs are tagged as renditions, so the runner never
 * re-transcodes them.
 */

import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import { AUDIO_TRACK, type Fragment, type FragmentMeta } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import type { RenditionSpec } from './rendition.ts';
import type { Transcoder, TranscoderContext, TranscoderFactory, TranscoderStats } from './transcoder.ts';

const NAME = 'audio-passthrough';

/** Forwards one source audio track into one rendition broadcast. */
export class AudioPassthroughTranscoder implements Transcoder {
  readonly #registry: FragmentBroadcasterRegistry;
  readonly #metrics: LvqrMetrics | undefined;
  readonly #rendition: RenditionSpec;
  readonly #outputName: string;
  readonly #source: string;
  #output: FragmentBroadcaster | undefined;
  #forwarded = 0;
  #bytes = 0;

  /** A transcoder forwarding `source`'s audio into `<source>/<rendition.name>`. */
  constructor(registry: FragmentBroadcasterRegistry, source: string, rendition: RenditionSpec, metrics?: LvqrMetrics) {
    this.#registry = registry;
    this.#metrics = metrics;
    this.#rendition = rendition;
    this.#source = source;
    this.#outputName = `${source}/${rendition.name}`;
  }

  /** Name of the output broadcast. */
  get outputBroadcast(): string {
    return this.#outputName;
  }

  /** Fragments forwarded so far. */
  get forwarded(): number {
    return this.#forwarded;
  }

  onStart(ctx: TranscoderContext): void {
    const output = this.#registry.getOrCreate(this.#outputName, AUDIO_TRACK, ctx.meta, {
      origin: { kind: 'rendition', source: this.#source, rendition: this.#rendition.name, transcoder: NAME },
    });
    // A pre-existing output (restart) gets the source's current init.
    if (output.meta.initSegment !== ctx.meta.initSegment) output.setMeta(ctx.meta);
    this.#output = output;
  }

  onMetaChange(meta: FragmentMeta): void {
    this.#output?.setMeta(meta);
  }

  onFragment(fragment: Fragment): void {
    const output = this.#output;
    if (output === undefined) return;
    // Fragments are immutable: the payload is shared, not copied.
    output.emit(fragment);
    this.#forwarded += 1;
    this.#bytes += fragment.payload.byteLength;
    const labels = { transcoder: NAME, rendition: this.#rendition.name };
    this.#metrics?.outputFragments.inc(labels);
    this.#metrics?.outputBytes.inc(labels, fragment.payload.byteLength);
  }

  onStop(): void {
    const output = this.#output;
    this.#output = undefined;
    if (output !== undefined && this.#registry.get(this.#outputName, AUDIO_TRACK) === output) {
      this.#registry.remove(this.#outputName, AUDIO_TRACK);
    }
  }

  stats(): TranscoderStats {
    return { output: this.#outputName, forwarded: this.#forwarded, bytes: this.#bytes };
  }
}

/** Builds an `AudioPassthroughTranscoder` for audio tracks (`1.mp4`) only. */
export class AudioPassthroughTranscoderFactory implements TranscoderFactory {
  readonly name = NAME;
  readonly rendition: RenditionSpec;
  readonly #registry: FragmentBroadcasterRegistry;
  readonly #metrics: LvqrMetrics | undefined;

  /** A factory publishing into `registry` (normally the same registry the runner is installed on). */
  constructor(rendition: RenditionSpec, registry: FragmentBroadcasterRegistry, metrics?: LvqrMetrics) {
    this.rendition = rendition;
    this.#registry = registry;
    this.#metrics = metrics;
  }

  build(ctx: TranscoderContext): Transcoder | undefined {
    if (ctx.track !== AUDIO_TRACK) return undefined;
    return new AudioPassthroughTranscoder(this.#registry, ctx.broadcast, this.rendition, this.#metrics);
  }
}
