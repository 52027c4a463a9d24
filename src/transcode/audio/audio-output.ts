/**
 * CMAF packaging and publication of one audio rendition: an init segment per encoder
 * configuration (`mp4a`+`esds` for AAC, `Opus`+`dOps` built from the encoder's `OpusHead`), then
 * one `moof`+`mdat` fragment per packet, published to the registry as `<source>/<rendition>`
 * track `1.mp4`.
 */

import { aacCodecString, buildAudioInitSegment, buildMediaSegment, OPUS_CODEC_STRING } from '../../container/index.ts';
import { sameBytes } from '../../core/bytes.ts';
import { AUDIO_TRACK, FragmentFlags, type FragmentMeta } from '../../fragment/fragment.ts';
import { OutputClaim, type OutputClaimOptions } from '../shared/output-claim.ts';
import type { PacketTime } from './audio-timeline.ts';

/** Name of the audio ladder's transcoder (task keys, metric labels). */
export const AUDIO_LADDER_TRANSCODER_NAME = 'audio-ladder';

/** Format of an audio output. */
export type AudioOutputFormat = {
  codec: 'aac' | 'opus';
  sampleRate: number;
  channels: number;
  bitrateBps: number;
  /** AudioSpecificConfig (AAC) or `OpusHead` (Opus), from the encoder. */
  description: Uint8Array;
};

/** Where an audio rendition's output goes. */
export type AudioOutputOptions = OutputClaimOptions;

/** The output broadcaster of one audio rendition and its CMAF state. */
export class AudioOutput {
  /** `<source>/<rendition>`. */
  readonly name: string;
  readonly #claim: OutputClaim;
  #description: Uint8Array | undefined;
  #sequence = 0;
  #lastPts = -Infinity;

  /** An output for `options.rendition` of `options.source`; nothing is published before `configure`. */
  constructor(options: AudioOutputOptions) {
    this.#claim = new OutputClaim(options, AUDIO_TRACK, AUDIO_LADDER_TRANSCODER_NAME);
    this.name = this.#claim.name;
  }

  /** Publishes an init for `format` unless the current one already describes it. */
  configure(format: AudioOutputFormat): void {
    if (this.#claim.output !== undefined && sameBytes(format.description, this.#description)) return;
    this.#description = format.description;
    const init = buildAudioInitSegment({
      timescale: format.sampleRate,
      sampleRate: format.sampleRate,
      channelCount: format.channels,
      codec: format.codec,
      description: format.description,
      ...(format.codec === 'aac' ? { bitrateBps: format.bitrateBps } : {}),
    });
    const meta: FragmentMeta = {
      codec: format.codec === 'aac' ? aacCodecString(format.description) : OPUS_CODEC_STRING,
      timescale: format.sampleRate,
      initSegment: init,
    };
    if (this.#claim.claim(meta)) this.#lastPts = -Infinity;
  }

  /** Publishes one packet at `time`; returns the bytes published, or undefined when it was not. */
  publish(data: Uint8Array, time: PacketTime, ingestTimeMs: number): number | undefined {
    const output = this.#claim.output;
    if (output === undefined || time.pts <= this.#lastPts) return undefined;
    this.#lastPts = time.pts;
    this.#sequence += 1;
    const payload = buildMediaSegment({
      sequenceNumber: this.#sequence,
      baseMediaDecodeTime: time.pts,
      samples: [{ data, duration: time.duration, keyframe: true }],
    });
    output.emit({
      trackId: AUDIO_TRACK,
      groupId: this.#sequence - 1,
      objectId: 0,
      priority: 0,
      dts: time.pts,
      pts: time.pts,
      duration: time.duration,
      flags: FragmentFlags.AUDIO,
      payload,
      ingestTimeMs,
    });
    return payload.byteLength;
  }

  /** Whether a packet at `pts` would not follow the last one published (a timeline that went back). */
  precedes(pts: number): boolean {
    return pts <= this.#lastPts;
  }

  /**
   * A new timeline follows (the source restarted): the next `configure` publishes a new init even
   * when it describes the same format, so players see a discontinuity, and timestamps may restart.
   */
  restart(): void {
    this.#description = undefined;
    this.#lastPts = -Infinity;
  }

  /** Ends the output (ENDLIST downstream); a later `configure` starts a new one. */
  end(): void {
    this.#claim.release();
    this.#description = undefined;
  }
}
