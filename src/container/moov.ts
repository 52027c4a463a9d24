/**
 * Reads a `moov`: per audio/video `trak`, the codec (RFC 6381 string and decoder configuration),
 * picture or audio parameters, timescale and `trex` defaults; and cuts single-track CMAF init
 * segments out of it (track_ID rewritten to 1).
 */

import { concatBytes } from '../core/bytes.ts';
import { ContainerError, errorMessage } from '../core/errors.ts';
import {
  type Box,
  type BoxBudget,
  ByteReader,
  box,
  boxBudget,
  children,
  findChild,
  fullBox,
  fullBoxHeader,
  malformed,
  requireChild,
  u32,
} from './boxes.ts';
import { cmafFtyp } from './cmaf-writer.ts';
import {
  aacCodecString,
  avcCodecString,
  hevcCodecString,
  OPUS_CODEC_STRING,
  parseAudioSpecificConfig,
  parseAvcC,
  parseDOps,
  parseSps,
} from './codec-string.ts';
import type { SampleDefaults } from './moof.ts';

/** What an init segment says about one audio or video track. */
export type TrackInfo = {
  kind: 'video' | 'audio';
  /** track_ID in the source `moov`. */
  mp4TrackId: number;
  /** RFC 6381 codec string when `supported`, else the sample entry 4cc (e.g. `vp09`, `mp4a.6b`). */
  codec: string;
  /** True for avc1/avc3/hvc1/hev1, mp4a with AAC (object type 0x40) and Opus, with a readable configuration. */
  supported: boolean;
  /** Why the track is not supported (absent when it is). */
  unsupportedReason?: string;
  /** Sample entry four-character code. */
  sampleEntry: string;
  /** Ticks per second (`mdhd`). */
  timescale: number;
  width?: number;
  height?: number;
  /** Frames per second when the init says (a `trex` or single `stts` default duration), else undefined. */
  frameRate?: number;
  sampleRate?: number;
  channelCount?: number;
  /** avcC/hvcC payload (no box header), AudioSpecificConfig, or `dOps` payload (a copy). */
  description?: Uint8Array;
  /** `trex` defaults (zeros when the init has none for the track). */
  defaults: SampleDefaults;
};

/** A parsed `moov`: the audio/video tracks in file order and the raw pieces needed to split it. */
export type ParsedMoov = {
  readonly tracks: Array<{ info: TrackInfo; trak: Box; trex: Box | undefined }>;
  /** `trex` defaults of every track id in the moov, audio/video or not. */
  readonly defaults: Map<number, SampleDefaults>;
  readonly mvhd: Box;
  /** `pssh` boxes to carry into split inits. */
  readonly pssh: Box[];
};

const ZERO_DEFAULTS: SampleDefaults = { sampleDescriptionIndex: 0, duration: 0, size: 0, flags: 0 };

/** Parses a whole `moov` box (at most `MAX_BOXES_PER_PARSE` boxes in all). */
export function parseMoov(moov: Box): ParsedMoov {
  const budget = boxBudget();
  const top = children(moov, 0, budget);
  const mvhd = requireChild(top, 'mvhd', 'moov');
  const defaults = new Map<number, SampleDefaults>();
  const trexById = new Map<number, Box>();
  const mvex = findChild(top, 'mvex');
  if (mvex !== undefined) {
    for (const trex of children(mvex, 0, budget)) {
      if (trex.type !== 'trex') continue;
      const r = new ByteReader(trex.body, 'trex', 4);
      const trackId = r.u32();
      defaults.set(trackId, { sampleDescriptionIndex: r.u32(), duration: r.u32(), size: r.u32(), flags: r.u32() });
      trexById.set(trackId, trex);
    }
  }
  const tracks: ParsedMoov['tracks'] = [];
  for (const trak of top) {
    if (trak.type !== 'trak') continue;
    const info = parseTrak(trak, defaults, budget);
    if (info !== undefined) tracks.push({ info, trak, trex: trexById.get(info.mp4TrackId) });
  }
  return { tracks, defaults, mvhd, pssh: top.filter((b) => b.type === 'pssh') };
}

