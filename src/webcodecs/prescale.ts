/**
 * Mip prescaler. `@napi-rs/webcodecs` 1.3.1 scales inside `VideoEncoder` with plain bilinear and
 * no prefilter when the configured size is smaller than the frame: fine up to ~2x, aliased beyond
 * (measured from 1080p: 240p 3.6 dB, 480p 1.5 dB below ffmpeg's bicubic). `MipFrames` builds 2x2
 * box-averaged halvings of one decoded frame on demand (level 1 = 1/2, level 2 = 1/4, ...), each
 * from the previous one and once per source frame, and hands every rung the smallest level that is
 * still at least the rung size, so the encoder's own step stays <= ~2x.
 *
 * Sizes: a level is `max(2, floor(n / 2))` rounded down to even in each dimension (H.264 needs
 * even sizes), so an odd half drops the last source row/column pair of that level (<= 1 % of it).
 * Runtime-neutral: no `node:*` imports; works with any `WebCodecs` port implementation.
 */

import { argumentError, CodecError, errorMessage } from '../core/errors.ts';
import type { VideoFramePort, WebCodecs } from './port.ts';

/** A tightly packed I420 picture: Y (`width` x `height`), then U and V (`(width+1)>>1` x `(height+1)>>1`). */
export type I420Image = { data: Uint8Array; width: number; height: number };

/** Byte size of a tightly packed I420 picture. */
export function i420Size(width: number, height: number): number {
  return width * height + 2 * ((width + 1) >> 1) * ((height + 1) >> 1);
}

/** One dimension after a halving: `max(2, floor(n / 2))` rounded down to even. */
export function halvedDimension(n: number): number {
  return Math.max(2, (n >> 1) & ~1);
}

function checkDimension(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 65_536)
    throw argumentError(name, 'an integer in 1..65536', value);
}

/**
 * Level of a `srcW` x `srcH` source to encode at `dstW` x `dstH`: the most-halved level whose
 * width and height are both still >= the target (0 when the target is the source size or larger).
 */
export function chooseLevel(srcW: number, srcH: number, dstW: number, dstH: number): number {
  checkDimension('srcW', srcW);
  checkDimension('srcH', srcH);
  if (!(dstW > 0) || !Number.isFinite(dstW)) throw argumentError('dstW', 'a finite number > 0', dstW);
  if (!(dstH > 0) || !Number.isFinite(dstH)) throw argumentError('dstH', 'a finite number > 0', dstH);
  let level = 0;
  let width = srcW;
  let height = srcH;
  for (;;) {
    const nextW = halvedDimension(width);
    const nextH = halvedDimension(height);
    if (nextW < dstW || nextH < dstH || (nextW >= width && nextH >= height)) return level;
    width = nextW;
    height = nextH;
    level++;
  }
}

/** Size of each level from 0 (the source) down to the last one that still shrinks. */
export function mipSizes(width: number, height: number): Array<{ width: number; height: number }> {
  checkDimension('width', width);
  checkDimension('height', height);
  const sizes = [{ width, height }];
  for (;;) {
    const last = sizes[sizes.length - 1]!;
    const next = { width: halvedDimension(last.width), height: halvedDimension(last.height) };
    if (next.width >= last.width && next.height >= last.height) return sizes;
    sizes.push(next);
  }
}

const LANES = 0x00ff00ff;
const ROUND = 0x00020002;

/**
 * One plane, 2x2 box average with rounding. The fast path reads two source rows 32 bits at a time
 * (two pairs of bytes added in 16-bit lanes) and writes four outputs as one 32-bit word; it needs
 * 4-byte aligned rows and no clamping, which covers every usual size (the rest go byte by byte).
 */
