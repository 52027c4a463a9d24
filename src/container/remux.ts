/**
 * Whole-file remux to fragmented MP4 for `lvqr-transcode publish`: mediabunny does this job well
 * (any MP4/MOV/MKV/WebM in, `moov` + one fragment per GOP out, no re-encoding); live rung output
 * needs per-frame fragments and uses `cmaf-writer.ts` instead.
 */

import { ALL_FORMATS, BufferSource, BufferTarget, Conversion, Input, Mp4OutputFormat, Output } from 'mediabunny';
import { ContainerError, LvqrError } from '../core/errors.ts';

/** Remuxes any MP4/MOV/MKV/WebM file to fragmented MP4 without re-encoding. */
export async function toFragmentedMp4(bytes: Uint8Array): Promise<Uint8Array> {
  const input = new Input({ source: new BufferSource(bytes), formats: ALL_FORMATS });
  const output = new Output({ format: new Mp4OutputFormat({ fastStart: 'fragmented' }), target: new BufferTarget() });
  const conversion = await Conversion.init({ input, output });
  if (!conversion.isValid) {
    const reasons = conversion.discardedTracks.map((t) => t.reason).join(', ');
    throw new ContainerError('ingest.no_tracks', `cannot remux: ${reasons || 'no usable track'}`);
  }
  await conversion.execute();
  const buffer = output.target.buffer;
  if (buffer === null) throw new LvqrError('internal', 'remux produced no output');
  return new Uint8Array(buffer);
}
