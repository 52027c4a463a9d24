/**
 * CMAF packaging and publication of one rung: an init segment per encoder session (from the
 * encoder's `avcC`), then one `moof`+`mdat` fragment per encoded frame, published to the registry
 * as `<source>/<rendition>` track `0.mp4`.
 */

import { avcCodecString, buildMediaSegment, buildVideoInitSegment } from '../../container/index.ts';
import { sameBytes } from '../../core/bytes.ts';
import type { Logger } from '../../core/log.ts';
import type { FragmentBroadcaster } from '../../fragment/broadcaster.ts';
import { FragmentFlags, type FragmentMeta, VIDEO_TRACK } from '../../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../../fragment/registry.ts';
import type { EncodedChunk } from '../codecs.ts';
import type { FrameMeta } from './frames.ts';
import { LADDER_TRANSCODER_NAME } from './options.ts';
import type { PlannedRung } from './plan.ts';

/** Where a rung's output goes. */
export type RungOutputOptions = {
  registry: FragmentBroadcasterRegistry;
  logger: Logger;
  /** Source broadcast name. */
  source: string;
  /** Rendition name. */
  rendition: string;
  /** Told why the output cannot be published (its name is taken by a publisher). */
  onRefused: (message: string) => void;
};

/** The output broadcaster of one rung and its CMAF state. */
export class RungOutput {
  /** `<source>/<rendition>`. */
  readonly name: string;
  readonly #options: RungOutputOptions;
  #output: FragmentBroadcaster | undefined;
  #avcC: Uint8Array | undefined;
  #sequence = 0;
  #groupId = -1;
  #objectId = 0;
  #lastPts = -Infinity;

  /** An output for `options.source`'s rung `options.rendition`; nothing is published before the first chunk. */
  constructor(options: RungOutputOptions) {
    this.#options = options;
    this.name = `${options.source}/${options.rendition}`;
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
    if (this.#avcC === undefined || this.#output === undefined) return undefined;
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
    this.#output.emit({
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
    const registry = this.#options.registry;
    if (this.#output !== undefined && registry.get(this.name, VIDEO_TRACK) === this.#output) {
      registry.remove(this.name, VIDEO_TRACK);
    }
    this.#output = undefined;
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
    const { registry, source, rendition } = this.#options;
    const existing = registry.get(this.name, VIDEO_TRACK);
    if (existing !== undefined && existing === this.#output && !existing.closed) {
      existing.setMeta(meta);
      return;
    }
    if (existing !== undefined) {
      if (existing.origin.kind !== 'rendition') {
        // A publisher owns that name: never write into its broadcast.
        this.#options.onRefused(`output ${this.name} is taken by a published broadcast`);
        this.#output = undefined;
        return;
      }
      // The output of a previous session of this source (a restart while its rungs still finish):
      // end it here, so its late frames can never follow ours in one broadcaster.
      registry.remove(this.name, VIDEO_TRACK);
    }
    this.#output = registry.getOrCreate(this.name, VIDEO_TRACK, meta, {
      origin: { kind: 'rendition', source, rendition, transcoder: LADDER_TRANSCODER_NAME },
    });
    if (this.#output.meta !== meta) this.#output.setMeta(meta);
    this.#lastPts = -Infinity;
  }
}
