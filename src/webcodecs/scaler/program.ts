/**
 * The plan of one source's scaler: which picture each output is scaled from and with which
 * kernel, where every plane, table and scratch row lies in the scaler's memory, and the kernel
 * calls that make each output (run by the executor, in a worker thread or inline).
 *
 * Cascade: the largest output is scaled from the source with the bicubic kernel (a = -0.6, as
 * ffmpeg's); each smaller one from the next larger output with Lanczos-3 (sharper, and the wide
 * filter runs over a picture several times smaller than the source). On the 1080p benchmark source
 * the encoded rungs match or beat ffmpeg's bicubic scaler in PSNR against a Lanczos scale of the
 * source (bench/RESULTS.md, "Ladder throughput").
 */

import { BICUBIC, horizontalTables, type Kernel, LANCZOS3, resampleTaps, verticalTables } from './filters.ts';

/** A picture size in pixels. */
export type Size = { width: number; height: number };

/** One plane in memory: byte offset of its first row, bytes per row, and size in samples. */
export type PlaneSpan = { offset: number; stride: number; width: number; height: number };

/** The three planes (Y, U, V) of an I420 picture. */
export type PicturePlanes = [PlaneSpan, PlaneSpan, PlaneSpan];

/** Kernel calls, flat: `HPASS` then its 10 arguments, or `VPASS` then its 9. */
export type KernelCalls = number[];
export const HPASS = 0;
export const VPASS = 1;

/** What the executor needs to run a plan (plain data: it is posted to the worker). */
export type ScalerProgram = {
  /** Per slot, per output: the calls that make it from its input. */
  calls: KernelCalls[][];
};

/** A source's scaler plan. */
export type ScalerPlan = {
  source: Size;
  outputs: Size[];
  /** Per output: the output it is scaled from (-1: the source) and the kernel. */
  inputs: Array<{ from: number; kernel: string }>;
  /** Bytes of memory the plan needs (a multiple of 64 KiB). */
  bytes: number;
  /** Filter tables, written into memory once before the first run. */
  tables: Array<{ offset: number; data: Uint8Array }>;
  /** Per slot: where the source picture, each output and the scratch rows lie. */
  slots: Array<{ source: PicturePlanes; outputs: PicturePlanes[]; scratch: number }>;
  program: ScalerProgram;
};

/** Room after every region: SIMD loads and stores reach past the last row. */
const SLACK = 1024;
const WASM_PAGE = 65536;

const align = (value: number, to: number): number => Math.ceil(value / to) * to;

/** Chroma plane size of a 4:2:0 picture. */
function chroma(size: Size): Size {
  return { width: (size.width + 1) >> 1, height: (size.height + 1) >> 1 };
}

/**
 * Which picture each output comes from: the largest from the source (bicubic), every other from
 * the smallest larger output that contains it (Lanczos-3), or from the source if none does.
 */
function cascade(outputs: readonly Size[]): Array<{ from: number; kernel: Kernel }> {
  const area = (i: number): number => outputs[i]!.width * outputs[i]!.height;
  const bySize = outputs.map((_, i) => i).sort((a, b) => area(b) - area(a) || a - b);
  const routes: Array<{ from: number; kernel: Kernel }> = outputs.map(() => ({ from: -1, kernel: BICUBIC }));
  for (const [rank, i] of bySize.entries()) {
    const size = outputs[i]!;
    // Larger outputs, smallest first: a nearer input is cheaper to filter and as sharp.
    const from = bySize
      .slice(0, rank)
      .reverse()
      .find((j) => {
        const o = outputs[j]!;
        return o.width >= size.width && o.height >= size.height && (o.width > size.width || o.height > size.height);
      });
    if (from !== undefined) routes[i] = { from, kernel: LANCZOS3 };
  }
  return routes;
}

/**
 * Plans scaling I420 pictures of `source` size to each of `outputs` (every one no larger than the
 * source), with `slots` pictures in flight at once.
 */
