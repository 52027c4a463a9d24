/**
 * Silent audio frames: one coded frame of digital silence for the audio codecs and channel layouts
 * where a fixed one exists, so that a packager can fill missing audio with media instead of a hole.
 *
 * - AAC-LC (`mp4a.40.2`): a raw_data_block of one element (SCE for mono, CPE with a common window
 *   for stereo) whose channel streams code no scale factor band (`max_sfb` 0), then ID_END. It
 *   does not depend on the sampling rate. What ffmpeg's AAC encoder writes for silence.
 * - Opus (channel mapping family 0, 1 or 2 channels): a CELT-only fullband 20 ms frame (TOC
 *   config 31) whose range-coded body sets the silence flag.
 *
 * Both decode to zeros with ffmpeg's decoders and libopus (`test/container/silence.test.ts`).
 * Anything else (HE-AAC, more channels) has none: the caller keeps its other way of saying "missing".
 */

import { parseDOps } from './codec-string.ts';
import type { TrackInfo } from './moov.ts';

/** One silent frame of a track. */
export type SilentFrame = {
  /** The coded frame (one sample of the track). */
  readonly bytes: Uint8Array;
  /** Its duration in the track's timescale (rounded to whole ticks). */
  readonly ticks: number;
};

const AAC_LC_SILENCE: Record<number, Uint8Array> = {
  1: Uint8Array.of(0x01, 0x18, 0x20, 0x07),
  2: Uint8Array.of(0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c),
};

const OPUS_SILENCE: Record<number, Uint8Array> = {
  1: Uint8Array.of(0xf8, 0xff, 0xfe),
  2: Uint8Array.of(0xfc, 0xff, 0xfe),
};

/** Samples per AAC frame and per silent Opus frame (20 ms at Opus's 48 kHz). */
const AAC_FRAME_SAMPLES = 1024;
const OPUS_FRAME_S = 0.02;

/** The silent frame of an audio track, or undefined where its codec or channel layout has none here. */
export function silentAudioFrame(track: TrackInfo): SilentFrame | undefined {
  if (track.kind !== 'audio' || !track.supported || track.timescale <= 0) return undefined;
  const channels = track.channelCount ?? 0;
  if (track.codec === 'mp4a.40.2') {
    const bytes = AAC_LC_SILENCE[channels];
    const rate = track.sampleRate ?? 0;
    if (bytes === undefined || rate <= 0) return undefined;
    return { bytes, ticks: Math.round((AAC_FRAME_SAMPLES * track.timescale) / rate) };
  }
  if (track.codec === 'opus') {
    const bytes = OPUS_SILENCE[channels];
    if (bytes === undefined || track.description === undefined || !singleStream(track.description)) return undefined;
    return { bytes, ticks: Math.round(OPUS_FRAME_S * track.timescale) };
  }
  return undefined;
}

/** Whether an Opus track's `dOps` says one elementary stream per packet (mapping family 0). */
function singleStream(dOps: Uint8Array): boolean {
  try {
    return parseDOps(dOps).channelMappingFamily === 0;
  } catch {
    return false;
  }
}
