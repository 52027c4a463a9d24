/**
 * Ladder planning per source: never upscale, keep the source aspect ratio, even sizes, portrait
 * sources get portrait rungs, rung frame rate = source frame rate.
 */

import type { RenditionSpec } from '../rendition.ts';

/** What the planner needs to know of the source video. */
export type SourceVideo = { width: number; height: number; frameRate?: number | undefined };

/** One rung as planned for a concrete source. */
export type PlannedRung = {
  readonly rendition: RenditionSpec;
  readonly width: number;
  readonly height: number;
  readonly frameRate: number | undefined;
  readonly videoBitrateBps: number;
};

/** A rung the planner left out, and why. */
export type SkippedRung = { readonly rendition: RenditionSpec; readonly reason: string };

/** The ladder for one source. */
export type LadderPlan = { readonly rungs: PlannedRung[]; readonly skipped: SkippedRung[] };

/** Rounds to the nearest even integer, at least 2. */
export function evenSize(n: number): number {
  return Math.max(2, Math.round(n / 2) * 2);
}

/**
 * Plans one rung: the rendition's height is the rung's short side (so `720p` of a 1080x1920
 * portrait source is 720x1280); the long side follows the source aspect ratio. Returns a reason
 * string when the rung would upscale the source.
 */
export function planRung(source: SourceVideo, rendition: RenditionSpec): PlannedRung | string {
  const portrait = source.height > source.width;
  const sourceShort = portrait ? source.width : source.height;
  const sourceLong = portrait ? source.height : source.width;
  const short = rendition.height;
  if (short > sourceShort) {
    return `source short side ${sourceShort}px is smaller than the rung's ${short}px (no upscaling)`;
  }
  const long = evenSize((short * sourceLong) / sourceShort);
  return {
    rendition,
    width: portrait ? short : long,
    height: portrait ? long : short,
    frameRate: source.frameRate,
    videoBitrateBps: rendition.videoBitrateKbps * 1000,
  };
}

/** Plans every rung of `ladder` for `source`. */
export function planLadder(source: SourceVideo, ladder: readonly RenditionSpec[]): LadderPlan {
  const rungs: PlannedRung[] = [];
  const skipped: SkippedRung[] = [];
  for (const rendition of ladder) {
    const planned = planRung(source, rendition);
    if (typeof planned === 'string') skipped.push({ rendition, reason: planned });
    else rungs.push(planned);
  }
  return { rungs, skipped };
}

/** Whether `rung` has exactly the source's picture size (then the source variant may serve it). */
export function matchesSource(rung: PlannedRung, source: SourceVideo): boolean {
  return rung.width === source.width && rung.height === source.height;
}

/**
 * Why `rung` is not encoded: it has the source's size and at least the source's bitrate
 * (`sourceBps`, bits/s), so the source variant serves it as well. Undefined when it is encoded.
 */
export function bypassReason(
  rung: PlannedRung,
  source: SourceVideo,
  sourceBps: number | undefined,
): string | undefined {
  if (sourceBps === undefined || !matchesSource(rung, source) || rung.videoBitrateBps < sourceBps) return undefined;
  const kbps = (bps: number): string => `${Math.round(bps / 1000)} kb/s`;
  return `served by the source variant: the source is ${source.width}x${source.height} at ${kbps(sourceBps)}, the rung would be ${kbps(rung.videoBitrateBps)}`;
}