function halvePlane(
  src: Uint8Array,
  srcOffset: number,
  srcW: number,
  srcH: number,
  dst: Uint8Array,
  dstOffset: number,
  dstW: number,
  dstH: number,
  src32: Uint32Array,
  dst32: Uint32Array,
): void {
  if (2 * dstW > srcW || 2 * dstH > srcH) {
    halvePlaneClamped(src, srcOffset, srcW, srcH, dst, dstOffset, dstW, dstH);
    return;
  }
  const srcBase = src.byteOffset + srcOffset;
  const dstBase = dst.byteOffset + dstOffset;
  const quads = dstW >> 2;
  const wordRows = (srcW & 3) === 0;
  for (let y = 0; y < dstH; y++) {
    const rowA = srcBase + 2 * y * srcW;
    const rowO = dstBase + y * dstW;
    let x = 0;
    if (wordRows && (rowA & 3) === 0 && (rowO & 3) === 0) {
      let a = rowA >> 2;
      let b = (rowA + srcW) >> 2;
      let o = rowO >> 2;
      for (let k = 0; k < quads; k++) {
        let p = src32[a]!;
        let q = src32[b]!;
        // Lanes: bits 0-9 = p0+p1+q0+q1 (+2), bits 16-25 = p2+p3+q2+q3 (+2).
        const lo = (p & LANES) + ((p >>> 8) & LANES) + (q & LANES) + ((q >>> 8) & LANES) + ROUND;
        p = src32[a + 1]!;
        q = src32[b + 1]!;
        const hi = (p & LANES) + ((p >>> 8) & LANES) + (q & LANES) + ((q >>> 8) & LANES) + ROUND;
        dst32[o++] =
          ((lo >>> 2) & 0xff) | ((lo >>> 10) & 0xff00) | (((hi >>> 2) & 0xff) << 16) | (((hi >>> 10) & 0xff00) << 16);
        a += 2;
        b += 2;
      }
      x = quads << 2;
    }
    let a = srcOffset + 2 * y * srcW + 2 * x;
    let b = a + srcW;
    let o = dstOffset + y * dstW + x;
    const end = dstOffset + (y + 1) * dstW;
    while (o < end) {
      dst[o++] = (src[a]! + src[a + 1]! + src[b]! + src[b + 1]! + 2) >> 2;
      a += 2;
      b += 2;
    }
  }
}

/** Byte-by-byte path that clamps to the last row/column (only tiny planes get here). */
function halvePlaneClamped(
  src: Uint8Array,
  srcOffset: number,
  srcW: number,
  srcH: number,
  dst: Uint8Array,
  dstOffset: number,
  dstW: number,
  dstH: number,
): void {
  for (let y = 0; y < dstH; y++) {
    const rowA = srcOffset + Math.min(2 * y, srcH - 1) * srcW;
    const rowB = srcOffset + Math.min(2 * y + 1, srcH - 1) * srcW;
    for (let x = 0; x < dstW; x++) {
      const c0 = Math.min(2 * x, srcW - 1);
      const c1 = Math.min(2 * x + 1, srcW - 1);
      dst[dstOffset + y * dstW + x] = (src[rowA + c0]! + src[rowA + c1]! + src[rowB + c0]! + src[rowB + c1]! + 2) >> 2;
    }
  }
}

function wordView(bytes: Uint8Array): Uint32Array {
  return new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >> 2);
}

/**
 * Halves a tightly packed I420 picture with a rounded 2x2 box average per plane. Output size is
 * `halvedDimension` of each side (even, >= 2); source rows/columns beyond twice the output are not
 * read, and planes smaller than twice the output (sizes below 4) clamp to their last row/column.
 * `out` (optional) receives the result when it is large enough; otherwise a new buffer is made.
 */
export function halveI420(src: Uint8Array, width: number, height: number, out?: Uint8Array): I420Image {
  if (!(src instanceof Uint8Array)) throw argumentError('src', 'a Uint8Array', src);
  checkDimension('width', width);
  checkDimension('height', height);
  const need = i420Size(width, height);
  if (src.length < need) throw argumentError('src', `at least ${need} bytes of I420 ${width}x${height}`, src.length);
  const dw = halvedDimension(width);
  const dh = halvedDimension(height);
  const size = i420Size(dw, dh);
  const data = out !== undefined && out.length >= size ? out.subarray(0, size) : new Uint8Array(size);
  const src32 = wordView(src);
  const dst32 = wordView(data);
  const cw = (width + 1) >> 1;
  const ch = (height + 1) >> 1;
  const dcw = dw >> 1;
  const dch = dh >> 1;
  halvePlane(src, 0, width, height, data, 0, dw, dh, src32, dst32);
  const srcU = width * height;
  const dstU = dw * dh;
  halvePlane(src, srcU, cw, ch, data, dstU, dcw, dch, src32, dst32);
  halvePlane(src, srcU + cw * ch, cw, ch, data, dstU + dcw * dch, dcw, dch, src32, dst32);
  return { data, width: dw, height: dh };
}

