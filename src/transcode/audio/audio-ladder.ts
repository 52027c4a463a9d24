/**
 * The audio ladder's shared state: one `SharedAudioDecoder` per source session (created by its
 * first rendition, closed by its last), and `AudioRenditionFactory`, which builds one
 * `AudioRenditionTranscoder` per (audio rendition, source). `audioRenditionTargets` turns a video
 * ladder into its audio renditions: AAC-LC at every distinct `audioBitrateKbps`, plus one Opus;
 * `audioRenditionSpec` names one as a rendition, so that a runner's ladder group (with per-stream
 * ladders) can plan audio renditions like rungs.
 */

import type { Logger } from '../../core/log.ts';
import { silentLogger } from '../../core/log.ts';
import { AUDIO_TRACK } from '../../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../../fragment/registry.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import type { RenditionSpec } from '../rendition.ts';
import { SessionSources } from '../shared/session-sources.ts';
import type { Transcoder, TranscoderContext, TranscoderFactory } from '../transcoder.ts';
import type { AudioCodecs } from './audio-codecs.ts';
import { AUDIO_LADDER_TRANSCODER_NAME } from './audio-output.ts';
import { type AudioRenditionOptions, type AudioRenditionTarget, AudioRenditionTranscoder } from './audio-rendition.ts';
import { type AudioSink, type AudioSourceStatus, SharedAudioDecoder } from './audio-source.ts';

/** Options of an audio ladder. */
export type AudioLadderOptions = {
  registry: FragmentBroadcasterRegistry;
  codecs: AudioCodecs;
  metrics?: LvqrMetrics | undefined;
  logger?: Logger;
  now?: () => number;
  /** First retry delay after a codec failure, ms (default 250). */
  retryBaseMs?: number;
  /** Longest retry delay, ms (default 8000). */
  retryMaxMs?: number;
  /** Decoded blocks queued per rendition before it drops them (default 200). */
  maxQueuedBlocks?: number;
};

/** Output name of an audio rendition: `audio-aac-64k`, `audio-opus-64k`. */
export function audioRenditionName(target: AudioRenditionTarget): string {
  return `audio-${target.codec}-${target.bitrateKbps}k`;
}

/** An audio rendition as the rendition spec its factory carries: its output name, no picture. */
export function audioRenditionSpec(target: AudioRenditionTarget): RenditionSpec {
  return {
    name: audioRenditionName(target),
    width: 0,
    height: 0,
    videoBitrateKbps: 0,
    audioBitrateKbps: target.bitrateKbps,
  };
}

/** The target of a spec made by `audioRenditionSpec`. */
export function audioRenditionTargetOf(spec: RenditionSpec): AudioRenditionTarget {
  return { codec: spec.name.startsWith('audio-opus-') ? 'opus' : 'aac', bitrateKbps: spec.audioBitrateKbps };
}

/**
 * The audio renditions of `ladder`: AAC at each distinct `audioBitrateKbps` in ladder order, then
 * Opus at `opusKbps` unless it is undefined.
 */
export function audioRenditionTargets(
  ladder: readonly RenditionSpec[],
  opusKbps: number | undefined,
): AudioRenditionTarget[] {
  const rates = [...new Set(ladder.map((r) => r.audioBitrateKbps).filter((k) => k > 0))];
  const targets: AudioRenditionTarget[] = rates.map((bitrateKbps) => ({ codec: 'aac', bitrateKbps }));
  if (opusKbps !== undefined) targets.push({ codec: 'opus', bitrateKbps: opusKbps });
  return targets;
}

/** Shared state of one audio ladder: the per-source decoders. */
export class AudioLadder {
  readonly #options: AudioRenditionOptions;
  readonly #sources: SessionSources<AudioSink, SharedAudioDecoder>;

  /** Creates the shared state; build one `AudioRenditionFactory` per audio rendition on it. */
  constructor(options: AudioLadderOptions) {
    this.#options = {
      registry: options.registry,
      codecs: options.codecs,
      metrics: options.metrics,
      logger: options.logger ?? silentLogger,
      now: options.now ?? (() => Date.now()),
      retryBaseMs: options.retryBaseMs ?? 250,
      retryMaxMs: options.retryMaxMs ?? 8000,
      ...(options.maxQueuedBlocks === undefined ? {} : { maxQueuedBlocks: options.maxQueuedBlocks }),
    };
    this.#sources = new SessionSources({
      create: (broadcast, meta) => new SharedAudioDecoder(broadcast, meta, this.#options),
    });
  }

  /** Status of every source's audio decoder. */
  sources(): AudioSourceStatus[] {
    return this.#sources.live().map((s) => s.status());
  }

  /** A rendition producing `target` for the source track of `ctx` (audio tracks only). */
  buildRendition(
    rendition: RenditionSpec,
    target: AudioRenditionTarget,
    ctx: TranscoderContext,
  ): Transcoder | undefined {
    if (ctx.track !== AUDIO_TRACK) return undefined;
    if (ctx.meta.codec !== '' && !ctx.meta.codec.startsWith('mp4a.40.')) return undefined;
    const token = this.#sources.session(ctx.broadcast, ctx.meta);
    return new AudioRenditionTranscoder(rendition, target, this.#options, (start, sink) =>
      this.#sources.attach(start.broadcast, token, start.meta, sink),
    );
  }
}

/** Builds one audio rendition (factory name `audio-ladder`) on a shared `AudioLadder`. */
export class AudioRenditionFactory implements TranscoderFactory {
  readonly name = AUDIO_LADDER_TRANSCODER_NAME;
  readonly rendition: RenditionSpec;
  /** Codec and bitrate produced. */
  readonly target: AudioRenditionTarget;
  readonly #ladder: AudioLadder;

  /** A factory for `target` sharing `ladder`'s per-source decoders. */
  constructor(target: AudioRenditionTarget, ladder: AudioLadder) {
    this.target = target;
    this.rendition = audioRenditionSpec(target);
    this.#ladder = ladder;
  }

  build(ctx: TranscoderContext): Transcoder | undefined {
    return this.#ladder.buildRendition(this.rendition, this.target, ctx);
  }
}
