/**
 * Reads the sample tables of a `moof`: per `traf`, the track, the `tfdt` decode time and every
 * sample's position, size, duration, flags and composition offset. Positions are absolute in the
 * caller's coordinates (the moof's own position plus the offsets the boxes declare).
 */

import { ContainerError } from '../core/errors.ts';
import { type Box, ByteReader, boxBudget, children, fullBoxHeader, malformed, readBoxes } from './boxes.ts';

/** Per-track defaults from `trex` (all 0 when the init has no `trex` for the track). */
export type SampleDefaults = {
  readonly sampleDescriptionIndex: number;
  readonly duration: number;
  readonly size: number;
  readonly flags: number;
};

/** One sample as the moof describes it. */
export type MoofSampleEntry = {
  /** Absolute position of the first byte (moof position + data offsets). */
  readonly position: number;
  readonly size: number;
  readonly duration: number;
  readonly flags: number;
  /** pts - dts in ticks. */
  readonly compositionOffset: number;
};

/** One `traf`: a track's samples in this moof. */
export type TrafSamples = {
  readonly mp4TrackId: number;
  /** `tfdt` baseMediaDecodeTime. */
  readonly baseMediaDecodeTime: number;
  /** `tfhd` sample_description_index when present. */
  readonly sampleDescriptionIndex: number | undefined;
  readonly samples: MoofSampleEntry[];
};

/** Where offsets in a moof point. */
export type MoofContext = {
  /** Absolute position of the moof's first byte. */
  readonly moofPosition: number;
  /** Absolute position that an explicit `tfhd` base_data_offset counts from (the file start). */
  readonly fileStart: number;
  /** `trex` defaults of a track, or undefined when the init does not declare it. */
  readonly defaults: (mp4TrackId: number) => SampleDefaults | undefined;
};

/** Upper bound on the samples of one moof (a guard against tables that declare billions of samples). */
export const MAX_SAMPLES_PER_MOOF = 1 << 18;

/**
 * Latest decode time a fragment may reach (its tfdt plus its sample durations): 2^53 - 1 less room
 * for any 32-bit composition offset, so every dts and pts stays an exact integer.
 */
export const MAX_DECODE_TIME = Number.MAX_SAFE_INTEGER - 0xffff_ffff;

/** The sample_is_non_sync_sample bit of sample flags. */
export const SAMPLE_IS_NON_SYNC = 0x0001_0000;

/**
 * Parses a whole `moof` box (`moof.bytes` must be the box including its header), reading at most
 * `MAX_BOXES_PER_PARSE` boxes.
 */
export function parseMoof(moof: Box, context: MoofContext): TrafSamples[] {
  const out: TrafSamples[] = [];
  let implicitEnd = context.moofPosition; // end of the previous traf's data: base of a traf without flags
  let total = 0;
  const budget = boxBudget();
  for (const traf of children(moof, 0, budget)) {
    if (traf.type !== 'traf') continue;
    const parts = children(traf, 0, budget);
    let tfhd: Box | undefined;
    let tfdt: Box | undefined;
    for (const b of parts) {
      if (b.type === 'tfhd' && tfhd === undefined) tfhd = b;
      else if (b.type === 'tfdt' && tfdt === undefined) tfdt = b;
    }
    if (tfhd === undefined) malformed("'traf' has no 'tfhd' box");
    const h = readTfhd(tfhd.body);
    const defaults = context.defaults(h.trackId);
    let base: number;
    if (h.baseDataOffset !== undefined) base = context.fileStart + h.baseDataOffset;
    else if (h.defaultBaseIsMoof || out.length === 0) base = context.moofPosition;
    else base = implicitEnd;
    let decodeTime: number | undefined;
    if (tfdt !== undefined) {
      const { version } = fullBoxHeader(tfdt.body, 'tfdt');
      const r = new ByteReader(tfdt.body, 'tfdt', 4);
      decodeTime = version === 1 ? r.u64() : r.u32();
    }
    const samples: MoofSampleEntry[] = [];
    let cursor = base;
    let firstTrun = true;
    for (const trun of parts) {
      if (trun.type !== 'trun') continue;
      const { version, flags } = fullBoxHeader(trun.body, 'trun');
      const r = new ByteReader(trun.body, 'trun', 4);
      const count = r.u32();
      total += count;
      if (total > MAX_SAMPLES_PER_MOOF) {
        throw new ContainerError(
          'ingest.bad_sample_table',
          `moof declares more than ${MAX_SAMPLES_PER_MOOF} samples (track ${h.trackId})`,
        );
      }
      if (flags & 0x01) cursor = base + r.i32();
      else if (firstTrun) cursor = base;
      firstTrun = false;
      const firstFlags = flags & 0x04 ? r.u32() : undefined;
      const perSample = 4 * (((flags >>> 8) & 1) + ((flags >>> 9) & 1) + ((flags >>> 10) & 1) + ((flags >>> 11) & 1));
      if (count * perSample > r.remaining) {
        malformed(`trun of track ${h.trackId} declares ${count} samples but holds ${r.remaining} table bytes`);
      }
      for (let i = 0; i < count; i++) {
        const duration = flags & 0x100 ? r.u32() : (h.duration ?? need(defaults, 'duration', h.trackId));
        const size = flags & 0x200 ? r.u32() : (h.size ?? need(defaults, 'size', h.trackId));
        let sampleFlags: number;
        if (flags & 0x400) sampleFlags = r.u32();
        else if (i === 0 && firstFlags !== undefined) sampleFlags = firstFlags;
        else sampleFlags = h.flags ?? need(defaults, 'flags', h.trackId);
        let cto = 0;
        if (flags & 0x800) cto = version === 0 ? r.u32() : r.i32();
        samples.push({ position: cursor, size, duration, flags: sampleFlags, compositionOffset: cto });
        cursor += size;
      }
    }
    implicitEnd = cursor;
    if (samples.length > 0 && decodeTime === undefined) {
      throw new ContainerError(
        'ingest.bad_sample_table',
        `traf of track ${h.trackId} has no 'tfdt': decode times are taken from tfdt only`,
      );
    }
    let endTime = decodeTime ?? 0;
    let negativeOffset = false;
    let largeOffset = false;
    for (const s of samples) {
      endTime += s.duration;
      if (s.compositionOffset < 0) negativeOffset = true;
      else if (s.compositionOffset > 0x7fff_ffff) largeOffset = true;
    }
    if (negativeOffset && largeOffset) {
      throw new ContainerError(
        'ingest.bad_sample_table',
        `traf of track ${h.trackId} mixes negative composition offsets with unsigned ones beyond 2^31 - 1`,
      );
    }
    if (endTime > MAX_DECODE_TIME) {
      throw new ContainerError(
        'ingest.bad_sample_table',
        `traf of track ${h.trackId} runs to decode time ${endTime}, past the largest exact one (${MAX_DECODE_TIME})`,
      );
    }
    out.push({
      mp4TrackId: h.trackId,
      baseMediaDecodeTime: decodeTime ?? 0,
      sampleDescriptionIndex: h.sampleDescriptionIndex,
      samples,
    });
  }
  return out;
}

