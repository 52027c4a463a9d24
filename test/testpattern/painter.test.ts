/**
 * The test pattern's painter draws straight into I420. Its frames must show what the same drawing
 * on a 2D canvas shows (real @napi-rs/canvas, converted to I420 by ffmpeg as an independent
 * judge): PSNR per plane well above what any misplaced or missing element would leave, through the
 * bar wrapping around, the disc's orbit, the ring and the clock; a flash frame is white.
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CreateCanvas,
  drawPatternBackground,
  isFlashFrame,
  type PatternContext,
  type PatternOptions,
  PatternPainter,
  patternGeometry,
} from '../../src/testpattern/painter.ts';
import { ffmpeg } from '../support/ffprobe.ts';

const create = createCanvas as unknown as CreateCanvas;
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'lvqr-painter-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The frame drawn the plain way, every element on a 2D canvas: its RGBA pixels. */
function reference(o: PatternOptions, index: number, nowMs: number): Uint8ClampedArray {
  const { width, height, fps } = o;
  const ctx = createCanvas(width, height).getContext('2d');
  if (isFlashFrame(index, fps)) {
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    return ctx.getImageData(0, 0, width, height).data;
  }
  const g = patternGeometry(o, index);
  // The still background is the painter's own canvas drawing; what moves is drawn here the plain way.
  drawPatternBackground(ctx as unknown as PatternContext, o);
  ctx.fillStyle = 'rgba(255,255,255,0.85)';
  ctx.fillRect(g.barX, 0, 24, g.bars);
  ctx.fillStyle = '#ff7a00';
  ctx.beginPath();
  ctx.arc(g.disc.x, g.disc.y, g.disc.r, 0, Math.PI * 2);
  ctx.fill();
  ctx.strokeStyle = '#ffffff';
  ctx.lineWidth = 6;
  ctx.beginPath();
  ctx.arc(g.ring.x, g.ring.y, g.ring.r, -Math.PI / 2, -Math.PI / 2 + g.ring.sweep);
  ctx.stroke();
  ctx.fillStyle = '#ffffff';
  ctx.textBaseline = 'middle';
  ctx.font = `bold ${Math.round(height * 0.075)}px sans-serif`;
  ctx.fillText(`${new Date(nowMs).toISOString().slice(11, 23)} UTC`, width * 0.04, height * 0.79);
  ctx.font = `${Math.round(height * 0.045)}px sans-serif`;
  ctx.fillText(`frame ${index}   ${(index / fps).toFixed(2)} s   ${o.label}`, width * 0.04, height * 0.91);
  return ctx.getImageData(0, 0, width, height).data;
}

/** ffmpeg's conversion of RGBA frames to I420, limited range, BT.709 from 720 lines and BT.601 below (as untagged video is read). */
async function ffmpegI420(rgba: Uint8Array[], width: number, height: number): Promise<Uint8Array> {
  const matrix = height >= 720 ? 'bt709' : 'bt601';
  const input = path.join(tmp, 'frames.rgba');
  const output = path.join(tmp, 'frames.yuv');
  await writeFile(input, Buffer.concat(rgba));
  await ffmpeg([
    ...['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${width}x${height}`, '-i', input],
    ...['-vf', `scale=out_color_matrix=${matrix}:out_range=tv`, '-pix_fmt', 'yuv420p', '-f', 'rawvideo', output],
  ]);
  return new Uint8Array(await readFile(output));
}

/** PSNR of plane `a` against `b`, dB (Infinity when equal). */
function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return se === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255 * a.length) / se);
}

describe('PatternPainter', () => {
  for (const [width, height, frames] of [
    [320, 180, 64], // the bar sweeps the width in 1.8 s: it wraps around within the run
    [1280, 720, 20],
  ] as const) {
    it(`${width}x${height}: ${frames} frames match the same drawing on a canvas (ffmpeg's I420 of it), a flash frame is white`, async () => {
      const o = { width, height, fps: 30, label: 'painter test' };
      const painter = new PatternPainter(create, o);
      // Every third frame, so the frames probed cover the whole run; the flash at 0.5 s included.
      const indices = Array.from({ length: frames }, (_, i) => i * 3).concat([15]);
      const ours: Uint8Array[] = [];
      const refs: Uint8Array[] = [];
      for (const index of indices) {
        const nowMs = Date.UTC(2026, 0, 1) + index * 33;
        ours.push(painter.paint(index, nowMs).slice());
        const rgba = reference(o, index, nowMs);
        refs.push(new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength));
      }
      const judged = await ffmpegI420(refs, width, height);
      const luma = width * height;
      const size = luma * 1.5;
      const worst = { y: Number.POSITIVE_INFINITY, u: Number.POSITIVE_INFINITY, v: Number.POSITIVE_INFINITY };
      indices.forEach((index, k) => {
        const a = ours[k]!;
        const b = judged.subarray(k * size, (k + 1) * size);
        const planes = {
          y: psnr(a.subarray(0, luma), b.subarray(0, luma)),
          u: psnr(a.subarray(luma, luma * 1.25), b.subarray(luma, luma * 1.25)),
          v: psnr(a.subarray(luma * 1.25), b.subarray(luma * 1.25)),
        };
        for (const p of ['y', 'u', 'v'] as const) worst[p] = Math.min(worst[p], planes[p]);
        if (isFlashFrame(index, 30)) {
          expect(
            a.subarray(0, luma).every((v) => v === 235),
            `flash frame ${index}: Y`,
          ).toBe(true);
          expect(
            a.subarray(luma).every((v) => v === 128),
            `flash frame ${index}: U and V`,
          ).toBe(true);
        }
      });
      console.log(
        `${width}x${height}: worst PSNR Y ${worst.y.toFixed(1)} U ${worst.u.toFixed(1)} V ${worst.v.toFixed(1)} dB`,
      );
      expect(worst.y).toBeGreaterThan(38);
      expect(worst.u).toBeGreaterThan(38);
      expect(worst.v).toBeGreaterThan(38);
      // The pictures move: consecutive probed frames differ.
      for (let k = 1; k < frames; k++)
        expect(Buffer.compare(ours[k]!, ours[k - 1]!), `frame ${indices[k]}`).not.toBe(0);
    });
  }

  it('refuses an odd size', () => {
    expect(() => new PatternPainter(create, { width: 321, height: 180, fps: 30, label: '' })).toThrow(RangeError);
  });
});
