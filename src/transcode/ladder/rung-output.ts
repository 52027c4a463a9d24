/**
 * CMAF packaging and publication of one rung: an init segment per encoder session (from the
 * encoder's `avcC`), then one `moof`+`mdat` fragment per encoded frame, published to the registry
 * as `<source>/<rendition>` track `0.mp4`.
 */

import { avcCodecString, buildMediaSegment, buildVideoInitSegment } from '../../container/index.ts';
import { sameBytes } from '../../core/bytes.ts';
import type { Logger } from '../../core/log.ts';
import { FragmentFlags, type FragmentMeta, VIDEO_TRACK } from '../../fragment/fragment.ts';
import type { EncodedChunk } from '../codecs.ts';
import { OutputClaim, type OutputClaimOptions } from '../shared/output-claim.ts';
import type { FrameMeta } from './frames.ts';
import { LADDER_TRANSCODER_NAME } from './options.ts';
import type { PlannedRung } from './plan.ts';

/** Where a rung's output goes. */
export type RungOutputOptions = OutputClaimOptions & { logger: Logger };

/** The output broadcaster of one rung and its CMAF state. */
export class RungOutput {
  /** `<source>/<rendition>`. */
  readonly name: string;
  readonly #options: RungOutputOptions;
  readonly #claim: OutputClaim;
  #avcC: Uint8Array | undefined;
  #sequence = 0;
  #groupId = -1;
  #objectId = 0;
  #lastPts = -Infinity;

  /** An output for `options.source`'s rung `options.rendition`; nothing is published before the first chunk. */
  constructor(options: RungOutputOptions) {
    this.#options = options;
    this.#claim = new OutputClaim(options, VIDEO_TRACK, LADDER_TRANSCODER_NAME);
    this.name = this.#claim.name;
  }

  /**
   * Packages `chunk` (the encoding of the frame `meta`) and publishes it; a chunk carrying a new
   * `avcC` first publishes a new init. `frameRate` states the init's default sample duration.
   * Returns the bytes published, or `undefined` when the chunk was not published.
   */
  publish(chunk: EncodedChunk, meta: FrameMeta, plan: PlannedRung, frameRate: number | undefined): number | undefined {
    if (chunk.decoderConfig !== undefined && !sameBytes(chunk.decoderConfig.description, this.#avcC)) {
      this.#avcC = chunk.decoderConfig.description;
      // The init's default sample duration states the frame rate (players and the master's
      // FRAME-RATE read it): take it from the source frame rate, not from this first frame,
      // which is often longer than the rest.
      const duration =
        frameRate !== undefined && frameRate > 0 ? Math.round(meta.timescale / frameRate) : meta.duration;
      this.#publishInit(plan, meta.timescale, duration, frameRate);
    }
    const output = this.#claim.output;
    if (this.#avcC === undefined || output === undefined) return undefined;
    if (meta.pts <= this.#lastPts) {
      this.#options.logger.warn('dropping a non-monotonic rung frame', { output: this.name, pts: meta.pts });
      return undefined;
    }
    this.#lastPts = meta.pts;
    // An IDR the encoder inserted on its own is decodable but not shared by the other rungs and the
    // source, so it is not flagged as a keyframe (segments are cut only at shared points).
    const keyframe = chunk.keyframe && chunk.requestedKeyframe !== false;
    if (keyframe) {
      this.#groupId += 1;
      this.#objectId = 0;
    } else {
      this.#objectId += 1;
    }
    this.#sequence += 1;
    const payload = buildMediaSegment({
      sequenceNumber: this.#sequence,
      baseMediaDecodeTime: meta.pts,
      samples: [{ data: chunk.data, duration: meta.duration, keyframe: chunk.keyframe }],
    });
    output.emit({
      trackId: VIDEO_TRACK,
      groupId: Math.max(0, this.#groupId),
      objectId: this.#objectId,
      priority: keyframe ? 0 : 1,
      dts: meta.pts,
      pts: meta.pts,
      duration: meta.duration,
      flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
      payload,
      ingestTimeMs: meta.ingestTimeMs,
    });
    return payload.byteLength;
  }

  /** A new encoder session follows (a new init, timestamps may restart). */
  restart(): void {
    this.#avcC = undefined;
    this.#lastPts = -Infinity;
  }

  /** Ends the output (ENDLIST downstream); a later chunk starts a new one. */
  end(): void {
    this.#claim.release();
    this.#avcC = undefined;
  }

  /** Ends the output and withdraws what it published (nothing of it stays served); a later chunk starts a new one. */
  withdraw(): void {
    this.#claim.withdraw();
    this.#avcC = undefined;
  }

  #publishInit(plan: PlannedRung, timescale: number, frameDuration: number, frameRate: number | undefined): void {
    const avcC = this.#avcC!;
    const init = buildVideoInitSegment({
      timescale,
      width: plan.width,
      height: plan.height,
      avcC,
      defaultSampleDuration: frameDuration,
    });
    const meta: FragmentMeta = {
      codec: avcCodecString(avcC),
      timescale,
      initSegment: init,
      ...(frameRate !== undefined && frameRate > 0 ? { frameRate } : {}),
    };
    if (this.#claim.claim(meta)) this.#lastPts = -Infinity;
  }
}
