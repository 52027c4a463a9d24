/**
 * `PatternPainter`: draws the test pattern's frames straight into I420 planes, the encoder's own
 * format. The still background is drawn once with @napi-rs/canvas and converted; each frame copies
 * it, draws the moving bar, the orbiting disc and the ring with anti-aliased edges, and lays the
 * two text lines on it from a small canvas. Drawing each frame on a 1280x720 canvas, reading it
 * back and letting the encoder convert RGBA cost about 15 ms of CPU a frame on 2 vCPU (half a core
 * at 30 fps, as much as x264); this costs about 6 ms.
 *
 * Colours are limited range, BT.709 at 720 lines and more and BT.601 below: the encoder tags no
 * colour description, and that is how players (and thumbnail/picture.ts) read untagged video
 * (`untaggedMatrix`).
 */

import { type ColourMatrix, untaggedMatrix } from '../core/colour.ts';

/** The canvas calls the painter makes (a subset of @napi-rs/canvas's 2D context). */
export type PatternContext = {
  fillStyle: unknown;
  font: string;
  textBaseline: string;
  fillRect(x: number, y: number, w: number, h: number): void;
  clearRect(x: number, y: number, w: number, h: number): void;
  fillText(text: string, x: number, y: number): void;
  createLinearGradient(x0: number, y0: number, x1: number, y1: number): { addColorStop(o: number, c: string): void };
  getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
};
export type PatternCanvas = { getContext(kind: '2d'): PatternContext };
export type CreateCanvas = (width: number, height: number) => PatternCanvas;

/** What the pattern shows; `width` and `height` even. */
export type PatternOptions = { width: number; height: number; fps: number; label: string };

/** Where in each second of the timeline a beep starts (and its flash frame lies). */
export const BEEP_OFFSET_S = 0.5;

/** Whether frame `index` at `fps` holds the instant a beep starts (half past a second): the flash frame. */
export function isFlashFrame(index: number, fps: number): boolean {
  const mark = Math.ceil(index / fps - BEEP_OFFSET_S - 1e-9) + BEEP_OFFSET_S;
  return mark < (index + 1) / fps - 1e-9;
}

/** A colour as I420 samples. */
type Yuv = { y: number; u: number; v: number };

/** Limited-range YUV of 8-bit RGB (coefficients x 256). */
const MATRICES: Record<ColourMatrix, readonly [number, number, number, number, number, number, number, number]> = {
  bt601: [65.738, 129.057, 25.064, -37.945, -74.494, -94.154, -18.285, 112.439],
  bt709: [46.742, 157.243, 15.874, -25.765, -86.674, -102.129, -10.31, 112.439],
};

/** Limited-range YUV of 8-bit RGB with `matrix` (BT.601 by default). */
export function rgbToYuv(r: number, g: number, b: number, matrix: ColourMatrix = 'bt601'): Yuv {
  const [yr, yg, yb, ur, ug, vg, vb, half] = MATRICES[matrix];
  return {
    y: 16 + (yr * r + yg * g + yb * b) / 256,
    u: 128 + (ur * r + ug * g + half * b) / 256,
    v: 128 + (half * r + vg * g + vb * b) / 256,
  };
}

/** Geometry of frame `index`, in pixels: what moves, and where. */
export function patternGeometry(o: Pick<PatternOptions, 'width' | 'height' | 'fps'>, index: number) {
  const { width, height, fps } = o;
  const t = index / fps;
  return {
    /** The colour bars' height and where the dark band starts (whole pixels). */
    bars: Math.round(height * 0.62),
    band: Math.round(height * 0.7),
    /** The sweeping bar: 24 px wide, 85 % white, over the colour bars. */
    barX: ((t * 240) % (width + 120)) - 120,
    /** The orbiting disc. */
    disc: {
      x: width / 2 + Math.cos(t * 1.7) * width * 0.3,
      y: height * 0.31 + Math.sin(t * 1.7) * height * 0.2,
      r: height * 0.07,
    },
    /** The ring filling clockwise from the top over each second, 6 px wide. */
    ring: { x: width - 90, y: height * 0.85, r: 50, sweep: ((index % fps) / fps) * Math.PI * 2 },
  };
}

/** Draws frames of the pattern; `paint` returns the frame as one I420 buffer (Y, then U, then V). */
export class PatternPainter {
  readonly #o: PatternOptions;
  /** The background's planes. */
  readonly #background: Uint8Array;
  /** White and the disc's orange in the pattern's matrix. */
  readonly #white: Yuv;
  readonly #orange: Yuv;
  /** The frame being drawn (reused: valid until the next `paint`). */
  readonly #frame: Uint8Array;
  readonly #text: { ctx: PatternContext; height: number; top: number };

