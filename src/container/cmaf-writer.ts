/**
 * Single-track CMAF writer for rung output: init segments (`ftyp`+`moov`, track_ID 1, empty sample
 * tables, `mvex`/`trex`) and media segments (`moof`+`mdat` with `tfhd` default-base-is-moof,
 * `tfdt` v1 and explicit per-sample `trun` entries). Any number of samples per fragment, so a rung
 * can cut a fragment per frame. Bad arguments throw `TypeError`.
 */

import { concatBytes } from '../core/bytes.ts';
import { argumentError } from '../core/errors.ts';
import { box, fourcc, fullBox, u8, u16, u24, u32 } from './boxes.ts';
import { dOpsFromOpusHead, isOpusHead, parseAudioSpecificConfig, parseAvcC, parseDOps } from './codec-string.ts';

/** Options of a video init segment. */
export type VideoInitOptions = {
  /** Ticks per second of the track's timestamps. */
  timescale: number;
  /** Coded display width in pixels. */
  width: number;
  /** Coded display height in pixels. */
  height: number;
  /** `avcC` payload: the encoder's `decoderConfig.description`. */
  avcC: Uint8Array;
  /** Codec string or sample entry 4cc; a value starting with `avc3` selects an `avc3` entry, else `avc1`. */
  codec?: string;
  /** `trex` default sample duration in ticks (lets readers derive the frame rate); 0 when omitted. */
  defaultSampleDuration?: number;
};

/** Options of an audio init segment. */
export type AudioInitOptions = {
  /** Ticks per second of the track's timestamps (48000 for Opus). */
  timescale: number;
  sampleRate: number;
  channelCount: number;
  codec: 'aac' | 'opus';
  /** AudioSpecificConfig for AAC; a `dOps` payload or an `OpusHead` for Opus. */
  description: Uint8Array;
  /** Average bitrate written in the `esds` (AAC), 0 when omitted. */
  bitrateBps?: number;
};

/** One sample of a media segment. */
export type SegmentSample = {
  /** Sample bytes (for H.264: length-prefixed NAL units, as in the `avcC`). */
  data: Uint8Array;
  /** Duration in ticks. */
  duration: number;
  /** pts - dts in ticks (may be negative); 0 when omitted. */
  compositionOffset?: number;
  /** A sync sample (IDR); every audio sample is one. */
  keyframe: boolean;
};

/** Options of a media segment. */
export type MediaSegmentOptions = {
  /** `mfhd` sequence number (1, 2, ... per track). */
  sequenceNumber: number;
  /** Decode time of the first sample, in ticks. */
  baseMediaDecodeTime: number;
  samples: readonly SegmentSample[];
};

/** `trun` sample flags of a sync sample: sample_depends_on = 2 (does not depend on others). */
export const SYNC_SAMPLE_FLAGS = 0x0200_0000;
/** `trun` sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1. */
export const NON_SYNC_SAMPLE_FLAGS = 0x0101_0000;

/** The `ftyp` of every init segment this module writes: major `iso6`, compatible `iso6 cmfc mp41`. */
export function cmafFtyp(): Uint8Array<ArrayBuffer> {
  return box('ftyp', fourcc('iso6'), u32(0), fourcc('iso6'), fourcc('cmfc'), fourcc('mp41'));
}

const MATRIX = concatBytes([0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000].map(u32));

