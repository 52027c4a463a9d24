/** BANDWIDTH and AVERAGE-BANDWIDTH of a track, measured over the segments its playlist lists. */

import type { HlsSegment } from './track-media.ts';

/** Below this fraction of the target, a segment is left out of the peak bitrate (first/last segments). */
const PEAK_MIN_FRACTION = 0.5;

/** A track's measured bitrate, bits/s. */
export type Bitrate = {
  readonly peakBps: number;
  readonly averageBps: number;
  /** True while no segment is complete (figures estimated from the parts so far). */
  readonly estimated: boolean;
};

/**
 * Peak and average bitrate over the listed complete `segments` (the peak ignores segments shorter
 * than half of `targetS`, unless all are); with none, an estimate from the `open` segment's parts.
 */
export function measureBitrate(
  segments: readonly HlsSegment[],
  open: HlsSegment | undefined,
  targetS: number,
): Bitrate {
  if (segments.length === 0) {
    if (open === undefined || open.durationS <= 0) return { peakBps: 0, averageBps: 0, estimated: true };
    const bps = (open.byteLength * 8) / open.durationS;
    return { peakBps: bps, averageBps: bps, estimated: true };
  }
  let bytes = 0;
  let seconds = 0;
  let peak = 0;
  let peakAny = 0;
  for (const seg of segments) {
    if (seg.gap) continue;
    bytes += seg.byteLength;
    seconds += seg.durationS;
    if (seg.durationS <= 0) continue;
    const bps = (seg.byteLength * 8) / seg.durationS;
    peakAny = Math.max(peakAny, bps);
    if (seg.durationS >= PEAK_MIN_FRACTION * targetS) peak = Math.max(peak, bps);
  }
  const averageBps = seconds > 0 ? (bytes * 8) / seconds : 0;
  return { peakBps: peak > 0 ? peak : peakAny, averageBps, estimated: false };
}
