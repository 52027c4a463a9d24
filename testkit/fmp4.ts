/** fMP4 helpers of the container tests and the fuzzer: feeding a parser, collecting its output, byte utilities, a seeded PRNG. */

import { createHash } from 'node:crypto';
import {
  type Fmp4ParserOptions,
  Fmp4StreamParser,
  type ParsedTrack,
  type ParserEvent,
  type SampleInfo,
} from '../src/container/index.ts';
import type { Fragment } from '../src/fragment/fragment.ts';

/** SHA-1 of bytes in hex: compares large payloads fast (deep equality of big typed arrays is slow). */
export function digest(bytes: Uint8Array): string {
  return createHash('sha1').update(bytes).digest('hex');
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts `bytes` into chunks whose sizes come from `size(index, offset)`. */
export function cut(bytes: Uint8Array, size: (index: number, offset: number) => number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, Math.floor(size(i, at)));
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

/** Everything a parser produced for a whole stream. */
export type ParseResult = {
  events: ParserEvent[];
  inits: ParsedTrack[][];
  fragments: Array<{ fragment: Fragment; samples: SampleInfo[] }>;
};

/** Feeds `chunks` then ends the stream. */
export function parseChunks(chunks: Iterable<Uint8Array>, options?: Fmp4ParserOptions): ParseResult {
  const parser = new Fmp4StreamParser(options);
  const events: ParserEvent[] = [];
  for (const c of chunks) events.push(...parser.push(c));
  events.push(...parser.end());
  return collect(events);
}

/** Parses a whole stream pushed in one chunk. */
export function parseAll(bytes: Uint8Array, options?: Fmp4ParserOptions): ParseResult {
  return parseChunks([bytes], options);
}

/** Sorts events into inits and fragments. */
export function collect(events: ParserEvent[]): ParseResult {
  const inits: ParsedTrack[][] = [];
  const fragments: ParseResult['fragments'] = [];
  for (const e of events) {
    if (e.type === 'init') inits.push(e.tracks);
    else fragments.push({ fragment: e.fragment, samples: e.samples });
  }
  return { events, inits, fragments };
}

/** Fragments of one output track. */
export function trackFragments(
  result: ParseResult,
  trackId: string,
): Array<{ fragment: Fragment; samples: SampleInfo[] }> {
  return result.fragments.filter((f) => f.fragment.trackId === trackId);
}

/** The single-track file of one output track: its (first) init followed by all its fragment payloads. */
export function trackFile(result: ParseResult, trackId: string): Uint8Array {
  const track = result.inits[0]?.find((t) => t.trackId === trackId);
  if (track === undefined) throw new Error(`no track ${trackId}`);
  return concat([track.initSegment, ...trackFragments(result, trackId).map((f) => f.fragment.payload)]);
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Offsets of the top-level boxes of an MP4 file, with their types and sizes (32-bit sizes only). */
export function topLevelBoxes(bytes: Uint8Array): Array<{ type: string; offset: number; size: number }> {
  const out: Array<{ type: string; offset: number; size: number }> = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 8 <= bytes.length; ) {
    const size = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    out.push({ type, offset: at, size });
    if (size < 8) break;
    at += size;
  }
  return out;
}

/** Offset of the first occurrence of a 4cc in `bytes` at or after `from` (the type field of a box). */
export function findType(bytes: Uint8Array, type: string, from = 0): number {
  const codes = Array.from(type, (c) => c.charCodeAt(0));
  for (let i = from; i + 4 <= bytes.length; i++) {
    if (bytes[i] === codes[0] && bytes[i + 1] === codes[1] && bytes[i + 2] === codes[2] && bytes[i + 3] === codes[3]) {
      return i;
    }
  }
  return -1;
}