function parseTrak(trak: Box, defaults: Map<number, SampleDefaults>, budget: BoxBudget): TrackInfo | undefined {
  const parts = children(trak, 0, budget);
  const tkhd = requireChild(parts, 'tkhd', 'trak');
  const { version: tkhdVersion } = fullBoxHeader(tkhd.body, 'tkhd');
  const mp4TrackId = new ByteReader(tkhd.body, 'tkhd', tkhdVersion === 1 ? 20 : 12).u32();
  const mdia = children(requireChild(parts, 'mdia', 'trak'), 0, budget);
  const mdhd = requireChild(mdia, 'mdhd', 'mdia');
  const { version: mdhdVersion } = fullBoxHeader(mdhd.body, 'mdhd');
  const timescale = new ByteReader(mdhd.body, 'mdhd', mdhdVersion === 1 ? 20 : 12).u32();
  const handler = new ByteReader(requireChild(mdia, 'hdlr', 'mdia').body, 'hdlr', 8).fourcc();
  if (handler !== 'vide' && handler !== 'soun') return undefined;
  if (timescale === 0) malformed(`track ${mp4TrackId}: mdhd timescale is 0`);
  const minf = children(requireChild(mdia, 'minf', 'mdia'), 0, budget);
  const stbl = children(requireChild(minf, 'stbl', 'minf'), 0, budget);
  const stsd = requireChild(stbl, 'stsd', 'stbl');
  const entries = children(stsd, 8, budget);
  const entry = entries[0];
  if (entry === undefined) malformed(`track ${mp4TrackId}: stsd has no sample entry`);
  const trackDefaults = defaults.get(mp4TrackId) ?? ZERO_DEFAULTS;
  const base = { mp4TrackId, timescale, sampleEntry: entry.type, defaults: trackDefaults };
  if (handler === 'vide') {
    const info: TrackInfo = { kind: 'video', ...base, ...readVideoEntry(entry, budget) };
    const duration = trackDefaults.duration || singleSttsDelta(stbl);
    if (duration > 0) info.frameRate = roundRate(timescale / duration);
    return info;
  }
  return { kind: 'audio', ...base, ...readAudioEntry(entry, budget) };
}

type EntryInfo = Pick<
  TrackInfo,
  'codec' | 'supported' | 'unsupportedReason' | 'width' | 'height' | 'sampleRate' | 'channelCount' | 'description'
>;

/** Rounds a rate to 3 decimals (29.97, 23.976). */
export function roundRate(rate: number): number {
  return Math.round(rate * 1000) / 1000;
}

function singleSttsDelta(stbl: Box[]): number {
  const stts = findChild(stbl, 'stts');
  if (stts === undefined || stts.body.length < 16) return 0;
  const r = new ByteReader(stts.body, 'stts', 4);
  if (r.u32() !== 1) return 0;
  r.u32(); // sample_count
  return r.u32();
}

function unsupported(codec: string, reason: string, extra: Partial<EntryInfo> = {}): EntryInfo {
  return { ...extra, codec, supported: false, unsupportedReason: reason };
}

