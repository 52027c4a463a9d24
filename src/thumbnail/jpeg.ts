/**
 * RGBA images to JPEG with `@napi-rs/canvas` (loaded on first use, as the test pattern loads it).
 */

import type { RgbaImage } from './picture.ts';

/** JPEG quality of thumbnails (0-100). */
const QUALITY = 80;

/** The members of `@napi-rs/canvas` used here. */
type CanvasModule = {
  createCanvas(
    width: number,
    height: number,
  ): {
    getContext(kind: '2d'): { putImageData(image: unknown, dx: number, dy: number): void };
    encode(format: 'jpeg', quality?: number): Promise<Uint8Array>;
  };
  ImageData: new (data: Uint8ClampedArray, width: number, height: number) => unknown;
};

let canvasModule: Promise<CanvasModule> | undefined;

/** `image` encoded as a baseline JPEG. */
export async function encodeJpeg(image: RgbaImage): Promise<Uint8Array> {
  canvasModule ??= import('@napi-rs/canvas') as unknown as Promise<CanvasModule>;
  const { createCanvas, ImageData } = await canvasModule;
  const canvas = createCanvas(image.width, image.height);
  canvas.getContext('2d').putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
  const jpeg = await canvas.encode('jpeg', QUALITY);
  return new Uint8Array(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength);
}
