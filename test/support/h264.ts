/**
 * H.264 test input made with ffmpeg only (no code under test): an MP4 encode gives sample times
 * (ffprobe), the same packets copied to Annex B give the bytes; we split them into access units,
 * convert to length-prefixed NALs and build the avcC from the SPS/PPS ourselves.
 */

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MAX_BUFFER = 512 * 1024 * 1024;

/** One access unit in decode order, with times in microseconds. */
export type H264TestSample = {
  data: Uint8Array;
  timestampUs: number;
  durationUs: number;
  decodeTimestampUs: number;
  keyframe: boolean;
};

/** A ready-to-decode H.264 stream. */
export type H264TestStream = {
  codec: string;
  description: Uint8Array;
  width: number;
  height: number;
  fps: number;
  samples: H264TestSample[];
};

/** Options of `makeH264Stream`. */
export type H264StreamOptions = {
  width: number;
  height: number;
  frames: number;
  fps?: number;
  gop?: number;
  bframes?: number;
};

/** NAL unit payloads (header byte first) of an Annex B byte stream. */
export function splitAnnexB(data: Uint8Array): Uint8Array[] {
  const starts: number[] = [];
  for (let i = 0; i + 2 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      starts.push(i + 3);
      i += 2;
    }
  }
  const nals: Uint8Array[] = [];
  for (let k = 0; k < starts.length; k++) {
    const start = starts[k] as number;
    let end = k + 1 < starts.length ? (starts[k + 1] as number) - 3 : data.length;
    while (end > start && data[end - 1] === 0) end--;
    if (end > start) nals.push(data.subarray(start, end));
  }
  return nals;
}

/** Groups NAL units into access units (a new one starts at AUD/SEI/SPS/PPS or first_mb_in_slice 0 after a slice). */
export function accessUnits(nals: Uint8Array[]): Uint8Array[][] {
  const units: Uint8Array[][] = [];
  let current: Uint8Array[] | undefined;
  let hasSlice = false;
  for (const nal of nals) {
    const type = (nal[0] ?? 0) & 0x1f;
    const slice = type === 1 || type === 5;
    const firstMbZero = slice && ((nal[1] ?? 0) & 0x80) !== 0;
    const startsNew = (hasSlice && (type === 6 || type === 7 || type === 8 || type === 9)) || (hasSlice && firstMbZero);
    if (current === undefined || startsNew) {
      current = [];
      units.push(current);
      hasSlice = false;
    }
    current.push(nal);
    if (slice) hasSlice = true;
  }
  return units;
}

