/**
 * Cutting and patching fragmented MP4 at the box level, for tests that need altered or broken
 * streams: split a file into init and `moof`+`mdat` pieces, then rewrite decode times, sample
 * durations, data offsets or handler types in copies of them. Inputs are never modified.
 */

import { type Box, children, concatBytes, readBoxes } from '../../src/container/boxes.ts';
import { parseMoof } from '../../src/container/moof.ts';

/** A fragmented MP4 file cut at its top-level boxes. */
export type Fmp4Pieces = {
  ftyp: Uint8Array;
  moov: Uint8Array;
  /** `ftyp` + `moov`. */
  init: Uint8Array;
  /** Each `moof` with its `mdat` (and whatever lies between them), in file order. */
  fragments: Uint8Array[];
};

/** Cuts a fragmented MP4 into init and `moof`+`mdat` pieces (other top-level boxes are dropped). */
export function splitFmp4(bytes: Uint8Array): Fmp4Pieces {
  const boxes = readBoxes(bytes);
  const ftyp = boxes.find((b) => b.type === 'ftyp');
  const moov = boxes.find((b) => b.type === 'moov');
  if (ftyp === undefined || moov === undefined) throw new Error('splitFmp4: no ftyp/moov');
  const fragments: Uint8Array[] = [];
  let moof: Box | undefined;
  for (const b of boxes) {
    if (b.type === 'moof') moof = b;
    else if (b.type === 'mdat' && moof !== undefined) {
      fragments.push(bytes.subarray(moof.offset, b.offset + b.bytes.length));
      moof = undefined;
    }
  }
  return { ftyp: ftyp.bytes, moov: moov.bytes, init: concatBytes([ftyp.bytes, moov.bytes]), fragments };
}

/** One `traf` of a piece: its track and where its boxes sit in that piece. */
type TrafBoxes = { trackId: number; tfhd: Box; tfdt: Box | undefined; truns: Box[] };

/** The `traf`s of the first `moof` of `piece`, with offsets relative to `piece`. */
function trafsOf(piece: Uint8Array): TrafBoxes[] {
  const moof = readBoxes(piece).find((b) => b.type === 'moof');
  if (moof === undefined) throw new Error('no moof in the piece');
  const base = moof.offset + moof.headerSize;
  const out: TrafBoxes[] = [];
  for (const traf of children(moof)) {
    if (traf.type !== 'traf') continue;
    const at = base + traf.offset + traf.headerSize;
    const parts = children(traf).map((b) => ({ ...b, offset: at + b.offset }));
    const tfhd = parts.find((b) => b.type === 'tfhd')!;
    const trackId = new DataView(tfhd.body.buffer, tfhd.body.byteOffset).getUint32(4);
    out.push({
      trackId,
      tfhd,
      tfdt: parts.find((b) => b.type === 'tfdt'),
      truns: parts.filter((b) => b.type === 'trun'),
    });
  }
  return out;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Track ids (`tfhd` track_ID) of the piece's `traf`s. */
export function trackIdsOf(piece: Uint8Array): number[] {
  return trafsOf(piece).map((t) => t.trackId);
}

/** `tfdt` decode time per track id of the piece. */
export function decodeTimesOf(piece: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of trafsOf(piece)) {
    if (t.tfdt === undefined) continue;
    const v = view(piece);
    const at = t.tfdt.offset + t.tfdt.headerSize;
    const version = piece[at]!;
    out.set(t.trackId, version === 1 ? v.getUint32(at + 4) * 0x1_0000_0000 + v.getUint32(at + 8) : v.getUint32(at + 4));
  }
  return out;
}

/** A copy of `piece` whose `tfdt` decode times are `shift(trackId, time)`. */
export function withDecodeTimes(piece: Uint8Array, shift: (trackId: number, time: number) => number): Uint8Array {
  const out = piece.slice();
  const v = view(out);
  const times = decodeTimesOf(piece);
  for (const t of trafsOf(out)) {
    if (t.tfdt === undefined) continue;
    const at = t.tfdt.offset + t.tfdt.headerSize;
    const value = shift(t.trackId, times.get(t.trackId)!);
    if (out[at] === 1) {
      v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000));
      v.setUint32(at + 8, value >>> 0);
    } else {
      v.setUint32(at + 4, value);
    }
  }
  return out;
}