/** Builds `ftyp`+`moov` for one H.264 track with track_ID 1. */
export function buildVideoInitSegment(options: VideoInitOptions): Uint8Array<ArrayBuffer> {
  const { timescale, width, height, avcC } = options;
  checkPositiveInt('timescale', timescale);
  checkPositiveInt('width', width, 0xffff);
  checkPositiveInt('height', height, 0xffff);
  if (!(avcC instanceof Uint8Array)) throw argumentError('avcC', 'a Uint8Array (avcC payload)', avcC);
  try {
    parseAvcC(avcC);
  } catch (err) {
    throw argumentError('avcC', 'an AVCDecoderConfigurationRecord', err instanceof Error ? err.message : err);
  }
  const codec = options.codec ?? 'avc1';
  if (!codec.startsWith('avc1') && !codec.startsWith('avc3')) {
    throw argumentError('codec', "a codec string starting with 'avc1' or 'avc3'", codec);
  }
  const defaultDuration = options.defaultSampleDuration ?? 0;
  checkNonNegativeInt('defaultSampleDuration', defaultDuration);
  const entry = box(
    codec.startsWith('avc3') ? 'avc3' : 'avc1',
    new Uint8Array(6),
    u16(1), // data_reference_index
    new Uint8Array(16), // pre_defined, reserved, pre_defined[3]
    u16(width),
    u16(height),
    u32(0x0048_0000), // 72 dpi
    u32(0x0048_0000),
    u32(0),
    u16(1), // frame_count
    new Uint8Array(32), // compressorname
    u16(0x0018), // depth
    u16(0xffff), // pre_defined = -1
    box('avcC', avcC),
  );
  return initSegment({
    timescale,
    handler: 'vide',
    width,
    height,
    mediaHeader: fullBox('vmhd', 0, 1, new Uint8Array(8)),
    entry,
    defaultDuration,
  });
}

/** Builds `ftyp`+`moov` for one AAC (`mp4a`+`esds`) or Opus (`Opus`+`dOps`) track with track_ID 1. */
export function buildAudioInitSegment(options: AudioInitOptions): Uint8Array<ArrayBuffer> {
  const { timescale, sampleRate, channelCount, codec, description } = options;
  checkPositiveInt('timescale', timescale);
  checkPositiveInt('sampleRate', sampleRate);
  checkPositiveInt('channelCount', channelCount, 0xffff);
  if (!(description instanceof Uint8Array)) throw argumentError('description', 'a Uint8Array', description);
  const fields = [
    new Uint8Array(6),
    u16(1), // data_reference_index
    new Uint8Array(8),
    u16(channelCount),
    u16(16), // samplesize
    u16(0),
    u16(0),
    u32(sampleRate <= 0xffff ? sampleRate * 0x1_0000 : 0),
  ];
  let entry: Uint8Array;
  if (codec === 'aac') {
    try {
      parseAudioSpecificConfig(description);
    } catch (err) {
      throw argumentError('description', 'an AudioSpecificConfig', err instanceof Error ? err.message : err);
    }
    const bitrate = options.bitrateBps ?? 0;
    checkNonNegativeInt('bitrateBps', bitrate);
    const decoderConfig = descriptor(
      0x04,
      u8(0x40), // objectTypeIndication: MPEG-4 audio
      u8(0x15), // streamType audio (5) << 2 | reserved 1
      u24(0), // bufferSizeDB
      u32(bitrate), // maxBitrate
      u32(bitrate), // avgBitrate
      descriptor(0x05, description),
    );
    const es = descriptor(0x03, u16(0), u8(0), decoderConfig, descriptor(0x06, u8(0x02)));
    entry = box('mp4a', ...fields, fullBox('esds', 0, 0, es));
  } else if (codec === 'opus') {
    let dOps: Uint8Array;
    try {
      dOps = isOpusHead(description) ? dOpsFromOpusHead(description) : description;
      parseDOps(dOps);
    } catch (err) {
      throw argumentError('description', 'a dOps payload or an OpusHead', err instanceof Error ? err.message : err);
    }
    entry = box('Opus', ...fields, box('dOps', dOps));
  } else {
    throw argumentError('codec', "'aac' or 'opus'", codec);
  }
  return initSegment({
    timescale,
    handler: 'soun',
    width: 0,
    height: 0,
    mediaHeader: fullBox('smhd', 0, 0, new Uint8Array(4)),
    entry,
    defaultDuration: 0,
  });
}

type InitParts = {
  timescale: number;
  handler: 'vide' | 'soun';
  width: number;
  height: number;
  mediaHeader: Uint8Array;
  entry: Uint8Array;
  defaultDuration: number;
};