/**
 * Checks that the samples of a moof fit the fragment that carries them before anything is copied:
 * together they declare no more bytes than the mdat holds (samples never overlap, so output never
 * exceeds input), and there are no more of them than the fragment (moof to mdat end) has bytes
 * (every sample costs output table bytes; zero-size samples by the hundred thousand are not media).
 * Throws `ingest.bad_sample_table`.
 */
export function checkSampleBudget(
  trafs: readonly TrafSamples[],
  fragment: { moofPosition: number; dataStart: number; dataEnd: number },
): void {
  let count = 0;
  let bytes = 0;
  for (const traf of trafs) {
    count += traf.samples.length;
    for (const s of traf.samples) bytes += s.size;
  }
  const { moofPosition, dataStart, dataEnd } = fragment;
  if (bytes > dataEnd - dataStart) {
    throw new ContainerError(
      'ingest.bad_sample_table',
      `the samples of the moof at ${moofPosition} declare ${bytes} bytes, more than the ${dataEnd - dataStart} ` +
        'bytes of its mdat (they overlap or overrun it)',
      { details: { moofPosition, sampleBytes: bytes, mdatBytes: dataEnd - dataStart } },
    );
  }
  if (count > dataEnd - moofPosition) {
    throw new ContainerError(
      'ingest.bad_sample_table',
      `the moof at ${moofPosition} declares ${count} samples in a fragment of ${dataEnd - moofPosition} bytes`,
      { details: { moofPosition, samples: count, fragmentBytes: dataEnd - moofPosition } },
    );
  }
}

type Tfhd = {
  trackId: number;
  baseDataOffset: number | undefined;
  sampleDescriptionIndex: number | undefined;
  duration: number | undefined;
  size: number | undefined;
  flags: number | undefined;
  defaultBaseIsMoof: boolean;
};

function readTfhd(body: Uint8Array): Tfhd {
  const { flags } = fullBoxHeader(body, 'tfhd');
  const r = new ByteReader(body, 'tfhd', 4);
  const trackId = r.u32();
  return {
    trackId,
    baseDataOffset: flags & 0x01 ? r.u64() : undefined,
    sampleDescriptionIndex: flags & 0x02 ? r.u32() : undefined,
    duration: flags & 0x08 ? r.u32() : undefined,
    size: flags & 0x10 ? r.u32() : undefined,
    flags: flags & 0x20 ? r.u32() : undefined,
    defaultBaseIsMoof: (flags & 0x02_0000) !== 0,
  };
}

function need(defaults: SampleDefaults | undefined, field: 'duration' | 'size' | 'flags', trackId: number): number {
  if (defaults === undefined) {
    throw new ContainerError(
      'ingest.bad_sample_table',
      `traf of track ${trackId} relies on a default sample ${field}, but the init declares no such track`,
    );
  }
  return defaults[field];
}

const FRAGMENT_BOXES: ReadonlySet<string> = new Set(['moof', 'mdat']);

/** Reads the top level of a buffer holding `moof`+`mdat` pairs, pairing each moof with the next mdat. */
export function pairFragments(bytes: Uint8Array): Array<{ moof: Box; mdat: Box }> {
  const pairs: Array<{ moof: Box; mdat: Box }> = [];
  let moof: Box | undefined;
  for (const b of readBoxes(bytes, 0, bytes.length, { only: FRAGMENT_BOXES })) {
    if (b.type === 'moof') {
      if (moof !== undefined) malformed(`moof at ${moof.offset} is not followed by an mdat`);
      moof = b;
    } else if (b.type === 'mdat') {
      if (moof === undefined) throw new ContainerError('ingest.mdat_without_moof', `mdat at ${b.offset} has no moof`);
      pairs.push({ moof, mdat: b });
      moof = undefined;
    }
  }
  if (moof !== undefined) throw new ContainerError('ingest.truncated', `moof at ${moof.offset} has no mdat`);
  return pairs;
}