function readVideoEntry(entry: Box, budget: BoxBudget): EntryInfo {
  const r = new ByteReader(entry.body, `${entry.type} sample entry`, 24);
  const entryWidth = r.u16();
  const entryHeight = r.u16();
  const size = { width: entryWidth, height: entryHeight };
  const type = entry.type;
  if (type !== 'avc1' && type !== 'avc3' && type !== 'hvc1' && type !== 'hev1') {
    return unsupported(type, `video sample entry '${type}' is not H.264 or H.265`, size);
  }
  const boxes = children(entry, 78, budget);
  if (type === 'avc1' || type === 'avc3') {
    const avcC = findChild(boxes, 'avcC');
    if (avcC === undefined) return unsupported(type, `'${type}' sample entry has no avcC`, size);
    try {
      const codec = avcCodecString(avcC.body, type);
      const config = parseAvcC(avcC.body);
      const sps = config.sps[0];
      const pictureSize = sps === undefined ? size : pictureSizeFromSps(sps, size);
      return { codec, supported: true, ...pictureSize, description: avcC.body.slice() };
    } catch (err) {
      return unsupported(type, `unreadable avcC: ${errorMessage(err)}`, size);
    }
  }
  const hvcC = findChild(boxes, 'hvcC');
  if (hvcC === undefined) return unsupported(type, `'${type}' sample entry has no hvcC`, size);
  try {
    return { codec: hevcCodecString(hvcC.body, type), supported: true, ...size, description: hvcC.body.slice() };
  } catch (err) {
    return unsupported(type, `unreadable hvcC: ${errorMessage(err)}`, size);
  }
}

function pictureSizeFromSps(sps: Uint8Array, fallback: { width: number; height: number }) {
  try {
    const info = parseSps(sps);
    return { width: info.width, height: info.height };
  } catch {
    return fallback;
  }
}

function readAudioEntry(entry: Box, budget: BoxBudget): EntryInfo {
  const r = new ByteReader(entry.body, `${entry.type} sample entry`, 8);
  const qtVersion = r.u16();
  r.skip(6);
  const entryChannels = r.u16();
  r.skip(6); // samplesize, pre_defined, reserved
  const entryRate = r.u32() >>> 16;
  const extra = qtVersion === 1 ? 16 : qtVersion === 2 ? 36 : 0;
  const basics = { sampleRate: entryRate, channelCount: entryChannels };
  const type = entry.type;
  if (type !== 'mp4a' && type !== 'Opus') {
    return unsupported(type, `audio sample entry '${type}' is not AAC or Opus`, basics);
  }
  const boxes = children(entry, 28 + extra, budget);
  if (type === 'Opus') {
    const dOps = findChild(boxes, 'dOps');
    if (dOps === undefined) return unsupported(type, "'Opus' sample entry has no dOps", basics);
    try {
      const c = parseDOps(dOps.body);
      return {
        codec: OPUS_CODEC_STRING,
        supported: true,
        sampleRate: entryRate || 48000,
        channelCount: c.channelCount,
        description: dOps.body.slice(),
      };
    } catch (err) {
      return unsupported(type, `unreadable dOps: ${errorMessage(err)}`, basics);
    }
  }
  const esds = findChild(boxes, 'esds');
  if (esds === undefined) return unsupported(type, "'mp4a' sample entry has no esds", basics);
  let decoder: { objectTypeIndication: number; specificInfo: Uint8Array | undefined };
  try {
    decoder = readEsds(esds.body);
  } catch (err) {
    return unsupported(type, `unreadable esds: ${errorMessage(err)}`, basics);
  }
  const oti = decoder.objectTypeIndication;
  if (oti !== 0x40) {
    return unsupported(
      `mp4a.${oti.toString(16).padStart(2, '0')}`,
      `mp4a object type 0x${oti.toString(16)} is not MPEG-4 audio`,
      basics,
    );
  }
  if (decoder.specificInfo === undefined) return unsupported(type, 'esds has no AudioSpecificConfig', basics);
  try {
    const asc = parseAudioSpecificConfig(decoder.specificInfo);
    return {
      codec: aacCodecString(decoder.specificInfo),
      supported: true,
      sampleRate: asc.sampleRate,
      channelCount: asc.channelConfiguration || entryChannels,
      description: decoder.specificInfo.slice(),
    };
  } catch (err) {
    return unsupported(type, `unreadable AudioSpecificConfig: ${errorMessage(err)}`, basics);
  }
}

