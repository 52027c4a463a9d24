/**
 * Decoded pictures to small RGBA images: the thumbnail size for a requested width, and an I420
 * frame read out of a WebCodecs frame, box-filtered down to that size and converted from
 * limited-range YUV (BT.709 at 720 lines and more, BT.601 below, as untagged video is read) to RGB.
 */

import { untaggedMatrix } from '../core/colour.ts';
import { LvqrError } from '../core/errors.ts';
import type { VideoFramePort } from '../webcodecs/index.ts';

/** Narrowest thumbnail served, pixels. */
export const MIN_THUMBNAIL_WIDTH = 32;
/** Widest thumbnail served, pixels. */
export const MAX_THUMBNAIL_WIDTH = 640;
/** Width served without `?width=`, pixels. */
export const DEFAULT_THUMBNAIL_WIDTH = 320;

/** An RGBA image, 4 bytes a pixel, rows packed. */
export type RgbaImage = { data: Uint8ClampedArray; width: number; height: number };

/** The nearest even number to `value`, at least 2. */
function even(value: number): number {
  return Math.max(2, Math.round(value / 2) * 2);
}

/** `requested` clamped to [MIN_THUMBNAIL_WIDTH, MAX_THUMBNAIL_WIDTH] and made even. */
export function thumbnailWidth(requested: number): number {
  return even(Math.min(MAX_THUMBNAIL_WIDTH, Math.max(MIN_THUMBNAIL_WIDTH, requested)));
}

/**
 * The thumbnail size for `requested` width of a `sourceWidth` x `sourceHeight` picture: the width
 * from `thumbnailWidth`, the height from the source's aspect ratio, made even.
 */
export function thumbnailSize(
  sourceWidth: number,
  sourceHeight: number,
  requested: number,
): { width: number; height: number } {
  const width = thumbnailWidth(requested);
  return { width, height: even((width * sourceHeight) / sourceWidth) };
}

/** An I420 picture: three planes, chroma at half size (rounded up). */
export type I420 = { y: Uint8Array; u: Uint8Array; v: Uint8Array; width: number; height: number };

/**
 * Reads the I420 planes of `frame` (packed, as `copyTo` writes them without a layout). Its visible
 * size is the display size when the allocation matches it, else the coded size.
 */
export async function readI420(frame: VideoFramePort): Promise<I420> {
  if (frame.format !== 'I420') {
    throw new LvqrError('codec.decode_failed', `thumbnail: unsupported pixel format ${String(frame.format)}`);
  }
  const size = frame.allocationSize();
  const fits = (w: number, h: number) => w > 0 && h > 0 && w * h + 2 * Math.ceil(w / 2) * Math.ceil(h / 2) === size;
  const [width, height] = fits(frame.displayWidth, frame.displayHeight)
    ? [frame.displayWidth, frame.displayHeight]
    : [frame.codedWidth, frame.codedHeight];
  if (!fits(width, height)) {
    throw new LvqrError('codec.decode_failed', `thumbnail: ${size} bytes do not hold a ${width}x${height} I420 frame`);
  }
  const bytes = new Uint8Array(size);
  await frame.copyTo(bytes);
  const lumaSize = width * height;
  const chromaSize = Math.ceil(width / 2) * Math.ceil(height / 2);
  return {
    y: bytes.subarray(0, lumaSize),
    u: bytes.subarray(lumaSize, lumaSize + chromaSize),
    v: bytes.subarray(lumaSize + chromaSize),
    width,
    height,
  };
}

/** For each output column (or row), the [start, end) source span it averages. */
function spans(source: number, output: number): Int32Array {
  const out = new Int32Array(output * 2);
  const scale = source / output;
  for (let i = 0; i < output; i++) {
    const start = Math.min(source - 1, Math.floor(i * scale));
    out[i * 2] = start;
    out[i * 2 + 1] = Math.max(start + 1, Math.min(source, Math.floor((i + 1) * scale)));
  }
  return out;
}

/** `plane` (`width` x `height`) averaged down to `outWidth` x `outHeight` (box filter). */
function boxScale(plane: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  const out = new Uint8Array(outWidth * outHeight);
  const xs = spans(width, outWidth);
  const ys = spans(height, outHeight);
  const row = new Uint32Array(outWidth);
  for (let oy = 0; oy < outHeight; oy++) {
    row.fill(0);
    const y0 = ys[oy * 2]!;
    const y1 = ys[oy * 2 + 1]!;
    for (let y = y0; y < y1; y++) {
      const base = y * width;
      for (let ox = 0; ox < outWidth; ox++) {
        let sum = 0;
        for (let x = xs[ox * 2]!, end = xs[ox * 2 + 1]!; x < end; x++) sum += plane[base + x]!;
        row[ox] = row[ox]! + sum;
      }
    }
    for (let ox = 0; ox < outWidth; ox++) {
      const area = (xs[ox * 2 + 1]! - xs[ox * 2]!) * (y1 - y0);
      out[oy * outWidth + ox] = Math.round(row[ox]! / area);
    }
  }
  return out;
}

/** `picture` scaled to `width` x `height` and converted to RGBA. */
export function i420ToRgba(picture: I420, width: number, height: number): RgbaImage {
  const chromaWidth = Math.ceil(picture.width / 2);
  const chromaHeight = Math.ceil(picture.height / 2);
  const y = boxScale(picture.y, picture.width, picture.height, width, height);
  const u = boxScale(picture.u, chromaWidth, chromaHeight, width, height);
  const v = boxScale(picture.v, chromaWidth, chromaHeight, width, height);
  // Limited-range coefficients of the matrix untagged video is read with (BT.709 for HD, BT.601 for SD).
  const [rv, gu, gv, bu] =
    untaggedMatrix(picture.height) === 'bt709' ? [1.793, 0.213, 0.533, 2.112] : [1.596, 0.392, 0.813, 2.017];
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const luma = 1.164 * (y[i]! - 16);
    const cb = u[i]! - 128;
    const cr = v[i]! - 128;
    data[i * 4] = luma + rv * cr;
    data[i * 4 + 1] = luma - gu * cb - gv * cr;
    data[i * 4 + 2] = luma + bu * cb;
    data[i * 4 + 3] = 255;
  }
  return { data, width, height };
}
