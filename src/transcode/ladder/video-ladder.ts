/**
 * The ladder's shared state: one `SharedDecoder` per source session (created by its first rung,
 * closed by its last), the renditions in priority order, and the sources that cannot be decoded.
 * `LadderTranscoderFactory` builds one rung per (rendition, source) on it.
 */

import { VIDEO_TRACK } from '../../fragment/fragment.ts';
import type { RenditionSpec } from '../rendition.ts';
import { SessionSources } from '../shared/session-sources.ts';
import type { Transcoder, TranscoderContext, TranscoderFactory } from '../transcoder.ts';
import {
  LADDER_TRANSCODER_NAME,
  type LadderOptions,
  type ResolvedLadderOptions,
  resolveLadderOptions,
} from './options.ts';
import { RungTranscoder } from './rung.ts';
import { type RungSink, SharedDecoder, type SourceLadderStatus } from './shared-decoder.ts';

const DECODABLE = /^(avc1|avc3)\./;
/** Refused sources remembered for the API. */
const MAX_REFUSED = 64;

/** Shared state of one ladder: the per-source decoders and their status. */
export class VideoLadder {
  /** The options with their defaults. */
  readonly options: ResolvedLadderOptions;
  readonly #sources: SessionSources<RungSink, SharedDecoder>;
  readonly #unsupported = new Map<string, SourceLadderStatus>();
  /** Rendition names in the order their factories were built: the overload policy's priority. */
  readonly #ranks: string[] = [];

  /** Creates the shared state; build one `LadderTranscoderFactory` per rung on it. */
  constructor(options: LadderOptions) {
    this.options = resolveLadderOptions(options);
    this.#sources = new SessionSources({
      create: (broadcast, meta) => new SharedDecoder(broadcast, meta, this.options, (name) => this.#priority(name)),
      onClosed: () => this.options.gcFull?.(),
    });
  }

  /** Whether the overload policy paused `rendition` of `source` (such a rung is left out of the master). */
  isRungPaused(source: string, rendition: string): boolean {
    return this.#sources.current(source)?.loadState(rendition) === 'paused';
  }

  /**
   * Whether the encoder of `rendition` of `source` failed and no new session has published since
   * (such a rung is left out of the master until it recovers).
   */
  isRungFailed(source: string, rendition: string): boolean {
    return this.#sources.current(source)?.rungFailed(rendition) ?? false;
  }

  /** Status of every source being decoded (or refused). */
  sources(): SourceLadderStatus[] {
    return [...this.#sources.live().map((s) => s.status()), ...this.#unsupported.values()];
  }

  /** Adds `rendition` to the ladder; earlier renditions rank higher (shed last). */
  addRendition(rendition: RenditionSpec): void {
    if (!this.#ranks.includes(rendition.name)) this.#ranks.push(rendition.name);
  }

  /** A rung of `rendition` for the source track of `ctx`, or `undefined` when it cannot be decoded. */
  buildRung(rendition: RenditionSpec, ctx: TranscoderContext): RungTranscoder | undefined {
    if (ctx.track !== VIDEO_TRACK) return undefined;
    // At build time the codec may still be unknown (entry created before its init).
    if (ctx.meta.codec !== '' && !DECODABLE.test(ctx.meta.codec)) {
      this.#refuse(ctx.broadcast, ctx.meta.codec, `codec ${ctx.meta.codec} cannot be decoded here (H.264 only)`);
      return undefined;
    }
    this.#unsupported.delete(ctx.broadcast);
    const token = this.#sources.session(ctx.broadcast, ctx.meta);
    return new RungTranscoder(rendition, this.options, (broadcast, meta, rung) =>
      this.#sources.attach(broadcast, token, meta, rung),
    );
  }

  #priority(rendition: string): number {
    const at = this.#ranks.indexOf(rendition);
    return at === -1 ? this.#ranks.length : at;
  }

  /** Records a source that cannot be decoded, so the API can say why it has no rungs. */
  #refuse(broadcast: string, codec: string, reason: string): void {
    this.#unsupported.set(broadcast, {
      broadcast,
      codec,
      width: undefined,
      height: undefined,
      frameRate: undefined,
      decoderState: 'unsupported',
      reason,
      decodedFrames: 0,
      restarts: 0,
      renewals: 0,
      lastError: undefined,
      rungs: [],
      scaler: undefined,
      scalerError: undefined,
      skipped: [],
    });
    while (this.#unsupported.size > MAX_REFUSED) this.#unsupported.delete(this.#unsupported.keys().next().value!);
  }
}

/**
 * Builds one rung of the ladder (factory name `software`, one per rendition, as in LVQR's
 * `SoftwareTranscoderFactory`; the encoder behind it may be hardware).
 */
export class LadderTranscoderFactory implements TranscoderFactory {
  readonly name = LADDER_TRANSCODER_NAME;
  readonly rendition: RenditionSpec;
  readonly #ladder: VideoLadder;

  /** A factory for `rendition` sharing `ladder`'s per-source decoders. */
  constructor(rendition: RenditionSpec, ladder: VideoLadder) {
    this.rendition = rendition;
    this.#ladder = ladder;
    ladder.addRendition(rendition);
  }

  build(ctx: TranscoderContext): Transcoder | undefined {
    return this.#ladder.buildRung(this.rendition, ctx);
  }
}
