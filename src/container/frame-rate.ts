/**
 * `FrameRateMeter`: the frame rate of a video track whose init does not state one (ffmpeg's
 * `empty_moov` has no default duration), measured once from the first samples: the track
 * timescale over the median duration of the first 3 samples (the median ignores one outlier, such
 * as ffmpeg's longer first sample), rounded like a stated rate. Three samples are 100 ms of 30 fps
 * video: the ladder's first encoder session waits for this rate, so it must come early. A stream that ends sooner
 * settles on what it sent, from 2 samples on. The rate is filled in on the track object itself.
 */

import { roundRate } from './moov.ts';
import type { ParsedTrack, SampleInfo } from './parser-events.ts';

/** Video samples whose median duration gives the frame rate when the init does not. */
export const FRAME_RATE_SAMPLES = 3;

/** Fewest samples a frame rate is measured from when the stream ends before `FRAME_RATE_SAMPLES`. */
export const FRAME_RATE_MIN_SAMPLES = 2;

/** Measures one video track's frame rate, or nothing when the init states it (or there is no video). */
export class FrameRateMeter {
  #video: ParsedTrack | undefined;
  /** Durations seen so far; undefined once settled or when nothing is measured. */
  #durations: number[] | undefined;

  /** A meter for `video` (the video track of an init), measuring only when its init gives no frame rate. */
  constructor(video: ParsedTrack | undefined) {
    this.#video = video;
    this.#durations = video !== undefined && video.frameRate === undefined ? [] : undefined;
  }

  /** Adds the samples of the video track's next fragment; settles once `FRAME_RATE_SAMPLES` are known. */
  add(samples: readonly SampleInfo[]): void {
    if (this.#durations === undefined) return;
    for (const s of samples) this.#durations.push(s.duration);
    this.settle(FRAME_RATE_SAMPLES);
  }

  /** Sets the track's frame rate from the median duration when at least `minSamples` are known. */
  settle(minSamples: number): void {
    const durations = this.#durations;
    if (durations === undefined || durations.length < minSamples) return;
    this.#durations = undefined;
    // The lower median of an even count: the outlier of a short stream is a longer first sample.
    const median = [...durations].sort((a, b) => a - b)[(durations.length - 1) >> 1]!;
    if (median > 0 && this.#video !== undefined) this.#video.frameRate = roundRate(this.#video.timescale / median);
  }

  /** An independent meter for the same track, with what this one has seen (a reconnecting publisher). */
  copy(): FrameRateMeter {
    const copy = new FrameRateMeter(undefined);
    copy.#video = this.#video;
    copy.#durations = this.#durations?.slice();
    return copy;
  }
}
