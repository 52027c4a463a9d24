/**
 * RFC 6381 codec strings from decoder configuration records (avcC, hvcC, AudioSpecificConfig, dOps),
 * plus the avcC and H.264 SPS parsers they need. Malformed input throws
 * `ContainerError('ingest.malformed_box')`.
 */

import { BitReader, unescapeRbsp } from './bit-reader.ts';
import { ByteReader, malformed } from './boxes.ts';

/**
 * The fields of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 `avcC` payload) that users need;
 * the one parsed form of an `avcC`, for the container and the codec layer alike.
 */
export type AvcConfig = {
  /** AVCProfileIndication (e.g. 100 = High). */
  readonly profileIdc: number;
  /** profile_compatibility (the constraint_set flags byte). */
  readonly profileCompatibility: number;
  /** AVCLevelIndication (e.g. 31 = level 3.1). */
  readonly levelIdc: number;
  /** Sequence parameter set NAL units, each with its NAL header byte. */
  readonly sps: Uint8Array[];
  /** Picture parameter set NAL units. */
  readonly pps: Uint8Array[];
  /** Bytes of the NAL unit length prefix in samples (1, 2 or 4). */
  readonly nalLengthSize: number;
};

/** What the H.264 SPS says about the picture. */
export type SpsInfo = {
  readonly profileIdc: number;
  readonly constraintFlags: number;
  readonly levelIdc: number;
  readonly chromaFormatIdc: number;
  readonly bitDepthLuma: number;
  readonly bitDepthChroma: number;
  readonly frameMbsOnly: boolean;
  /** Display width in pixels after frame cropping. */
  readonly width: number;
  /** Display height in pixels after frame cropping. */
  readonly height: number;
};

/** The fields of an HEVCDecoderConfigurationRecord (`hvcC` payload) used by the codec string. */
export type HevcConfig = {
  readonly profileSpace: number;
  readonly tierFlag: number;
  readonly profileIdc: number;
  readonly profileCompatibilityFlags: number;
  /** The 6 bytes of general_constraint_indicator_flags. */
  readonly constraintIndicatorFlags: Uint8Array;
  readonly levelIdc: number;
  /** Bytes of the NAL unit length prefix in samples. */
  readonly nalLengthSize: number;
};

/** The fields of an MPEG-4 AudioSpecificConfig that users need. */
export type AudioSpecificConfig = {
  /** Audio object type (2 = AAC-LC, 5 = SBR, 29 = PS; values above 31 use the escape). */
  readonly objectType: number;
  /** Output sample rate in Hz (the SBR extension rate when signalled explicitly). */
  readonly sampleRate: number;
  /** channel_configuration (0 = defined in the program config element). */
  readonly channelConfiguration: number;
};

/** Parses an `avcC` payload (no box header). */
export function parseAvcC(avcC: Uint8Array): AvcConfig {
  const r = new ByteReader(avcC, 'avcC');
  const version = r.u8();
  if (version !== 1) malformed(`avcC: configurationVersion is ${version}, expected 1`);
  const profileIdc = r.u8();
  const profileCompatibility = r.u8();
  const levelIdc = r.u8();
  const nalLengthSize = (r.u8() & 0x03) + 1;
  if (nalLengthSize === 3) malformed('avcC: NAL length size 3 is not allowed');
  const spsCount = r.u8() & 0x1f;
  const sps: Uint8Array[] = [];
  for (let i = 0; i < spsCount; i++) sps.push(r.view(r.u16()));
  const ppsCount = r.u8();
  const pps: Uint8Array[] = [];
  for (let i = 0; i < ppsCount; i++) pps.push(r.view(r.u16()));
  return { profileIdc, profileCompatibility, levelIdc, sps, pps, nalLengthSize };
}

/** `avc1.PPCCLL` (lowercase hex) from an `avcC` payload; `fourcc` may be `avc3`. */
export function avcCodecString(avcC: Uint8Array, fourcc: 'avc1' | 'avc3' = 'avc1'): string {
  const c = parseAvcC(avcC);
  return avcCodec(fourcc, c.profileIdc, c.profileCompatibility, c.levelIdc);
}

