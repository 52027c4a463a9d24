// AssemblyScript source of the frame scaler's kernels (built by wasm/build.mjs into
// src/webcodecs/scaler/kernels-wasm.ts). Two passes of a separable resampling filter over 8-bit
// planes, in 128-bit SIMD; the caller lays out every plane, table and scratch row in memory and
// computes the filter tables (src/webcodecs/scaler/filters.ts).

/**
 * Horizontal pass: rows of 8-bit pixels in, rows of 16-bit pixels x 64 out, four outputs at a
 * time. Each block of four outputs has a source offset (`offs`, i32) and, per 16-byte window from
 * that offset (`windows` of them), `pairs[w]` (i32) entries of 32 bytes: a swizzle that puts two
 * source pixels of each output into one 32-bit lane (zero-extended to 16 bits), then those two
 * taps' weights (Q14) in the same lanes. A dot product per entry adds two taps of four outputs.
 */
export function hpass(
  src: usize,
  srcStride: i32,
  rows: i32,
  dst: usize,
  dstStride: i32,
  blocks: i32,
  offs: usize,
  tables: usize,
  windows: i32,
  pairs: usize,
): void {
  const round = i32x4.splat(128);
  let y = 0;
  // Four rows at a time share each block's tables.
  for (; y + 3 < rows; y += 4) {
    const s0 = src + <usize>(y * srcStride);
    const s1 = s0 + <usize>srcStride;
    const s2 = s1 + <usize>srcStride;
    const s3 = s2 + <usize>srcStride;
    const d0 = dst + <usize>(y * dstStride);
    const d1 = d0 + <usize>dstStride;
    const d2 = d1 + <usize>dstStride;
    const d3 = d2 + <usize>dstStride;
    let tp = tables;
    for (let b = 0; b < blocks; b++) {
      const off = <usize>load<i32>(offs + <usize>(b << 2));
      let a0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let a3 = i32x4.splat(0);
      for (let w = 0; w < windows; w++) {
        const at = off + <usize>(w << 4);
        const w0 = v128.load(s0 + at);
        const w1 = v128.load(s1 + at);
        const w2 = v128.load(s2 + at);
        const w3 = v128.load(s3 + at);
        const n = load<i32>(pairs + <usize>(w << 2));
        for (let j = 0; j < n; j++) {
          const idx = v128.load(tp);
          const c = v128.load(tp, 16);
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.swizzle(w0, idx), c));
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.swizzle(w1, idx), c));
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.swizzle(w2, idx), c));
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.swizzle(w3, idx), c));
          tp += 32;
        }
      }
      v128.store64_lane(d0 + <usize>(b << 3), i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(a0, round), 8), a0), 0);
      v128.store64_lane(d1 + <usize>(b << 3), i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(a1, round), 8), a1), 0);
      v128.store64_lane(d2 + <usize>(b << 3), i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(a2, round), 8), a2), 0);
      v128.store64_lane(d3 + <usize>(b << 3), i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(a3, round), 8), a3), 0);
    }
  }
  for (; y < rows; y++) {
    const s0 = src + <usize>(y * srcStride);
    const d0 = dst + <usize>(y * dstStride);
    let tp = tables;
    for (let b = 0; b < blocks; b++) {
      const off = <usize>load<i32>(offs + <usize>(b << 2));
      let a0 = i32x4.splat(0);
      for (let w = 0; w < windows; w++) {
        const w0 = v128.load(s0 + off + <usize>(w << 4));
        const n = load<i32>(pairs + <usize>(w << 2));
        for (let j = 0; j < n; j++) {
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.swizzle(w0, v128.load(tp)), v128.load(tp, 16)));
          tp += 32;
        }
      }
      v128.store64_lane(d0 + <usize>(b << 3), i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(a0, round), 8), a0), 0);
    }
  }
}

/**
 * Vertical pass: rows of 16-bit pixels x 64 in, rows of 8-bit pixels out, 16 pixels at a time
 * (`width` is rounded up to 16: rows need that much room). Output row y reads `taps` source rows
 * from row `offs[y]` (i32), with weights in Q15 repeated across a 128-bit vector (`coefs`, `taps`
 * vectors per output row).
 */
export function vpass(
  src: usize,
  srcStride: i32,
  dst: usize,
  dstStride: i32,
  width: i32,
  dstH: i32,
  offs: usize,
  coefs: usize,
  taps: i32,
): void {
  const round = i16x8.splat(32);
  for (let y = 0; y < dstH; y++) {
    const first = src + <usize>(load<i32>(offs + <usize>(y << 2)) * srcStride);
    const cp = coefs + <usize>(y * taps * 16);
    const drow = dst + <usize>(y * dstStride);
    for (let x = 0; x < width; x += 16) {
      let p = first + <usize>(x << 1);
      const c0 = v128.load(cp);
      let a = i16x8.q15mulr_sat_s(v128.load(p), c0);
      let b = i16x8.q15mulr_sat_s(v128.load(p, 16), c0);
      for (let k = 1; k < taps; k++) {
        p += <usize>srcStride;
        const c = v128.load(cp + <usize>(k << 4));
        a = i16x8.add(a, i16x8.q15mulr_sat_s(v128.load(p), c));
        b = i16x8.add(b, i16x8.q15mulr_sat_s(v128.load(p, 16), c));
      }
      a = i16x8.shr_s(i16x8.add(a, round), 6);
      b = i16x8.shr_s(i16x8.add(b, round), 6);
      v128.store(drow + <usize>x, i8x16.narrow_i16x8_u(a, b));
    }
  }
}