export function planScaler(source: Size, outputs: readonly Size[], slots = 2): ScalerPlan {
  if (outputs.length === 0) throw new RangeError('a scaler needs at least one output size');
  for (const s of [source, ...outputs]) {
    if (!Number.isInteger(s.width) || !Number.isInteger(s.height) || s.width < 2 || s.height < 2) {
      throw new RangeError(`picture size ${s.width}x${s.height} cannot be scaled`);
    }
  }
  for (const s of outputs) {
    if (s.width > source.width || s.height > source.height) {
      throw new RangeError(`${s.width}x${s.height} is larger than the source (${source.width}x${source.height})`);
    }
  }
  let cursor = 1024;
  const take = (bytes: number): number => {
    const at = cursor;
    cursor = align(cursor + bytes + SLACK, 64);
    return at;
  };
  const picture = (size: Size): PicturePlanes => {
    const c = chroma(size);
    const plane = (s: Size): PlaneSpan => {
      const stride = align(s.width, 16);
      return { offset: take(stride * s.height), stride, width: s.width, height: s.height };
    };
    return [plane(size), plane(c), plane(c)];
  };

  const routes = cascade(outputs);
  const tables: ScalerPlan['tables'] = [];
  const place = (data: Uint8Array): number => {
    const offset = take(data.length);
    tables.push({ offset, data });
    return offset;
  };
  // Filter tables per output and plane kind (U and V share theirs).
  let scratchBytes = 0;
  const filters = outputs.map((size, o) => {
    const from = routes[o]!.from === -1 ? source : outputs[routes[o]!.from]!;
    const kernel = routes[o]!.kernel;
    return [false, true].map((isChroma) => {
      const src = isChroma ? chroma(from) : from;
      const dst = isChroma ? chroma(size) : size;
      // 4:2:0 chroma sits on the left luma column (H.264's default chroma location).
      const factor = src.width / dst.width;
      const h = horizontalTables(resampleTaps(src.width, dst.width, kernel, isChroma ? (factor - 1) / 4 : 0));
      const v = verticalTables(resampleTaps(src.height, dst.height, kernel), src.height);
      const scratchStride = align(dst.width, 16) * 2;
      scratchBytes = Math.max(scratchBytes, scratchStride * src.height);
      return {
        src,
        dst,
        h,
        v,
        scratchStride,
        hOffsets: place(new Uint8Array(h.offsets.buffer)),
        hTables: place(h.tables),
        hPairs: place(new Uint8Array(h.pairs.buffer)),
        vOffsets: place(new Uint8Array(v.offsets.buffer)),
        vCoefs: place(v.coefs),
      };
    });
  });
  // Each slot has its own scratch rows: two workers may scale two frames of a source at once.
  const slotPlaces = Array.from({ length: slots }, () => ({
    source: picture(source),
    outputs: outputs.map((size) => picture(size)),
    scratch: take(scratchBytes),
  }));
  const calls = slotPlaces.map((slot) =>
    outputs.map((_, o) => {
      const scratch = slot.scratch;
      const input = routes[o]!.from === -1 ? slot.source : slot.outputs[routes[o]!.from]!;
      const list: KernelCalls = [];
      for (let p = 0; p < 3; p++) {
        const f = filters[o]![p === 0 ? 0 : 1]!;
        const from = input[p]!;
        const to = slot.outputs[o]![p]!;
        list.push(
          HPASS,
          from.offset,
          from.stride,
          f.src.height,
          scratch,
          f.scratchStride,
          f.h.blocks,
          f.hOffsets,
          f.hTables,
          f.h.windows,
          f.hPairs,
        );
        list.push(
          VPASS,
          scratch,
          f.scratchStride,
          to.offset,
          to.stride,
          f.dst.width,
          f.dst.height,
          f.vOffsets,
          f.vCoefs,
          f.v.taps,
        );
      }
      return list;
    }),
  );
  return {
    source: { ...source },
    outputs: outputs.map((s) => ({ ...s })),
    inputs: routes.map((r) => ({ from: r.from, kernel: r.kernel.name })),
    bytes: align(cursor, WASM_PAGE),
    tables,
    slots: slotPlaces,
    program: { calls },
  };
}

/** The outputs to run, in order, for the outputs `wanted` (with the ones they are scaled from). */
export function runOrder(plan: Pick<ScalerPlan, 'inputs' | 'outputs'>, wanted: readonly number[]): number[] {
  const need = new Set<number>();
  for (const o of wanted) {
    for (let at = o; at !== -1 && !need.has(at); at = plan.inputs[at]!.from) need.add(at);
  }
  // An input is always larger than what is scaled from it: largest first.
  const area = (i: number): number => plan.outputs[i]!.width * plan.outputs[i]!.height;
  return [...need].sort((a, b) => area(b) - area(a) || a - b);
}
