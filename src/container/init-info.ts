/** `describeInit`: what an init segment (ours or any muxer's) says about its tracks, for playlists and decoders. */

import { ContainerError } from '../core/errors.ts';
import { asContainerError, readBoxes } from './boxes.ts';
import { parseMoov, type TrackInfo } from './moov.ts';

const MOOV: ReadonlySet<string> = new Set(['moov']);

/**
 * Describes the audio and video tracks of an init segment (`ftyp`+`moov`, or a bare `moov`) in file
 * order: codec string, picture size, timescale, frame rate when the init says, audio parameters
 * and the decoder description. Throws `ingest.no_init` when there is no `moov`, and
 * `ingest.malformed_box` when it cannot be read; never anything but `ContainerError`.
 */
export function describeInit(init: Uint8Array): TrackInfo[] {
  try {
    const moov = readBoxes(init, 0, init.length, { only: MOOV }).at(0);
    if (moov === undefined) throw new ContainerError('ingest.no_init', 'the init segment has no moov box');
    return parseMoov(moov).tracks.map((t) => t.info);
  } catch (err) {
    throw asContainerError(err);
  }
}
