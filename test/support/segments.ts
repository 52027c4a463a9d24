/** The segments of a media playlist's text, to compare what two packagers (cluster edges) list. */

import { expect } from 'vitest';

/**
 * One listed segment: its number, its discontinuity sequence number, the EXT-X-MAP in effect, and
 * every other line that describes it (PROGRAM-DATE-TIME, EXTINF, parts, GAP, URI). The numbers,
 * not the tags, say where a discontinuity is: an edge that joined after one lists no tag for it.
 */
export type ListedSegment = {
  msn: number;
  discontinuity: number;
  map: string | undefined;
  pdtMs: number;
  lines: string[];
};

/** The segments of a media playlist's text with their numbers, and its sequence numbers. */
export function segmentsOf(text: string): {
  mediaSequence: number;
  discontinuitySequence: number;
  segments: ListedSegment[];
} {
  const lines = text.split('\n');
  const number = (tag: string): number => Number(lines.find((l) => l.startsWith(tag))?.slice(tag.length) ?? '0');
  const mediaSequence = number('#EXT-X-MEDIA-SEQUENCE:');
  const discontinuitySequence = number('#EXT-X-DISCONTINUITY-SEQUENCE:');
  const segments: ListedSegment[] = [];
  let pending: string[] = [];
  let discontinuity = discontinuitySequence;
  let map: string | undefined;
  for (const line of lines) {
    if (line === '#EXT-X-DISCONTINUITY') {
      discontinuity += 1;
    } else if (line.startsWith('#EXT-X-MAP:')) {
      map = line.slice('#EXT-X-MAP:'.length);
    } else if (/^#EXT-X-(PROGRAM-DATE-TIME|PART|GAP):|^#EXT-X-GAP$|^#EXTINF:/.test(line)) {
      pending.push(line);
    } else if (line !== '' && !line.startsWith('#')) {
      pending.push(line);
      const pdt = pending.find((l) => l.startsWith('#EXT-X-PROGRAM-DATE-TIME:'));
      const pdtMs = pdt === undefined ? Number.NaN : Date.parse(pdt.slice('#EXT-X-PROGRAM-DATE-TIME:'.length));
      segments.push({ msn: mediaSequence + segments.length, discontinuity, map, pdtMs, lines: pending });
      pending = [];
    }
  }
  return { mediaSequence, discontinuitySequence, segments };
}

/**
 * Checks that the later edge's playlist (`later`, it joined after `early`'s) lists what `early`
 * lists from its first segment on: numbers, discontinuity numbers, inits, dates, durations, parts.
 */
export function expectSameSegments(file: string, early: string, later: string): void {
  const a = segmentsOf(early);
  const b = segmentsOf(later);
  expect(b.mediaSequence, `${file}: the later edge starts no earlier`).toBeGreaterThanOrEqual(a.mediaSequence);
  expect(b.segments.length, `${file}: segments the later edge lists\n${later}`).toBeGreaterThanOrEqual(2);
  expect(b.segments, `${file}\n${early}\n${later}`).toEqual(a.segments.filter((s) => s.msn >= b.mediaSequence));
}