/**
 * Recycles I420 buffers between `MipFrames` of successive source frames (a fresh 3 MB buffer costs
 * ~1.5 ms of page faults per 1080p `copyTo` here). Keeps at most `maxPerSize` free buffers a size.
 */
export class I420BufferPool {
  readonly #free = new Map<number, Uint8Array[]>();
  readonly #maxPerSize: number;

  constructor(maxPerSize = 4) {
    if (!Number.isInteger(maxPerSize) || maxPerSize < 0)
      throw argumentError('maxPerSize', 'an integer >= 0', maxPerSize);
    this.#maxPerSize = maxPerSize;
  }

  /** A buffer of exactly `size` bytes (contents undefined). */
  take(size: number): Uint8Array {
    return this.#free.get(size)?.pop() ?? new Uint8Array(size);
  }

  /** Returns a buffer; the caller must not use it afterwards. */
  give(buffer: Uint8Array): void {
    let list = this.#free.get(buffer.length);
    if (list === undefined) {
      list = [];
      this.#free.set(buffer.length, list);
    }
    if (list.length < this.#maxPerSize) list.push(buffer);
  }
}

type Layout = { offset: number; stride: number };

function readLayouts(result: unknown): Layout[] | undefined {
  if (!Array.isArray(result)) return undefined;
  const layouts: Layout[] = [];
  for (const entry of result) {
    const offset = (entry as Partial<Layout> | null)?.offset;
    const stride = (entry as Partial<Layout> | null)?.stride;
    if (typeof offset !== 'number' || typeof stride !== 'number') return undefined;
    layouts.push({ offset, stride });
  }
  return layouts;
}

/**
 * Copies one plane of `planeW` x `planeH` samples (`step` bytes apart, for NV12 chroma) from a
 * `copyTo` buffer into a tight plane, replicating the last row/column when the source holds fewer
 * (`@napi-rs/webcodecs` lays out odd-sized I420 with `floor(n / 2)` chroma).
 */
function packPlane(
  from: Uint8Array,
  layout: Layout,
  limit: number,
  rowBytes: number,
  step: number,
  to: Uint8Array,
  toOffset: number,
  planeW: number,
  planeH: number,
): void {
  const stride = layout.stride;
  const colsHeld = Math.max(1, Math.min(planeW, Math.floor((Math.min(stride, rowBytes) - 1) / step) + 1));
  const rowsHeld =
    stride > 0
      ? Math.max(1, Math.min(planeH, Math.floor((limit - layout.offset - (colsHeld - 1) * step - 1) / stride) + 1))
      : 1;
  for (let y = 0; y < planeH; y++) {
    const row = layout.offset + Math.min(y, rowsHeld - 1) * stride;
    const base = toOffset + y * planeW;
    if (step === 1 && colsHeld === planeW) {
      to.set(from.subarray(row, row + planeW), base);
      continue;
    }
    for (let x = 0; x < planeW; x++) to[base + x] = from[row + Math.min(x, colsHeld - 1) * step]!;
  }
}

/** Options of `MipFrames`. */
export type MipFramesOptions = {
  /** Buffers to take from and give back on `close()` (share one pool per decoder). */
  pool?: I420BufferPool;
};

const SUPPORTED_FORMATS = ['I420', 'I420A', 'NV12'];

/**
 * The mip chain of one decoded frame. Construction takes its own reference to `source` (a cheap
 * clone), so the caller may close its frame right away. Levels are computed on first request:
 * the source is copied out once, each level is halved from the previous one, and a level's
 * `VideoFrame` is made only when that level is asked for. Concurrent requests share the work.
 * Every frame returned is owned by this object (clone it to keep it past `close()`); `close()`
 * closes them all and returns the buffers to the pool. Accepts I420, I420A (alpha dropped) and
 * NV12 (de-interleaved); level frames are always I420 with the source's timestamp and duration.
 */
export class MipFrames {
  readonly #codecs: Pick<WebCodecs, 'VideoFrame'>;
  readonly #source: VideoFramePort;
  readonly #format: string;
  readonly #sizes: Array<{ width: number; height: number }>;
  readonly #pool: I420BufferPool | undefined;
  readonly #images: Array<Promise<I420Image> | undefined> = [];
  readonly #frames: Array<Promise<VideoFramePort> | undefined> = [];
  readonly #created: VideoFramePort[] = [];
  readonly #buffers: Uint8Array[] = [];
  #closed = false;