  constructor(createCanvas: CreateCanvas, options: PatternOptions) {
    const { width, height } = options;
    if (width % 2 !== 0 || height % 2 !== 0)
      throw new RangeError(`test pattern size must be even, got ${width}x${height}`);
    this.#o = options;
    const background = createCanvas(width, height).getContext('2d');
    drawPatternBackground(background, options);
    const matrix = untaggedMatrix(height);
    this.#white = rgbToYuv(255, 255, 255, matrix);
    this.#orange = rgbToYuv(0xff, 0x7a, 0x00, matrix);
    this.#background = toI420(background.getImageData(0, 0, width, height).data, width, height, matrix);
    this.#frame = new Uint8Array(this.#background.length);
    // The two text lines (centred at 0.79 and 0.91 of the height) and what their glyphs may reach.
    const top = Math.max(0, Math.floor((height * 0.79 - height * 0.075) / 2) * 2);
    const bottom = Math.min(height, Math.ceil((height * 0.91 + height * 0.045) / 2) * 2);
    this.#text = { ctx: createCanvas(width, bottom - top).getContext('2d'), height: bottom - top, top };
  }

  /** Draws frame `index` with the clock at `nowMs`. */
  paint(index: number, nowMs: number): Uint8Array {
    const { width, height, fps } = this.#o;
    const frame = this.#frame;
    const lumaSize = width * height;
    if (isFlashFrame(index, fps)) {
      frame.fill(Math.round(this.#white.y), 0, lumaSize);
      frame.fill(128, lumaSize);
      return frame;
    }
    frame.set(this.#background);
    const g = patternGeometry(this.#o, index);
    // The bar: full rows down to the colour bars' edge, partly covered columns at its sides.
    this.#fill(Math.floor(g.barX), 0, Math.ceil(g.barX + 24), g.bars, this.#white, 0.85, (x) =>
      Math.max(0, Math.min(x + 1, g.barX + 24) - Math.max(x, g.barX)),
    );
    const { disc, ring } = g;
    this.#fill(
      disc.x - disc.r - 1,
      disc.y - disc.r - 1,
      disc.x + disc.r + 1,
      disc.y + disc.r + 1,
      this.#orange,
      1,
      (x, y) => {
        const dx = x + 0.5 - disc.x;
        const dy = y + 0.5 - disc.y;
        return clamp01(disc.r + 0.5 - Math.sqrt(dx * dx + dy * dy));
      },
    );
    if (ring.sweep > 0) {
      const outer = ring.r + 4;
      this.#fill(ring.x - outer, ring.y - outer, ring.x + outer, ring.y + outer, this.#white, 1, (x, y) => {
        const dx = x + 0.5 - ring.x;
        const dy = y + 0.5 - ring.y;
        const radial = clamp01(3.5 - Math.abs(Math.sqrt(dx * dx + dy * dy) - ring.r));
        if (radial === 0) return 0;
        // Clockwise on screen from the top (y grows downwards).
        const angle = (Math.atan2(dy, dx) + Math.PI / 2 + 2 * Math.PI) % (2 * Math.PI);
        return angle <= ring.sweep ? radial : 0;
      });
    }
    this.#drawText(index, nowMs);
    return frame;
  }