function initSegment(p: InitParts): Uint8Array<ArrayBuffer> {
  const mvhd = fullBox(
    'mvhd',
    0,
    0,
    u32(0), // creation_time
    u32(0), // modification_time
    u32(p.timescale),
    u32(0), // duration
    u32(0x0001_0000), // rate 1.0
    u16(0x0100), // volume 1.0
    new Uint8Array(10),
    MATRIX,
    new Uint8Array(24),
    u32(2), // next_track_ID
  );
  const tkhd = fullBox(
    'tkhd',
    0,
    3, // enabled | in_movie
    u32(0),
    u32(0),
    u32(1), // track_ID
    u32(0),
    u32(0), // duration
    new Uint8Array(8),
    u16(0), // layer
    u16(0), // alternate_group
    u16(p.handler === 'soun' ? 0x0100 : 0),
    u16(0),
    MATRIX,
    u32(p.width * 0x1_0000),
    u32(p.height * 0x1_0000),
  );
  const mdhd = fullBox('mdhd', 0, 0, u32(0), u32(0), u32(p.timescale), u32(0), u16(0x55c4 /* und */), u16(0));
  const name = p.handler === 'vide' ? 'VideoHandler' : 'SoundHandler';
  const hdlr = fullBox(
    'hdlr',
    0,
    0,
    u32(0),
    fourcc(p.handler),
    new Uint8Array(12),
    Uint8Array.from(`${name}\0`, (c) => c.charCodeAt(0)),
  );
  const dinf = box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1)));
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), p.entry),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0), u32(0)),
    fullBox('stco', 0, 0, u32(0)),
  );
  const trak = box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', p.mediaHeader, dinf, stbl)));
  const mvex = box('mvex', fullBox('trex', 0, 0, u32(1), u32(1), u32(p.defaultDuration), u32(0), u32(0)));
  return concatBytes([cmafFtyp(), box('moov', mvhd, trak, mvex)]);
}

/** MPEG-4 descriptor (tag + variable-length size). */
function descriptor(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concatBytes(parts);
  const n = body.length;
  const size: number[] = [];
  for (let shift = 21; shift > 0; shift -= 7) if (n >>> shift) size.push(((n >>> shift) & 0x7f) | 0x80);
  size.push(n & 0x7f);
  return concatBytes([Uint8Array.of(tag, ...size), body]);
}

/** Builds `moof`+`mdat` for one track (track_ID 1) holding `samples` in decode order. */
export function buildMediaSegment(options: MediaSegmentOptions): Uint8Array<ArrayBuffer> {
  const { sequenceNumber, baseMediaDecodeTime, samples } = options;
  checkNonNegativeInt('sequenceNumber', sequenceNumber, 0xffff_ffff);
  checkNonNegativeInt('baseMediaDecodeTime', baseMediaDecodeTime, Number.MAX_SAFE_INTEGER);
  if (!Array.isArray(samples) || samples.length === 0) throw argumentError('samples', 'a non-empty array', samples);
  const entries: MoofSample[] = samples.map((s, i) => {
    if (!(s.data instanceof Uint8Array)) throw argumentError(`samples[${i}].data`, 'a Uint8Array', s.data);
    checkNonNegativeInt(`samples[${i}].duration`, s.duration, 0xffff_ffff);
    const cto = s.compositionOffset ?? 0;
    if (!Number.isInteger(cto) || cto < -0x8000_0000 || cto > 0x7fff_ffff) {
      throw argumentError(`samples[${i}].compositionOffset`, 'a 32-bit signed integer', cto);
    }
    return {
      size: s.data.length,
      duration: s.duration,
      flags: s.keyframe ? SYNC_SAMPLE_FLAGS : NON_SYNC_SAMPLE_FLAGS,
      compositionOffset: cto,
    };
  });
  const { payload, dataOffset } = allocateFragment(sequenceNumber, baseMediaDecodeTime, entries, undefined);
  let at = dataOffset;
  for (const s of samples) {
    payload.set(s.data, at);
    at += s.data.length;
  }
  return payload;
}

/** One `trun` entry as written: every field explicit. */
export type MoofSample = {
  readonly size: number;
  readonly duration: number;
  readonly flags: number;
  readonly compositionOffset: number;
};

/**
 * Allocates a whole single-track `moof`+`mdat` (track_ID 1, default-base-is-moof, `tfdt` v1, one `trun`)
 * with the sample bytes left for the caller to copy at `dataOffset`, in `samples` order.
 * The `trun` entries start at `entriesOffset`, `entrySize` bytes each, the 32-bit duration first: a
 * caller that learns a duration later can write it there.
 */