  constructor(codecs: Pick<WebCodecs, 'VideoFrame'>, source: VideoFramePort, options: MipFramesOptions = {}) {
    if (typeof codecs?.VideoFrame !== 'function') throw argumentError('codecs.VideoFrame', 'a constructor', codecs);
    const format = source?.format;
    if (typeof format !== 'string' || !SUPPORTED_FORMATS.includes(format)) {
      throw argumentError(
        'source.format',
        `one of ${SUPPORTED_FORMATS.join(', ')} (a decoded YUV 4:2:0 frame)`,
        format,
      );
    }
    this.#sizes = mipSizes(source.codedWidth, source.codedHeight);
    let own: VideoFramePort;
    try {
      own = source.clone();
    } catch (error) {
      throw argumentError('source', 'an open VideoFrame', `a frame that cannot be cloned (${errorMessage(error)})`);
    }
    this.#codecs = codecs;
    this.#source = own;
    this.#format = format;
    this.#pool = options.pool;
    this.#frames[0] = Promise.resolve(own);
  }

  /** Source width (level 0). */
  get width(): number {
    return this.#sizes[0]!.width;
  }

  /** Source height (level 0). */
  get height(): number {
    return this.#sizes[0]!.height;
  }

  /** Highest level (the last one that still shrinks). */
  get maxLevel(): number {
    return this.#sizes.length - 1;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Size of level `n`. */
  levelSize(n: number): { width: number; height: number } {
    this.#checkLevel(n);
    return { ...this.#sizes[n]! };
  }

  /** The level to feed an encoder configured at `width` x `height` (see `chooseLevel`). */
  levelFor(width: number, height: number): number {
    return chooseLevel(this.width, this.height, width, height);
  }

  /** The frame of level `n` (level 0 is the source). Owned by this object. */
  level(n: number): Promise<VideoFramePort> {
    this.#checkLevel(n);
    if (this.#closed) return Promise.reject(this.#closedError());
    let frame = this.#frames[n];
    if (frame === undefined) {
      frame = this.#makeFrame(n);
      this.#frames[n] = frame;
    }
    return frame;
  }

  /** The frame for an encoder configured at `width` x `height`: `level(levelFor(width, height))`. */
  frameFor(width: number, height: number): Promise<VideoFramePort> {
    return this.level(this.levelFor(width, height));
  }

  /** The I420 pixels of level `n` (a tight copy for level 0). Owned by this object; do not modify. */
  image(n: number): Promise<I420Image> {
    this.#checkLevel(n);
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#image(n);
  }

  /** Closes every frame made here (and the own source reference) and recycles the buffers. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const frame of this.#created) frame.close();
    this.#created.length = 0;
    this.#source.close();
    if (this.#pool !== undefined) for (const buffer of this.#buffers) this.#pool.give(buffer);
    this.#buffers.length = 0;
  }

  #checkLevel(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.maxLevel) {
      throw argumentError('n', `an integer level in 0..${this.maxLevel}`, n);
    }
  }

  #closedError(): CodecError {
    return new CodecError('codec.closed', 'MipFrames is closed');
  }

  #take(size: number): Uint8Array {
    return this.#pool?.take(size) ?? new Uint8Array(size);
  }

  #image(n: number): Promise<I420Image> {
    let image = this.#images[n];
    if (image === undefined) {
      image = n === 0 ? this.#copySource() : this.#halve(n);
      this.#images[n] = image;
    }
    return image;
  }

  async #halve(n: number): Promise<I420Image> {
    const from = await this.#image(n - 1);
    if (this.#closed) throw this.#closedError();
    const size = this.#sizes[n]!;
    const buffer = this.#take(i420Size(size.width, size.height));
    this.#buffers.push(buffer);
    return halveI420(from.data, from.width, from.height, buffer);
  }

  async #copySource(): Promise<I420Image> {
    const source = this.#source;
    const { width, height } = this.#sizes[0]!;
    const tight = i420Size(width, height);
    const allocation = source.allocationSize();
    const raw = this.#take(Math.max(allocation, tight));
    let result: unknown;
    try {
      result = await source.copyTo(raw.subarray(0, allocation));
    } catch (error) {
      this.#pool?.give(raw);
      throw new CodecError('codec.decode_failed', `VideoFrame.copyTo failed: ${errorMessage(error)}`, { cause: error });
    }
    if (this.#closed) {
      this.#pool?.give(raw);
      throw this.#closedError();
    }
    this.#buffers.push(raw);
    const cw = (width + 1) >> 1;
    const ch = (height + 1) >> 1;
    const layouts = readLayouts(result) ?? this.#defaultLayouts(width, height);
    const isTight =
      this.#format !== 'NV12' &&
      layouts.length >= 3 &&
      layouts[0]!.offset === 0 &&
      layouts[0]!.stride === width &&
      layouts[1]!.offset === width * height &&
      layouts[1]!.stride === cw &&
      layouts[2]!.offset === width * height + cw * ch &&
      layouts[2]!.stride === cw;
    if (isTight) return { data: raw.subarray(0, tight), width, height };
    const packed = this.#take(tight);
    this.#buffers.push(packed);
    const from = raw.subarray(0, allocation);
    const [y, u, v] = layouts;
    if (y === undefined || u === undefined) throw new CodecError('codec.decode_failed', 'copyTo gave no plane layout');
    if (this.#format === 'NV12') {
      packPlane(from, y, u.offset > y.offset ? u.offset : allocation, width, 1, packed, 0, width, height);
      packPlane(from, u, allocation, 2 * cw, 2, packed, width * height, cw, ch);
      packPlane(
        from,
        { offset: u.offset + 1, stride: u.stride },
        allocation,
        2 * cw - 1,
        2,
        packed,
        width * height + cw * ch,
        cw,
        ch,
      );
    } else {
      if (v === undefined) throw new CodecError('codec.decode_failed', 'copyTo gave fewer than 3 planes for I420');
      const ends = [y, u, v, ...layouts.slice(3)].map((layout) => layout.offset).sort((a, b) => a - b);
      const limitOf = (layout: Layout): number => ends.find((offset) => offset > layout.offset) ?? allocation;
      packPlane(from, y, limitOf(y), width, 1, packed, 0, width, height);
      packPlane(from, u, limitOf(u), cw, 1, packed, width * height, cw, ch);
      packPlane(from, v, limitOf(v), cw, 1, packed, width * height + cw * ch, cw, ch);
    }
    return { data: packed, width, height };
  }

  /** The spec's default `copyTo` layout (tight planes in order) when an implementation returns none. */
  #defaultLayouts(width: number, height: number): Layout[] {
    const cw = (width + 1) >> 1;
    const ch = (height + 1) >> 1;
    if (this.#format === 'NV12') {
      return [
        { offset: 0, stride: width },
        { offset: width * height, stride: 2 * cw },
      ];
    }
    return [
      { offset: 0, stride: width },
      { offset: width * height, stride: cw },
      { offset: width * height + cw * ch, stride: cw },
    ];
  }

  async #makeFrame(n: number): Promise<VideoFramePort> {
    const image = await this.#image(n);
    if (this.#closed) throw this.#closedError();
    const source = this.#source;
    let frame: VideoFramePort;
    try {
      frame = new this.#codecs.VideoFrame(image.data, {
        format: 'I420',
        codedWidth: image.width,
        codedHeight: image.height,
        timestamp: source.timestamp,
        ...(source.duration === null ? {} : { duration: source.duration }),
      });
    } catch (error) {
      throw new CodecError(
        'codec.unsupported',
        `new VideoFrame(I420 ${image.width}x${image.height}) failed: ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    }
    this.#created.push(frame);
    return frame;
  }
}
