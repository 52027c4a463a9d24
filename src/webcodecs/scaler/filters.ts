/**
 * Resampling filters of the frame scaler and the tables its WASM kernels read
 * (wasm/scaler.ts). Weights are computed here in floating point, once per plan.
 */

/** A resampling kernel: its weight at a distance in output pixels, and how far it reaches. */
export type Kernel = { readonly name: string; readonly radius: number; weight(x: number): number };

/** Bicubic with a = -0.6 (ffmpeg's `bicubic` default). */
export const BICUBIC: Kernel = {
  name: 'bicubic',
  radius: 2,
  weight(x) {
    const a = -0.6;
    const d = Math.abs(x);
    if (d < 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
    if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
    return 0;
  },
};

/** Lanczos with three lobes. */
export const LANCZOS3: Kernel = {
  name: 'lanczos3',
  radius: 3,
  weight(x) {
    const d = Math.abs(x);
    if (d === 0) return 1;
    if (d >= 3) return 0;
    const p = Math.PI * d;
    return (3 * Math.sin(p) * Math.sin(p / 3)) / (p * p);
  },
};

/** The source samples one output reads, from `first`, with weights summing to 1. */
export type Taps = { first: number; weights: Float64Array };

/**
 * Weights of each of `dstN` outputs over `srcN` inputs. Output i is centred on source position
 * `(i + 0.5) * srcN / dstN - 0.5 - shift`; when downscaling the kernel is stretched by the factor
 * (it filters as it decimates). Taps beyond the edges fold onto the edge sample. `shift` places
 * samples that are not centred in their cell: 4:2:0 chroma sits on the left luma column, which
 * moves its centres by (factor - 1) / 4 chroma samples.
 */
export function resampleTaps(srcN: number, dstN: number, kernel: Kernel, shift = 0): Taps[] {
  const factor = srcN / dstN;
  const stretch = Math.max(1, factor);
  const reach = kernel.radius * stretch;
  const out: Taps[] = [];
  for (let i = 0; i < dstN; i++) {
    const centre = (i + 0.5) * factor - 0.5 - shift;
    const lo = Math.floor(centre - reach) + 1;
    const hi = Math.ceil(centre + reach) - 1;
    const first = Math.max(0, Math.min(srcN - 1, lo));
    const last = Math.max(0, Math.min(srcN - 1, hi));
    const weights = new Float64Array(last - first + 1);
    let sum = 0;
    for (let j = lo; j <= hi; j++) {
      const w = kernel.weight((j - centre) / stretch);
      weights[Math.max(0, Math.min(srcN - 1, j)) - first]! += w;
      sum += w;
    }
    for (let k = 0; k < weights.length; k++) weights[k]! /= sum;
    out.push({ first, weights });
  }
  return out;
}

/** Weights to integers of `one` that sum to exactly `one` (the rounding error goes to the largest). */
function quantize(weights: Float64Array, one: number): Int32Array {
  const q = Int32Array.from(weights, (w) => Math.round(w * one));
  let largest = 0;
  let sum = 0;
  for (let k = 0; k < q.length; k++) {
    sum += q[k]!;
    if (q[k]! > q[largest]!) largest = k;
  }
  q[largest]! += one - sum;
  return q;
}

/** Tables of the horizontal kernel (`hpass`): blocks of four outputs. */
export type HorizontalTables = {
  blocks: number;
  windows: number;
  /** Entries per window (i32 each; the same for every block). */
  pairs: Int32Array;
  /** Source offset of each block (i32). */
  offsets: Int32Array;
  /** Per block, window and entry: 16 bytes of swizzle, then 8 weights (i16, Q14). */
  tables: Uint8Array;
};

/**
 * Lays out `taps` for `hpass`: each block of four outputs reads 16-byte windows from its first
 * tap, and each window holds, per output, the taps that fall in it, two per entry.
 */
export function horizontalTables(taps: readonly Taps[]): HorizontalTables {
  const blocks = Math.ceil(taps.length / 4);
  const offsets = new Int32Array(blocks);
  const quantized = taps.map((t) => quantize(t.weights, 1 << 14));
  // Per block, window and output: its taps there, as [position in the window, weight].
  const placed: Array<Array<Array<Array<[number, number]>>>> = [];
  let windows = 1;
  for (let b = 0; b < blocks; b++) {
    const outs = taps.slice(4 * b, 4 * b + 4);
    const off = Math.min(...outs.map((t) => t.first));
    offsets[b] = off;
    const end = Math.max(...outs.map((t) => t.first + t.weights.length));
    windows = Math.max(windows, Math.ceil((end - off) / 16));
    placed.push(
      Array.from({ length: Math.ceil((end - off) / 16) }, (_, w) =>
        outs.map((t, i) => {
          const q = quantized[4 * b + i]!;
          const list: Array<[number, number]> = [];
          for (let k = 0; k < q.length; k++) {
            const at = t.first + k - off - 16 * w;
            if (at >= 0 && at < 16 && q[k] !== 0) list.push([at, q[k]!]);
          }
          return list;
        }),
      ),
    );
  }
  const pairs = new Int32Array(windows);
  for (const block of placed) {
    for (const [w, outs] of block.entries()) {
      for (const list of outs) pairs[w] = Math.max(pairs[w]!, Math.ceil(list.length / 2));
    }
  }
  const perBlock = pairs.reduce((a, b) => a + b, 0);
  const tables = new Uint8Array(blocks * perBlock * 32);
  const view = new DataView(tables.buffer);
  // 0x80 makes a swizzle lane zero: an unused tap, and the high byte of each 16-bit pixel.
  tables.fill(0x80);
  for (let b = 0; b < blocks; b++) {
    let entry = b * perBlock * 32;
    for (let w = 0; w < windows; w++) {
      for (let j = 0; j < pairs[w]!; j++, entry += 32) {
        for (let k = 16; k < 32; k++) tables[entry + k] = 0;
        for (let i = 0; i < 4; i++) {
          const list = placed[b]![w]?.[i] ?? [];
          for (let e = 0; e < 2; e++) {
            const tap = list[2 * j + e];
            if (tap === undefined) continue;
            tables[entry + 4 * i + 2 * e] = tap[0];
            view.setInt16(entry + 16 + 4 * i + 2 * e, tap[1], true);
          }
        }
      }
    }
  }
  return { blocks, windows, pairs, offsets, tables };
}

/** Tables of the vertical kernel (`vpass`): every output row reads `taps` rows from its offset. */
export type VerticalTables = {
  taps: number;
  /** First source row of each output row (i32). */
  offsets: Int32Array;
  /** Per output row and tap: the weight (i16, Q15) repeated eight times. */
  coefs: Uint8Array;
};

/** Lays out `taps` over `srcN` rows for `vpass` (rows near the bottom edge start higher, padded with zero weights). */
export function verticalTables(taps: readonly Taps[], srcN: number): VerticalTables {
  const count = Math.min(srcN, Math.max(...taps.map((t) => t.weights.length)));
  const offsets = new Int32Array(taps.length);
  const coefs = new Uint8Array(taps.length * count * 16);
  const view = new DataView(coefs.buffer);
  for (const [y, t] of taps.entries()) {
    const first = Math.min(t.first, srcN - count);
    offsets[y] = first;
    const q = quantize(t.weights, 1 << 15);
    for (let k = 0; k < q.length; k++) {
      // A lone weight of 1 does not fit Q15: 32767 is 1 within 1/32768.
      const weight = Math.min(32767, q[k]!);
      for (let lane = 0; lane < 8; lane++)
        view.setInt16(((y * count + t.first - first + k) * 8 + lane) * 2, weight, true);
    }
  }
  return { taps: count, offsets, coefs };
}