  /**
   * Blends `color` at `alpha` times `coverage(x, y)` (how much of luma pixel x, y the shape covers,
   * 0-1) into the box [x0, x1) x [y0, y1); chroma takes the mean coverage of its four luma pixels.
   */
  #fill(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    color: Yuv,
    alpha: number,
    coverage: (x: number, y: number) => number,
  ): void {
    const { width, height } = this.#o;
    const frame = this.#frame;
    const left = Math.max(0, Math.floor(x0 / 2) * 2);
    const top = Math.max(0, Math.floor(y0 / 2) * 2);
    const right = Math.min(width, Math.ceil(x1 / 2) * 2);
    const bottom = Math.min(height, Math.ceil(y1 / 2) * 2);
    const lumaSize = width * height;
    const chromaWidth = width / 2;
    const uOffset = lumaSize;
    const vOffset = lumaSize + lumaSize / 4;
    for (let y = top; y < bottom; y += 2) {
      for (let x = left; x < right; x += 2) {
        let sum = 0;
        for (let k = 0; k < 4; k++) {
          const px = x + (k & 1);
          const py = y + (k >> 1);
          const a = coverage(px, py) * alpha;
          if (a <= 0) continue;
          sum += a;
          const i = py * width + px;
          frame[i] = (frame[i]! + a * (color.y - frame[i]!) + 0.5) | 0;
        }
        if (sum <= 0) continue;
        const a = sum / 4;
        const c = (y / 2) * chromaWidth + x / 2;
        frame[uOffset + c] = (frame[uOffset + c]! + a * (color.u - frame[uOffset + c]!) + 0.5) | 0;
        frame[vOffset + c] = (frame[vOffset + c]! + a * (color.v - frame[vOffset + c]!) + 0.5) | 0;
      }
    }
  }

  /** The clock and the frame line, drawn white on a small canvas and blended in by their coverage. */
  #drawText(index: number, nowMs: number): void {
    const { width, height, fps, label } = this.#o;
    const { ctx, top, height: textHeight } = this.#text;
    ctx.clearRect(0, 0, width, textHeight);
    ctx.fillStyle = '#ffffff';
    ctx.textBaseline = 'middle';
    ctx.font = `bold ${Math.round(height * 0.075)}px sans-serif`;
    ctx.fillText(`${new Date(nowMs).toISOString().slice(11, 23)} UTC`, width * 0.04, height * 0.79 - top);
    ctx.font = `${Math.round(height * 0.045)}px sans-serif`;
    ctx.fillText(`frame ${index}   ${(index / fps).toFixed(2)} s   ${label}`, width * 0.04, height * 0.91 - top);
    const rgba = ctx.getImageData(0, 0, width, textHeight).data;
    // White glyphs: the alpha channel is the coverage. Most of the band is empty: a 2x2 block
    // without glyph is skipped after four reads. `top` is even, so blocks line up with chroma.
    const frame = this.#frame;
    const lumaSize = width * height;
    const chromaWidth = width / 2;
    const white = this.#white;
    const y = white.y;
    for (let row = 0; row + 1 < textHeight; row += 2) {
      const line = row * width * 4;
      for (let x = 0; x < width; x += 2) {
        const p = line + x * 4 + 3;
        const a0 = rgba[p]!;
        const a1 = rgba[p + 4]!;
        const a2 = rgba[p + width * 4]!;
        const a3 = rgba[p + width * 4 + 4]!;
        if (a0 + a1 + a2 + a3 === 0) continue;
        const i = (top + row) * width + x;
        if (a0 > 0) frame[i] = (frame[i]! + (a0 / 255) * (y - frame[i]!) + 0.5) | 0;
        if (a1 > 0) frame[i + 1] = (frame[i + 1]! + (a1 / 255) * (y - frame[i + 1]!) + 0.5) | 0;
        if (a2 > 0) frame[i + width] = (frame[i + width]! + (a2 / 255) * (y - frame[i + width]!) + 0.5) | 0;
        if (a3 > 0) frame[i + width + 1] = (frame[i + width + 1]! + (a3 / 255) * (y - frame[i + width + 1]!) + 0.5) | 0;
        const a = (a0 + a1 + a2 + a3) / (4 * 255);
        const c = ((top + row) / 2) * chromaWidth + x / 2;
        const u = lumaSize + c;
        const v = lumaSize + lumaSize / 4 + c;
        frame[u] = (frame[u]! + a * (white.u - frame[u]!) + 0.5) | 0;
        frame[v] = (frame[v]! + a * (white.v - frame[v]!) + 0.5) | 0;
      }
    }
  }
}

/** The still background (colour bars, grey ramp, dark band) on a 2D canvas. */
export function drawPatternBackground(ctx: PatternContext, o: Pick<PatternOptions, 'width' | 'height' | 'fps'>): void {
  const { width, height } = o;
  const { bars, band } = patternGeometry(o, 0);
  const colors = ['#c0c0c0', '#c0c000', '#00c0c0', '#00c000', '#c000c0', '#c00000', '#0000c0'];
  colors.forEach((c, i) => {
    const x = Math.round((i * width) / colors.length);
    ctx.fillStyle = c;
    ctx.fillRect(x, 0, Math.round(((i + 1) * width) / colors.length) - x, bars);
  });
  const gradient = ctx.createLinearGradient(0, 0, width, 0);
  gradient.addColorStop(0, '#000000');
  gradient.addColorStop(1, '#ffffff');
  ctx.fillStyle = gradient;
  ctx.fillRect(0, bars, width, band - bars);
  ctx.fillStyle = '#101418';
  ctx.fillRect(0, band, width, height - band);
}

const clamp01 = (v: number): number => (v <= 0 ? 0 : Math.min(v, 1));

/** RGBA pixels (opaque) as one I420 buffer with `matrix`; chroma from the mean of each 2x2 block. */
export function toI420(
  rgba: Uint8ClampedArray | Uint8Array,
  width: number,
  height: number,
  matrix: ColourMatrix = 'bt601',
): Uint8Array {
  const lumaSize = width * height;
  const out = new Uint8Array(lumaSize + lumaSize / 2);
  for (let i = 0; i < lumaSize; i++) {
    const p = i * 4;
    out[i] = Math.round(rgbToYuv(rgba[p]!, rgba[p + 1]!, rgba[p + 2]!, matrix).y);
  }
  const chromaWidth = width / 2;
  for (let y = 0; y < height; y += 2) {
    for (let x = 0; x < width; x += 2) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const p of [
        (y * width + x) * 4,
        (y * width + x + 1) * 4,
        ((y + 1) * width + x) * 4,
        ((y + 1) * width + x + 1) * 4,
      ]) {
        r += rgba[p]!;
        g += rgba[p + 1]!;
        b += rgba[p + 2]!;
      }
      const c = rgbToYuv(r / 4, g / 4, b / 4, matrix);
      const i = (y / 2) * chromaWidth + x / 2;
      out[lumaSize + i] = Math.round(c.u);
      out[lumaSize + lumaSize / 4 + i] = Math.round(c.v);
    }
  }
  return out;
}