/** Concatenates NAL units with 4-byte big-endian length prefixes. */
export function toLengthPrefixed(nals: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(nals.reduce((sum, nal) => sum + 4 + nal.length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const nal of nals) {
    view.setUint32(offset, nal.length);
    out.set(nal, offset + 4);
    offset += 4 + nal.length;
  }
  return out;
}

/** An avcC payload (AVCDecoderConfigurationRecord, 4-byte NAL lengths) from one SPS and one PPS. */
export function avcCFromParameterSets(sps: Uint8Array, pps: Uint8Array): Uint8Array {
  return new Uint8Array([
    1,
    sps[1] ?? 0,
    sps[2] ?? 0,
    sps[3] ?? 0,
    0xff,
    0xe1,
    sps.length >> 8,
    sps.length & 0xff,
    ...sps,
    1,
    pps.length >> 8,
    pps.length & 0xff,
    ...pps,
  ]);
}

/** NAL types of a length-prefixed access unit (4-byte lengths). */
export function lengthPrefixedNalTypes(data: Uint8Array): number[] {
  const types: number[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let offset = 0; offset + 4 < data.length; ) {
    const length = view.getUint32(offset);
    types.push((data[offset + 4] ?? 0) & 0x1f);
    offset += 4 + length;
  }
  return types;
}

const streamCache = new Map<string, Promise<H264TestStream>>();

/** Encodes `testsrc2` with libx264 (B-frames by default) and returns access units in decode order. */
export function makeH264Stream(options: H264StreamOptions): Promise<H264TestStream> {
  const key = JSON.stringify(options);
  let cached = streamCache.get(key);
  if (cached === undefined) {
    cached = buildStream(options);
    streamCache.set(key, cached);
  }
  return cached;
}

async function buildStream(options: H264StreamOptions): Promise<H264TestStream> {
  const { width, height, frames } = options;
  const fps = options.fps ?? 30;
  const gop = options.gop ?? 30;
  const bframes = options.bframes ?? 2;
  const dir = await mkdtemp(join(tmpdir(), 'lvqr-h264-'));
  const mp4 = join(dir, 'in.mp4');
  try {
    await run('ffmpeg', [
      ...['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`],
      ...['-frames:v', String(frames), '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', String(bframes)],
      ...['-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-y', mp4],
    ]);
    const probe = await run('ffprobe', [
      ...['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=time_base:packet=pts,dts,duration,flags'],
      ...['-of', 'json', mp4],
    ]);
    const parsed = JSON.parse(probe.stdout) as {
      streams: Array<{ time_base: string }>;
      packets: Array<{ pts: number; dts: number; duration: number; flags: string }>;
    };
    const [num, den] = (parsed.streams[0]?.time_base ?? '1/1').split('/').map(Number) as [number, number];
    const toUs = (ticks: number): number => Math.round((ticks * num * 1_000_000) / den);
    const annexB = await run(
      'ffmpeg',
      ['-v', 'error', '-i', mp4, '-c', 'copy', '-bsf:v', 'h264_mp4toannexb', '-f', 'h264', '-'],
      {
        encoding: 'buffer',
        maxBuffer: MAX_BUFFER,
      },
    );
    const nals = splitAnnexB(new Uint8Array(annexB.stdout));
    const units = accessUnits(nals);
    if (units.length !== parsed.packets.length) {
      throw new Error(`split ${units.length} access units but ffprobe lists ${parsed.packets.length} packets`);
    }
    const sps = nals.find((nal) => ((nal[0] ?? 0) & 0x1f) === 7);
    const pps = nals.find((nal) => ((nal[0] ?? 0) & 0x1f) === 8);
    if (sps === undefined || pps === undefined) throw new Error('no SPS/PPS in the ffmpeg output');
    const firstPts = parsed.packets[0]?.pts ?? 0;
    const samples = units.map((unit, index): H264TestSample => {
      const packet = parsed.packets[index] as { pts: number; dts: number; duration: number; flags: string };
      // Parameter sets travel in the avcC; AUDs are dropped.
      const body = unit.filter((nal) => ![7, 8, 9].includes((nal[0] ?? 0) & 0x1f));
      return {
        data: toLengthPrefixed(body),
        timestampUs: toUs(packet.pts - firstPts),
        durationUs: toUs(packet.duration),
        decodeTimestampUs: toUs(packet.dts - firstPts),
        keyframe: packet.flags.startsWith('K'),
      };
    });
    const hex = (value: number | undefined): string => (value ?? 0).toString(16).padStart(2, '0');
    return {
      codec: `avc1.${hex(sps[1])}${hex(sps[2])}${hex(sps[3])}`,
      description: avcCFromParameterSets(sps, pps),
      width,
      height,
      fps,
      samples,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The stream repeated `times` times, timestamps shifted so it plays on (each copy starts at a keyframe). */
export function loopStream(stream: H264TestStream, times: number): H264TestSample[] {
  const span = stream.samples.reduce((sum, sample) => sum + sample.durationUs, 0);
  const out: H264TestSample[] = [];
  for (let copy = 0; copy < times; copy++) {
    for (const sample of stream.samples) {
      out.push({
        ...sample,
        timestampUs: sample.timestampUs + copy * span,
        decodeTimestampUs: sample.decodeTimestampUs + copy * span,
      });
    }
  }
  return out;
}

const rawCache = new Map<string, Promise<Uint8Array[]>>();

/** Raw I420 frames of ffmpeg's `testsrc2` (smooth motion, no scene cuts). */
export function testsrcI420(width: number, height: number, frames: number, fps = 30): Promise<Uint8Array[]> {
  const key = `${width}x${height}x${frames}@${fps}`;
  let cached = rawCache.get(key);
  if (cached === undefined) {
    cached = (async () => {
      const out = await run(
        'ffmpeg',
        [
          ...['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`],
          ...['-frames:v', String(frames), '-pix_fmt', 'yuv420p', '-f', 'rawvideo', '-'],
        ],
        { encoding: 'buffer', maxBuffer: MAX_BUFFER },
      );
      const bytes = new Uint8Array(out.stdout);
      const size = (width * height * 3) / 2;
      const list: Uint8Array[] = [];
      for (let offset = 0; offset + size <= bytes.length; offset += size) list.push(bytes.slice(offset, offset + size));
      return list;
    })();
    rawCache.set(key, cached);
  }
  return cached;
}

/** PSNR (dB) of two 8-bit planes of equal size. */
export function psnr(a: Uint8Array, b: Uint8Array, length = Math.min(a.length, b.length)): number {
  let sum = 0;
  for (let i = 0; i < length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    sum += d * d;
  }
  if (sum === 0) return 99;
  return 10 * Math.log10((255 * 255 * length) / sum);
}
