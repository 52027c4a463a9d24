/**
 * `PacketClock`: the source-timeline position of each packet an audio encoder session emits. The
 * encoder's own timestamps are not used: `@napi-rs/webcodecs` 1.3.1 stamps packet k with the
 * timestamp of input k and repeats the last one at flush, ignoring the codec delay. What is used
 * instead is the codec's fixed packet size and its delay, measured on this addon:
 *
 * - AAC-LC: 1024-sample packets and 1024 samples of priming, so packet 0 holds only priming and
 *   packet k (k >= 1) starts at input sample (k-1)*1024. Packet 0 is dropped and packet k is
 *   stamped `start + (k-1)*1024`: the decoded audio lines up with the source to the sample and an
 *   encoder session of N input frames yields N packets (the extra packet a flush seems to add is
 *   in fact the last frame of input).
 * - Opus: 960-sample (20 ms) packets and `pre_skip` samples of delay (312 here, stated in the
 *   `OpusHead` and so in the `dOps`). Packet k is stamped `start - pre_skip + k*960`; a decoder
 *   discards `pre_skip` samples, so its first output sample is input sample 0 at `start` (ffprobe
 *   reports the first frame at pts `start` with 960 - pre_skip samples). The session's input is
 *   trimmed so that `start >= pre_skip` (timestamps stay non-negative).
 *
 * The last packet of a session is shortened to the input it covers, so a rendition ends where the
 * source ends.
 */

/** Delay and packet size of a codec session. */
export type PacketShape = {
  /** Samples per packet. */
  frameSize: number;
  /** Samples of codec delay ahead of input sample 0. */
  delay: number;
  /** Whether packets starting before `start` are dropped (AAC priming) or kept (Opus, skipped by `pre_skip`). */
  dropLeading: boolean;
};

/** AAC-LC as the addon's encoder (FFmpeg `aac`) produces it. */
export const AAC_SHAPE: PacketShape = { frameSize: 1024, delay: 1024, dropLeading: true };

/** Opus with `preSkip` samples of delay. */
export function opusShape(preSkip: number): PacketShape {
  return { frameSize: 960, delay: preSkip, dropLeading: false };
}

/** Opus pre-skip the addon's libopus uses at 48 kHz (checked against each session's `OpusHead`). */
export const OPUS_EXPECTED_PRE_SKIP = 312;

/** A packet's place on the output timeline, in output ticks (one tick per sample). */
export type PacketTime = { pts: number; duration: number };

/** Places the packets of one encoder session. */
export class PacketClock {
  /** Output tick of input sample 0. */
  readonly start: number;
  #shape: PacketShape;
  #fed = 0;
  #packets = 0;

  /** A clock for a session whose first input sample is at `start` ticks. */
  constructor(start: number, shape: PacketShape) {
    this.start = start;
    this.#shape = shape;
  }

  /** Samples given to the encoder so far. */
  get fed(): number {
    return this.#fed;
  }

  /** The end of the input so far, in output ticks (where the next contiguous input starts). */
  get end(): number {
    return this.start + this.#fed;
  }

  /** Replaces the shape (the Opus delay is known for sure once the first packet states it). */
  reshape(shape: PacketShape): void {
    this.#shape = shape;
  }

  /** Records `frames` samples given to the encoder. */
  feed(frames: number): void {
    this.#fed += frames;
  }

  /** The time of the next packet, or undefined when it is dropped (priming, or padding past the input). */
  next(): PacketTime | undefined {
    const { frameSize, delay, dropLeading } = this.#shape;
    const index = this.#packets;
    this.#packets += 1;
    const pts = this.start - delay + index * frameSize;
    if (dropLeading && pts < this.start) return undefined;
    const duration = Math.min(frameSize, this.end - pts);
    if (duration <= 0 || pts < 0) return undefined;
    return { pts, duration };
  }
}
