/** The ladder's classes under the names LVQR users know (and earlier releases of this library used). */

import type { LadderOptions } from './options.ts';
import { RungTranscoder } from './rung.ts';
import { LadderTranscoderFactory, VideoLadder } from './video-ladder.ts';

/** LVQR's name for the ladder's shared state (`VideoLadder`). */
export const SoftwareLadder = VideoLadder;
/** LVQR's name for the ladder's shared state (`VideoLadder`). */
export type SoftwareLadder = VideoLadder;
/** Former name of `LadderOptions`. */
export type SoftwareLadderOptions = LadderOptions;
/** LVQR's name for the rung factory (`LadderTranscoderFactory`). */
export const SoftwareTranscoderFactory = LadderTranscoderFactory;
/** LVQR's name for the rung factory (`LadderTranscoderFactory`). */
export type SoftwareTranscoderFactory = LadderTranscoderFactory;
/** Former name of `RungTranscoder`. */
export const SoftwareTranscoder = RungTranscoder;
/** Former name of `RungTranscoder`. */
export type SoftwareTranscoder = RungTranscoder;
