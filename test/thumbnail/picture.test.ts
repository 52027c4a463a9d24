/**
 * Thumbnail pixels: sizes (clamped, even, aspect kept) and the I420 -> RGBA conversion (box
 * filter, limited-range BT.601/BT.709) on frames with known planes.
 */

import { describe, expect, it } from 'vitest';
import { i420ToRgba, readI420, thumbnailSize, thumbnailWidth } from '../../src/thumbnail/picture.ts';
import type { VideoFramePort } from '../../src/webcodecs/index.ts';

/** A frame double holding packed I420 planes filled by `fill(plane, x, y)`. */
function i420Frame(width: number, height: number, fill: (plane: 'y' | 'u' | 'v', x: number, y: number) => number) {
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  const bytes = new Uint8Array(width * height + 2 * cw * ch);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) bytes[y * width + x] = fill('y', x, y);
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      bytes[width * height + y * cw + x] = fill('u', x, y);
      bytes[width * height + cw * ch + y * cw + x] = fill('v', x, y);
    }
  }
  const frame: VideoFramePort = {
    format: 'I420',
    codedWidth: width,
    codedHeight: height,
    displayWidth: width,
    displayHeight: height,
    timestamp: 0,
    duration: null,
    allocationSize: () => bytes.byteLength,
    copyTo: async (dest: Uint8Array) => {
      dest.set(bytes);
      return [];
    },
    clone: () => frame,
    close: () => {},
  };
  return frame;
}

const pixel = (data: Uint8ClampedArray, width: number, x: number, y: number) => [
  ...data.subarray((y * width + x) * 4, (y * width + x) * 4 + 4),
];

describe('thumbnail pictures', () => {
  it('clamps the width, keeps the aspect ratio and makes both sides even', () => {
    expect(thumbnailWidth(0)).toBe(32);
    expect(thumbnailWidth(161)).toBe(162);
    expect(thumbnailWidth(100_000)).toBe(640);
    expect(thumbnailSize(1280, 720, 320)).toEqual({ width: 320, height: 180 });
    expect(thumbnailSize(720, 1280, 320)).toEqual({ width: 320, height: 568 });
    expect(thumbnailSize(1920, 1080, 100)).toEqual({ width: 100, height: 56 });
  });

  it('converts limited-range BT.709 (720 lines) and BT.601 (below) to RGB', async () => {
    // Limited-range white, black and BT.709 / BT.601 pure red.
    const hd = await readI420(i420Frame(1280, 720, (p) => (p === 'y' ? 63 : p === 'u' ? 102 : 240)));
    const hdRed = pixel(i420ToRgba(hd, 32, 18).data, 32, 5, 5);
    expect(hdRed[0]).toBeGreaterThan(245);
    expect(hdRed[1]).toBeLessThan(10);
    expect(hdRed[2]).toBeLessThan(10);
    const sd = await readI420(i420Frame(640, 360, (p) => (p === 'y' ? 81 : p === 'u' ? 90 : 240)));
    const red = pixel(i420ToRgba(sd, 32, 18).data, 32, 3, 3);
    expect(red[0]).toBeGreaterThan(245);
    expect(red[1]).toBeLessThan(10);
    expect(red[2]).toBeLessThan(10);
    const white = await readI420(i420Frame(64, 36, (p) => (p === 'y' ? 235 : 128)));
    expect(pixel(i420ToRgba(white, 32, 18).data, 32, 0, 0)).toEqual([255, 255, 255, 255]);
  });

  it('averages the source area of each output pixel (box filter)', async () => {
    // Vertical stripes one pixel wide, black and white: every 2:1 output pixel is mid grey.
    const stripes = await readI420(i420Frame(64, 64, (p, x) => (p === 'y' ? (x % 2 === 0 ? 16 : 235) : 128)));
    const { data } = i420ToRgba(stripes, 32, 32);
    for (const x of [0, 7, 31]) {
      const [r, g, b] = pixel(data, 32, x, 10);
      expect(r).toBeGreaterThan(120);
      expect(r).toBeLessThan(136);
      expect(g).toBe(r);
      expect(b).toBe(r);
    }
  });

  it('refuses frames that are not I420', async () => {
    const frame = { ...i420Frame(16, 16, () => 128), format: 'NV12' };
    await expect(readI420(frame)).rejects.toThrow(/unsupported pixel format NV12/);
  });
});
