/**
 * The few H.264 bitstream facts the codec layer needs: the codec string an `avcC` really
 * describes, whether a length-prefixed access unit holds an IDR slice, and a level for a size.
 */

import {
  type AvcConfig,
  avcCodecStringFromSps,
  avcCodecString as containerAvcCodecString,
  parseAvcC as parseAvcCRecord,
} from '../container/codec-string.ts';
import { argumentError, errorMessage } from '../core/errors.ts';

export type { AvcConfig } from '../container/codec-string.ts';

/**
 * Parses an `avcC` payload (the box body, without its 8-byte header) with the container's parser,
 * reporting a malformed record as an argument error (this layer's policy) instead of a container error.
 */
export function parseAvcC(avcC: Uint8Array): AvcConfig {
  try {
    return parseAvcCRecord(avcC);
  } catch (error) {
    throw argumentError('avcC', `an AVCDecoderConfigurationRecord (${errorMessage(error)})`, `${avcC.length} bytes`);
  }
}

/**
 * The RFC 6381 codec string (`avc1.PPCCLL`) an `avcC` describes (taken from its SPS when present).
 * A malformed record, or one whose first parameter set is not an SPS, is an argument error.
 */
export function avcCodecString(avcC: Uint8Array): string {
  const sps = parseAvcC(avcC).sps[0];
  if (sps === undefined || sps.length < 4) return containerAvcCodecString(avcC);
  // The SPS is the stream's own truth (the encoder ignores the profile it was configured with).
  try {
    return avcCodecStringFromSps(sps);
  } catch (error) {
    throw argumentError('avcC', `an AVCDecoderConfigurationRecord (${errorMessage(error)})`, `${avcC.length} bytes`);
  }
}

/** NAL unit types of a length-prefixed access unit, in order; undefined when the framing is broken. */
export function nalTypes(accessUnit: Uint8Array, nalLengthSize = 4): number[] | undefined {
  const types: number[] = [];
  let offset = 0;
  while (offset < accessUnit.length) {
    if (offset + nalLengthSize > accessUnit.length) return undefined;
    let length = 0;
    for (let i = 0; i < nalLengthSize; i++) length = length * 256 + (accessUnit[offset + i] ?? 0);
    offset += nalLengthSize;
    if (length === 0 || offset + length > accessUnit.length) return undefined;
    types.push((accessUnit[offset] ?? 0) & 0x1f);
    offset += length;
  }
  return types;
}

/** True when a length-prefixed access unit contains an IDR slice (NAL type 5); undefined if unparsable. */
export function containsIdr(accessUnit: Uint8Array, nalLengthSize = 4): boolean | undefined {
  const types = nalTypes(accessUnit, nalLengthSize);
  return types === undefined ? undefined : types.includes(5);
}

// [level_idc, max macroblocks per frame, max macroblocks per second] (H.264 table A-1).
const LEVELS: ReadonlyArray<readonly [number, number, number]> = [
  [30, 1_620, 40_500],
  [31, 3_600, 108_000],
  [32, 5_120, 216_000],
  [40, 8_192, 245_760],
  [42, 8_704, 522_240],
  [50, 22_080, 589_824],
  [51, 36_864, 983_040],
  [52, 36_864, 2_073_600],
];

/** The smallest H.264 level (as `level_idc`, at least 3.0) that fits `width`x`height` at `framerate`. */
export function h264LevelIdc(width: number, height: number, framerate: number): number {
  const frameMbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  const rateMbs = frameMbs * Math.max(1, framerate);
  for (const [level, maxFrame, maxRate] of LEVELS) {
    if (frameMbs <= maxFrame && rateMbs <= maxRate) return level;
  }
  return 52;
}

/** A High-profile codec string for a size and frame rate, e.g. `avc1.64001f` for 720p30. */
export function highProfileCodec(width: number, height: number, framerate: number): string {
  return `avc1.6400${h264LevelIdc(width, height, framerate).toString(16).padStart(2, '0')}`;
}

/** Software H.264 encoders that sign their streams, with the text each writes into an SEI. */
const SOFTWARE_SIGNATURES: ReadonlyArray<readonly [name: string, text: string]> = [['libx264', 'x264 - core']];

/**
 * The software encoder that wrote a length-prefixed access unit, when it signs its streams (x264
 * writes its version and settings into a user-data SEI of the first keyframe); undefined when no
 * known signature is in its SEI NAL units. A hardware encoder writes no such SEI, so a
 * `prefer-hardware` encode that comes back signed by x264 was not served by hardware.
 */
export function softwareEncoderOf(accessUnit: Uint8Array, nalLengthSize = 4): string | undefined {
  let offset = 0;
  while (offset + nalLengthSize <= accessUnit.length) {
    let length = 0;
    for (let i = 0; i < nalLengthSize; i++) length = length * 256 + (accessUnit[offset + i] ?? 0);
    offset += nalLengthSize;
    if (length === 0 || offset + length > accessUnit.length) return undefined;
    if (((accessUnit[offset] ?? 0) & 0x1f) === 6) {
      const text = String.fromCharCode(...accessUnit.subarray(offset, offset + Math.min(length, 512)));
      for (const [name, signature] of SOFTWARE_SIGNATURES) if (text.includes(signature)) return name;
    }
    offset += length;
  }
  return undefined;
}