/** Reads the object type and DecoderSpecificInfo of an `esds` body (full box). */
function readEsds(body: Uint8Array): { objectTypeIndication: number; specificInfo: Uint8Array | undefined } {
  const r = new ByteReader(body, 'esds', 4);
  const descriptorHeader = (): { tag: number; size: number } => {
    const tag = r.u8();
    let size = 0;
    for (let i = 0; i < 4; i++) {
      const b = r.u8();
      size = (size << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return { tag, size };
  };
  const es = descriptorHeader();
  if (es.tag !== 0x03) malformed(`esds: expected ES_Descriptor (tag 3), got tag ${es.tag}`);
  r.skip(2); // ES_ID
  const esFlags = r.u8();
  if (esFlags & 0x80) r.skip(2);
  if (esFlags & 0x40) r.skip(r.u8());
  if (esFlags & 0x20) r.skip(2);
  const dc = descriptorHeader();
  if (dc.tag !== 0x04) malformed(`esds: expected DecoderConfigDescriptor (tag 4), got tag ${dc.tag}`);
  const dcEnd = r.pos + dc.size;
  const objectTypeIndication = r.u8();
  r.skip(12); // streamType, bufferSizeDB, maxBitrate, avgBitrate
  let specificInfo: Uint8Array | undefined;
  if (r.pos + 2 <= Math.min(dcEnd, body.length)) {
    const dsi = descriptorHeader();
    if (dsi.tag === 0x05) specificInfo = r.view(dsi.size);
  }
  return { objectTypeIndication, specificInfo };
}

/**
 * Cuts a single-track CMAF init (`ftyp` + `moov` with `mvhd`, this `trak` without `tref`, and
 * `mvex` with only its `trex`) out of a parsed moov, with the track renumbered to track_ID 1.
 */
export function singleTrackInit(moov: ParsedMoov, track: ParsedMoov['tracks'][number]): Uint8Array {
  const mvhd = withExplicitSize(moov.mvhd.bytes.slice());
  if (mvhd.length < 12) malformed('mvhd is too short');
  mvhd.set(u32(2), mvhd.length - 4); // next_track_ID
  const trakParts = children(track.trak)
    .filter((b) => b.type !== 'tref')
    .map((b) => withExplicitSize(b.type === 'tkhd' ? withTrackId(b, b.body[0] === 1 ? 20 : 12) : b.bytes));
  const d = track.info.defaults;
  const trex =
    track.trex === undefined
      ? fullBox('trex', 0, 0, u32(1), u32(d.sampleDescriptionIndex || 1), u32(d.duration), u32(d.size), u32(d.flags))
      : withExplicitSize(withTrackId(track.trex, 4));
  const pssh = moov.pssh.map((b) => withExplicitSize(b.bytes));
  const moovBox = box('moov', mvhd, box('trak', ...trakParts), ...pssh, box('mvex', trex));
  return concatBytes([cmafFtyp(), moovBox]);
}

/**
 * The box with its size written out when its size field is 0 ("to the end of the parent"): once
 * copied elsewhere in a new parent, it would swallow the boxes after it. Returns a copy only then.
 */
function withExplicitSize(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 8 || bytes[0]! | bytes[1]! | bytes[2]! | bytes[3]!) return bytes;
  const copy = bytes.slice();
  copy.set(u32(copy.length), 0);
  return copy;
}

/** A copy of a full box with its track_ID (at `bodyOffset` in the body) set to 1. */
function withTrackId(b: Box, bodyOffset: number): Uint8Array {
  const copy = b.bytes.slice();
  const at = b.headerSize + bodyOffset;
  if (at + 4 > copy.length) malformed(`'${b.type}' is too short for a track_ID`);
  copy.set(u32(1), at);
  return copy;
}

/** Throws `ingest.no_tracks` unless the moov has an audio or video track. */
export function requireTracks(moov: ParsedMoov): void {
  if (moov.tracks.length === 0) {
    throw new ContainerError('ingest.no_tracks', 'the init segment has neither a video nor an audio track');
  }
}
