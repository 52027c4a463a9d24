/**
 * `readSamples`: the samples of single-track `moof`+`mdat` fragments (ours, the ingest splitter's, or
 * any muxer's), with decode times taken from each `tfdt`, ready to feed a decoder.
 */

import { ContainerError } from '../core/errors.ts';
import { asContainerError } from './boxes.ts';
import { checkSampleBudget, pairFragments, parseMoof, SAMPLE_IS_NON_SYNC, type SampleDefaults } from './moof.ts';

/** One sample: a view of its bytes and its timing in the track timescale. */
export type DecodableSample = {
  /** The sample bytes (a view into the payload, not a copy). */
  readonly data: Uint8Array;
  readonly dts: number;
  readonly pts: number;
  readonly duration: number;
  /** A sync sample (sample_is_non_sync_sample is 0). */
  readonly keyframe: boolean;
};

/**
 * Reads every sample of the `moof`+`mdat` pairs in `payload` (other top-level boxes are skipped).
 * Each moof must describe one track. `defaults` stands in for the init's `trex` when the fragments
 * rely on it (ours and the splitter's never do). Throws `ContainerError` only.
 */
export function readSamples(payload: Uint8Array, defaults?: SampleDefaults): DecodableSample[] {
  try {
    const out: DecodableSample[] = [];
    for (const { moof, mdat } of pairFragments(payload)) {
      const trafs = parseMoof(moof, { moofPosition: moof.offset, fileStart: 0, defaults: () => defaults });
      const ids = new Set(trafs.map((t) => t.mp4TrackId));
      if (ids.size > 1) {
        throw new ContainerError(
          'ingest.bad_sample_table',
          `readSamples takes single-track fragments; moof at ${moof.offset} has tracks ${[...ids].join(', ')}`,
        );
      }
      const dataStart = mdat.offset + mdat.headerSize;
      const dataEnd = mdat.offset + mdat.bytes.length;
      checkSampleBudget(trafs, { moofPosition: moof.offset, dataStart, dataEnd });
      for (const traf of trafs) {
        let dts = traf.baseMediaDecodeTime;
        for (const s of traf.samples) {
          if (s.position < dataStart || s.position + s.size > dataEnd) {
            throw new ContainerError(
              'ingest.bad_sample_table',
              `sample at ${s.position} (${s.size} bytes) lies outside the mdat at ${mdat.offset}`,
            );
          }
          out.push({
            data: payload.subarray(s.position, s.position + s.size),
            dts,
            pts: dts + s.compositionOffset,
            duration: s.duration,
            keyframe: (s.flags & SAMPLE_IS_NON_SYNC) === 0,
          });
          dts += s.duration;
        }
      }
    }
    return out;
  } catch (err) {
    throw asContainerError(err);
  }
}