/** `avc1.PPCCLL` from an SPS NAL unit (with its NAL header byte). */
export function avcCodecStringFromSps(sps: Uint8Array, fourcc: 'avc1' | 'avc3' = 'avc1'): string {
  const rbsp = unescapeRbsp(sps);
  if (rbsp.length < 4) malformed(`SPS is too short (${rbsp.length} bytes)`);
  if ((rbsp[0]! & 0x1f) !== 7) malformed(`NAL unit type ${rbsp[0]! & 0x1f} is not an SPS (7)`);
  return avcCodec(fourcc, rbsp[1]!, rbsp[2]!, rbsp[3]!);
}

/** The one `avc1.PPCCLL` builder: profile_idc, the constraint flags byte and level_idc in lowercase hex. */
function avcCodec(fourcc: 'avc1' | 'avc3', profileIdc: number, compatibility: number, levelIdc: number): string {
  return `${fourcc}.${hex2(profileIdc)}${hex2(compatibility)}${hex2(levelIdc)}`;
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** MaxFS of the largest H.264 level (6.2), in macroblocks (Table A-1). */
const MAX_FRAME_MBS = 139_264;
/** Largest picture width or height in macroblocks at any level: Sqrt(MaxFS * 8) (A.3.1 f, g). */
const MAX_SIDE_MBS = Math.floor(Math.sqrt(MAX_FRAME_MBS * 8));

/** Parses an H.264 SPS NAL unit (with its NAL header byte) up to the frame cropping, giving the picture size. */
export function parseSps(sps: Uint8Array): SpsInfo {
  const rbsp = unescapeRbsp(sps);
  const r = new BitReader(rbsp, 'SPS');
  r.skip(1); // forbidden_zero_bit
  r.skip(2); // nal_ref_idc
  const nalType = r.bits(5);
  if (nalType !== 7) malformed(`NAL unit type ${nalType} is not an SPS (7)`);
  const profileIdc = r.bits(8);
  const constraintFlags = r.bits(8);
  const levelIdc = r.bits(8);
  r.ue(); // seq_parameter_set_id
  let chromaFormatIdc = 1;
  let separateColourPlane = false;
  let bitDepthLuma = 8;
  let bitDepthChroma = 8;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ue();
    if (chromaFormatIdc > 3) malformed(`SPS: chroma_format_idc ${chromaFormatIdc} is out of range`);
    if (chromaFormatIdc === 3) separateColourPlane = r.flag();
    bitDepthLuma = r.ue() + 8;
    bitDepthChroma = r.ue() + 8;
    r.skip(1); // qpprime_y_zero_transform_bypass_flag
    if (r.flag()) {
      const lists = chromaFormatIdc === 3 ? 12 : 8;
      for (let i = 0; i < lists; i++) {
        if (r.flag()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue(); // log2_max_pic_order_cnt_lsb_minus4
  } else if (pocType === 1) {
    r.skip(1); // delta_pic_order_always_zero_flag
    r.se(); // offset_for_non_ref_pic
    r.se(); // offset_for_top_to_bottom_field
    const cycle = r.ue();
    if (cycle > 255) malformed(`SPS: num_ref_frames_in_pic_order_cnt_cycle ${cycle} exceeds 255`);
    for (let i = 0; i < cycle; i++) r.se();
  } else if (pocType !== 2) {
    malformed(`SPS: pic_order_cnt_type ${pocType} is out of range`);
  }
  r.ue(); // max_num_ref_frames
  r.skip(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  const frameMbsOnly = r.flag();
  const frameHeightMbs = (frameMbsOnly ? 1 : 2) * heightMapUnits;
  if (widthMbs > MAX_SIDE_MBS || frameHeightMbs > MAX_SIDE_MBS || widthMbs * frameHeightMbs > MAX_FRAME_MBS) {
    malformed(`SPS: a ${widthMbs}x${frameHeightMbs}-macroblock picture exceeds every H.264 level`);
  }
  if (!frameMbsOnly) r.skip(1); // mb_adaptive_frame_field_flag
  r.skip(1); // direct_8x8_inference_flag
  let cropLeft = 0;
  let cropRight = 0;
  let cropTop = 0;
  let cropBottom = 0;
  if (r.flag()) {
    cropLeft = r.ue();
    cropRight = r.ue();
    cropTop = r.ue();
    cropBottom = r.ue();
  }
  const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const subWidthC = chromaArrayType === 3 ? 1 : 2;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (frameMbsOnly ? 1 : 2);
  const width = widthMbs * 16 - cropUnitX * (cropLeft + cropRight);
  const height = (frameMbsOnly ? 1 : 2) * heightMapUnits * 16 - cropUnitY * (cropTop + cropBottom);
  if (width <= 0 || height <= 0) malformed(`SPS: frame cropping leaves a ${width}x${height} picture`);
  return {
    profileIdc,
    constraintFlags,
    levelIdc,
    chromaFormatIdc,
    bitDepthLuma,
    bitDepthChroma,
    frameMbsOnly,
    width,
    height,
  };
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) {
      const delta = r.se();
      next = (last + delta + 256) % 256;
    }
    last = next === 0 ? last : next;
  }
}

/** Parses the fixed head of an `hvcC` payload (no box header). */
export function parseHvcC(hvcC: Uint8Array): HevcConfig {
  const r = new ByteReader(hvcC, 'hvcC');
  const version = r.u8();
  if (version !== 1) malformed(`hvcC: configurationVersion is ${version}, expected 1`);
  const b = r.u8();
  const profileCompatibilityFlags = r.u32();
  const constraintIndicatorFlags = r.view(6);
  const levelIdc = r.u8();
  r.skip(2 + 1 + 1 + 1 + 1 + 2); // segmentation, parallelism, chroma, bit depths, avgFrameRate
  const nalLengthSize = (r.u8() & 0x03) + 1;
  return {
    profileSpace: b >>> 6,
    tierFlag: (b >>> 5) & 1,
    profileIdc: b & 0x1f,
    profileCompatibilityFlags,
    constraintIndicatorFlags,
    levelIdc,
    nalLengthSize,
  };
}

/**
 * `hvc1.<space><profile>.<compat>.<tier><level>[.<constraint bytes>]` per ISO/IEC 14496-15 Annex E:
 * compatibility flags bit-reversed in hex, tier `L`/`H`, constraint bytes in hex with trailing zero
 * bytes omitted. `fourcc` may be `hev1`.
 */
export function hevcCodecString(hvcC: Uint8Array, fourcc: 'hvc1' | 'hev1' = 'hvc1'): string {
  const c = parseHvcC(hvcC);
  const space = ['', 'A', 'B', 'C'][c.profileSpace] ?? '';
  let reversed = 0;
  for (let i = 0; i < 32; i++) {
    if ((c.profileCompatibilityFlags >>> i) & 1) reversed |= 1 << (31 - i);
  }
  const compat = (reversed >>> 0).toString(16).toUpperCase();
  const tier = c.tierFlag === 1 ? 'H' : 'L';
  const bytes = Array.from(c.constraintIndicatorFlags);
  while (bytes.length > 0 && bytes[bytes.length - 1] === 0) bytes.pop();
  const constraints = bytes.map((x) => `.${x.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  return `${fourcc}.${space}${c.profileIdc}.${compat}.${tier}${c.levelIdc}${constraints}`;
}

const AAC_SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** Parses an MPEG-4 AudioSpecificConfig (including the 5-bit escape for object types above 30). */
export function parseAudioSpecificConfig(asc: Uint8Array): AudioSpecificConfig {
  const r = new BitReader(asc, 'AudioSpecificConfig');
  const readObjectType = (): number => {
    const aot = r.bits(5);
    return aot === 31 ? 32 + r.bits(6) : aot;
  };
  const readRate = (): number => {
    const index = r.bits(4);
    if (index === 15) return r.bits(24);
    const rate = AAC_SAMPLE_RATES[index];
    if (rate === undefined) malformed(`AudioSpecificConfig: sampling frequency index ${index} is reserved`);
    return rate;
  };
  const objectType = readObjectType();
  if (objectType === 0) malformed('AudioSpecificConfig: audio object type 0 is invalid');
  let sampleRate = readRate();
  const channelConfiguration = r.bits(4);
  if ((objectType === 5 || objectType === 29) && r.remaining >= 4) sampleRate = readRate();
  return { objectType, sampleRate, channelConfiguration };
}

/** `mp4a.40.<object type>` from an AudioSpecificConfig. */
export function aacCodecString(asc: Uint8Array): string {
  return `mp4a.40.${parseAudioSpecificConfig(asc).objectType}`;
}

/** The codec string of Opus in MP4 (RFC 6381 registry). */
export const OPUS_CODEC_STRING = 'opus';

/** Fields of an Opus `dOps` payload. */
export type OpusConfig = {
  readonly channelCount: number;
  readonly preSkip: number;
  readonly inputSampleRate: number;
  readonly outputGain: number;
  readonly channelMappingFamily: number;
  /** StreamCount, CoupledCount and the mapping, present when the family is not 0. */
  readonly mappingTable: Uint8Array | undefined;
};

/** Parses a `dOps` payload (Opus in ISOBMFF, big-endian). */
export function parseDOps(dOps: Uint8Array): OpusConfig {
  const r = new ByteReader(dOps, 'dOps');
  const version = r.u8();
  if (version !== 0) malformed(`dOps: version is ${version}, expected 0`);
  const channelCount = r.u8();
  const preSkip = r.u16();
  const inputSampleRate = r.u32();
  const gain = r.u16();
  const channelMappingFamily = r.u8();
  const mappingTable = channelMappingFamily === 0 ? undefined : r.view(2 + channelCount);
  return {
    channelCount,
    preSkip,
    inputSampleRate,
    outputGain: gain >= 0x8000 ? gain - 0x10000 : gain,
    channelMappingFamily,
    mappingTable,
  };
}

const OPUS_HEAD_MAGIC = 'OpusHead';

/** True when `bytes` start with the `OpusHead` magic (an RFC 7845 identification header). */
export function isOpusHead(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== OPUS_HEAD_MAGIC.charCodeAt(i)) return false;
  return true;
}

/** Converts an RFC 7845 `OpusHead` (little-endian, what WebCodecs takes as description) to a `dOps` payload. */
export function dOpsFromOpusHead(head: Uint8Array): Uint8Array {
  if (!isOpusHead(head) || head.length < 19) malformed('OpusHead: missing magic or shorter than 19 bytes');
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const channelCount = head[9]!;
  const family = head[18]!;
  const tableLength = family === 0 ? 0 : 2 + channelCount;
  if (head.length < 19 + tableLength) malformed('OpusHead: channel mapping table is truncated');
  const out = new Uint8Array(11 + tableLength);
  const o = new DataView(out.buffer);
  o.setUint8(0, 0);
  o.setUint8(1, channelCount);
  o.setUint16(2, v.getUint16(10, true));
  o.setUint32(4, v.getUint32(12, true));
  o.setInt16(8, v.getInt16(16, true));
  o.setUint8(10, family);
  out.set(head.subarray(19, 19 + tableLength), 11);
  return out;
}

/** Converts a `dOps` payload to an RFC 7845 `OpusHead` (what WebCodecs `AudioDecoder` takes as description). */
export function opusHeadFromDOps(dOps: Uint8Array): Uint8Array {
  const c = parseDOps(dOps);
  const tableLength = c.mappingTable?.length ?? 0;
  const out = new Uint8Array(19 + tableLength);
  const o = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = OPUS_HEAD_MAGIC.charCodeAt(i);
  o.setUint8(8, 1);
  o.setUint8(9, c.channelCount);
  o.setUint16(10, c.preSkip, true);
  o.setUint32(12, c.inputSampleRate, true);
  o.setInt16(16, c.outputGain, true);
  o.setUint8(18, c.channelMappingFamily);
  if (c.mappingTable !== undefined) out.set(c.mappingTable, 19);
  return out;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