/**
 * A copy of `piece` in which every sample of track `trackId` has a zero duration: the `tfhd` default
 * and every per-sample `trun` duration are set to 0. Throws when the piece takes the duration from
 * the init's `trex` (nothing to patch here).
 */
export function withZeroDurations(piece: Uint8Array, trackId: number): Uint8Array {
  const out = piece.slice();
  const v = view(out);
  const trafs = trafsOf(out).filter((t) => t.trackId === trackId);
  if (trafs.length === 0) throw new Error(`the piece has no track ${trackId}`);
  for (const t of trafs) {
    let patched = false;
    const hAt = t.tfhd.offset + t.tfhd.headerSize;
    const hFlags = v.getUint32(hAt) & 0xff_ffff;
    if (hFlags & 0x08) {
      // track_ID, then base_data_offset (8) and sample_description_index (4) when present.
      const at = hAt + 8 + (hFlags & 0x01 ? 8 : 0) + (hFlags & 0x02 ? 4 : 0);
      v.setUint32(at, 0);
      patched = true;
    }
    for (const trun of t.truns) {
      const at = trun.offset + trun.headerSize;
      const flags = v.getUint32(at) & 0xff_ffff;
      if (!(flags & 0x100)) continue;
      const count = v.getUint32(at + 4);
      const perSample = 4 * (((flags >>> 8) & 1) + ((flags >>> 9) & 1) + ((flags >>> 10) & 1) + ((flags >>> 11) & 1));
      let entry = at + 8 + (flags & 0x01 ? 4 : 0) + (flags & 0x04 ? 4 : 0);
      for (let i = 0; i < count; i++, entry += perSample) v.setUint32(entry, 0);
      patched = true;
    }
    if (!patched) throw new Error(`track ${trackId} takes its sample durations from the init`);
  }
  return out;
}

/** Sample durations of track `trackId` in `piece`, as its `tfhd`/`trun` state them (no `trex` defaults). */
export function sampleDurationsOf(piece: Uint8Array, trackId: number): number[] {
  const moof = readBoxes(piece).find((b) => b.type === 'moof')!;
  return parseMoof(moof, { moofPosition: moof.offset, fileStart: 0, defaults: () => undefined })
    .filter((t) => t.mp4TrackId === trackId)
    .flatMap((t) => t.samples.map((s) => s.duration));
}

/** A copy of `piece` whose first `trun` data offset is moved by `delta` bytes. */
export function withDataOffsetMoved(piece: Uint8Array, delta: number): Uint8Array {
  const out = piece.slice();
  const v = view(out);
  const trun = trafsOf(out)[0]?.truns[0];
  if (trun === undefined) throw new Error('no trun');
  const at = trun.offset + trun.headerSize;
  if (!(v.getUint32(at) & 0x01)) throw new Error('the trun has no data offset');
  v.setInt32(at + 8, v.getInt32(at + 8) + delta);
  return out;
}

/** A copy of a `moov` whose every `hdlr` handler type is `handler` (e.g. `text`: no audio, no video). */
export function withHandlers(moov: Uint8Array, handler: string): Uint8Array {
  const out = moov.slice();
  const visit = (container: Box, base: number): void => {
    for (const child of children(container)) {
      const at = base + child.offset;
      if (child.type === 'hdlr') {
        // version/flags (4), pre_defined (4), handler_type (4)
        for (let i = 0; i < 4; i++) out[at + child.headerSize + 8 + i] = handler.charCodeAt(i);
      } else if (['trak', 'mdia'].includes(child.type)) {
        visit(child, at + child.headerSize);
      }
    }
  };
  const [root] = readBoxes(out);
  visit(root!, root!.headerSize);
  return out;
}

/** An 8-byte `free` box: skipped by the ingest parser, so a publisher can send it to stay active. */
export const FREE_BOX = Uint8Array.of(0, 0, 0, 8, 0x66, 0x72, 0x65, 0x65);

/** A box header of `type` announcing `size` bytes (32-bit size field). */
export function boxHeader(type: string, size: number): Uint8Array {
  const out = new Uint8Array(8);
  view(out).setUint32(0, size);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  return out;
}