export function allocateFragment(
  sequenceNumber: number,
  baseMediaDecodeTime: number,
  samples: readonly MoofSample[],
  sampleDescriptionIndex: number | undefined,
): { payload: Uint8Array<ArrayBuffer>; dataOffset: number; entriesOffset: number; entrySize: number } {
  let dataSize = 0;
  let hasCto = false;
  let negativeCto = false;
  let largeCto = false;
  for (const s of samples) {
    dataSize += s.size;
    if (s.compositionOffset !== 0) hasCto = true;
    if (s.compositionOffset < 0) negativeCto = true;
    if (s.compositionOffset > 0x7fff_ffff) largeCto = true;
  }
  if (negativeCto && largeCto) throw new RangeError('composition offsets fit neither trun version 0 nor 1');
  const perSample = hasCto ? 16 : 12;
  const tfhdFlags = 0x02_0000 | (sampleDescriptionIndex === undefined ? 0 : 0x02);
  const tfhdSize = 16 + (sampleDescriptionIndex === undefined ? 0 : 4);
  const tfdtSize = 20;
  const trunSize = 20 + perSample * samples.length;
  const trafSize = 8 + tfhdSize + tfdtSize + trunSize;
  const moofSize = 8 + 16 + trafSize;
  const mdatHeader = 8;
  const total = moofSize + mdatHeader + dataSize;
  if (moofSize + mdatHeader + dataSize > 0xffff_ffff) throw new RangeError(`fragment of ${total} bytes exceeds 4 GiB`);
  const payload = new Uint8Array(total);
  const v = new DataView(payload.buffer);
  let p = 0;
  const header = (size: number, type: string): void => {
    v.setUint32(p, size);
    for (let i = 0; i < 4; i++) payload[p + 4 + i] = type.charCodeAt(i);
    p += 8;
  };
  const full = (size: number, type: string, version: number, flags: number): void => {
    header(size, type);
    v.setUint32(p, ((version << 24) | flags) >>> 0);
    p += 4;
  };
  header(moofSize, 'moof');
  full(16, 'mfhd', 0, 0);
  v.setUint32(p, sequenceNumber >>> 0);
  p += 4;
  header(trafSize, 'traf');
  full(tfhdSize, 'tfhd', 0, tfhdFlags);
  v.setUint32(p, 1); // track_ID
  p += 4;
  if (sampleDescriptionIndex !== undefined) {
    v.setUint32(p, sampleDescriptionIndex);
    p += 4;
  }
  full(tfdtSize, 'tfdt', 1, 0);
  v.setUint32(p, Math.floor(baseMediaDecodeTime / 0x1_0000_0000));
  v.setUint32(p + 4, baseMediaDecodeTime >>> 0);
  p += 8;
  const trunFlags = 0x01 | 0x100 | 0x200 | 0x400 | (hasCto ? 0x800 : 0);
  full(trunSize, 'trun', largeCto ? 0 : 1, trunFlags);
  v.setUint32(p, samples.length);
  v.setInt32(p + 4, moofSize + mdatHeader); // data_offset from the moof start
  p += 8;
  const entriesOffset = p;
  for (const s of samples) {
    v.setUint32(p, s.duration);
    v.setUint32(p + 4, s.size);
    v.setUint32(p + 8, s.flags >>> 0);
    if (hasCto) {
      if (largeCto) v.setUint32(p + 12, s.compositionOffset);
      else v.setInt32(p + 12, s.compositionOffset);
    }
    p += perSample;
  }
  header(mdatHeader + dataSize, 'mdat');
  return { payload, dataOffset: p, entriesOffset, entrySize: perSample };
}

function checkPositiveInt(name: string, value: number, max = 0xffff_ffff): void {
  if (!Number.isInteger(value) || value <= 0 || value > max) {
    throw argumentError(name, `an integer in 1..${max}`, value);
  }
}

function checkNonNegativeInt(name: string, value: number, max = 0xffff_ffff): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw argumentError(name, `an integer in 0..${max}`, value);
  }
}
