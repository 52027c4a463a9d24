/**
 * Minimal ISO-BMFF box layer: a bounds-checked big-endian reader, box iteration (32-bit, 64-bit and
 * size-0 "to the end" sizes) and box builders. Every read past the data throws
 * `ContainerError('ingest.malformed_box')`.
 */

import { ContainerError } from '../core/errors.ts';

/** One box inside a buffer: `bytes` is the whole box, `body` the part after the header (both views). */
export type Box = {
  /** Four-character type, e.g. `moof`. */
  readonly type: string;
  /** Offset of the box in the buffer it was read from. */
  readonly offset: number;
  /** Header length in bytes: 8, 16 with a 64-bit size, plus 16 for `uuid`. */
  readonly headerSize: number;
  /** Whole box (header + body), a view. */
  readonly bytes: Uint8Array;
  /** Body after the header, a view. */
  readonly body: Uint8Array;
};

/** Parsed box header, before the body is available. */
export type BoxHeader = {
  readonly type: string;
  /** Header length in bytes (8 or 16, plus 16 for `uuid`). */
  readonly headerSize: number;
  /** Total box size in bytes, or `undefined` when the size field is 0 (the box runs to the end). */
  readonly size: number | undefined;
};

/** Bytes needed to read any box header (64-bit size). `uuid` needs 16 more, read with the body. */
export const MAX_BOX_HEADER_BYTES = 16;

const LATIN1 = new TextDecoder('latin1');

/** Throws the parser's malformed-input error. */
export function malformed(message: string, details?: Record<string, unknown>): never {
  throw new ContainerError('ingest.malformed_box', message, details === undefined ? undefined : { details });
}

/** Turns any thrown value into a `ContainerError` (unexpected ones become `ingest.malformed_box` with the cause). */
export function asContainerError(err: unknown): ContainerError {
  if (err instanceof ContainerError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ContainerError('ingest.malformed_box', `unreadable container data: ${message}`, { cause: err });
}

/** Decodes a four-character code. */
export function fourccAt(bytes: Uint8Array, offset: number): string {
  if (offset + 4 > bytes.length) malformed(`four-character code at ${offset} runs past the data`);
  return LATIN1.decode(bytes.subarray(offset, offset + 4));
}

/** True when `type` is four printable ASCII characters (how real box types look). */
export function isPrintableFourcc(type: string): boolean {
  if (type.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const c = type.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Reads a box header at `offset` from the first `available` bytes. Returns `undefined` when more
 * bytes are needed to read the header (fewer than 8, or 16 for a 64-bit size).
 */
export function readBoxHeader(
  bytes: Uint8Array,
  offset: number,
  available = bytes.length - offset,
): BoxHeader | undefined {
  if (available < 8) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, Math.min(available, MAX_BOX_HEADER_BYTES));
  const size32 = view.getUint32(0);
  const type = fourccAt(bytes, offset + 4);
  let headerSize = 8;
  let size: number | undefined;
  if (size32 === 1) {
    if (available < 16) return undefined;
    const high = view.getUint32(8);
    const low = view.getUint32(12);
    if (high > 0x1fffff) {
      throw new ContainerError('ingest.box_too_large', `box '${type}' declares a 64-bit size beyond 2^53 bytes`, {
        details: { type },
      });
    }
    size = high * 0x1_0000_0000 + low;
    headerSize = 16;
  } else if (size32 === 0) {
    size = undefined;
  } else {
    size = size32;
  }
  if (type === 'uuid') headerSize += 16;
  if (size !== undefined && size < headerSize) {
    malformed(`box '${printable(type)}' declares size ${size}, smaller than its ${headerSize}-byte header`, {
      type: printable(type),
      size,
    });
  }
  return { type, headerSize, size };
}

/** The box type made safe to print in an error message. */
export function printable(type: string): string {
  return isPrintableFourcc(type)
    ? type
    : `0x${Array.from(type, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('')}`;
}

/**
 * How many more boxes one parse of a `moov` or `moof` may read. Each box read costs a few hundred
 * bytes of objects, so without a bound a 16 MiB moof of 8-byte boxes would take 600 MB and seconds.
 */
export type BoxBudget = { readonly limit: number; remaining: number };

/** Boxes one `moov` or `moof` parse may read (muxers write a few dozen). */
export const MAX_BOXES_PER_PARSE = 8192;

/** A fresh budget of `limit` boxes. */
export function boxBudget(limit = MAX_BOXES_PER_PARSE): BoxBudget {
  return { limit, remaining: limit };
}

/** Options of `readBoxes`. */
export type ReadBoxesOptions = {
  /** Count the boxes read against this budget; throws once it is spent. */
  budget?: BoxBudget;
  /** Keep only boxes of these types; the others are stepped over (checked, not kept, not counted). */
  only?: ReadonlySet<string>;
};

/**
 * Splits `bytes[start, end)` into boxes. A size-0 box runs to `end`; a box that overruns `end` throws,
 * and so does reading more boxes than a `budget` has left.
 */
export function readBoxes(bytes: Uint8Array, start = 0, end = bytes.length, options: ReadBoxesOptions = {}): Box[] {
  const { budget, only } = options;
  const boxes: Box[] = [];
  let offset = start;
  while (offset < end) {
    const header = readBoxHeader(bytes, offset, end - offset);
    if (header === undefined) malformed(`${end - offset} trailing bytes at ${offset} are too short for a box header`);
    const size = header.size ?? end - offset;
    if (size < header.headerSize) malformed(`box '${printable(header.type)}' at ${offset} is shorter than its header`);
    if (offset + size > end) {
      malformed(
        `box '${printable(header.type)}' at ${offset} (size ${size}) runs past its parent (${end - offset} bytes left)`,
        {
          type: printable(header.type),
        },
      );
    }
    if (only === undefined || only.has(header.type)) {
      if (budget !== undefined && --budget.remaining < 0) {
        malformed(`the structure holds more than ${budget.limit} boxes`, { limit: budget.limit });
      }
      boxes.push({
        type: header.type,
        offset,
        headerSize: header.headerSize,
        bytes: bytes.subarray(offset, offset + size),
        body: bytes.subarray(offset + header.headerSize, offset + size),
      });
    }
    offset += size;
  }
  return boxes;
}

/** Child boxes of a container box, counted against `budget` when given. */
export function children(box: Box, skipBodyBytes = 0, budget?: BoxBudget): Box[] {
  if (skipBodyBytes > box.body.length) malformed(`box '${box.type}' is too short (${box.body.length} bytes)`);
  return readBoxes(box.body, skipBodyBytes, box.body.length, { budget });
}

/** First child of the given type, or undefined. */
export function findChild(boxes: readonly Box[], type: string): Box | undefined {
  for (const b of boxes) if (b.type === type) return b;
  return undefined;
}

/** First child of the given type; throws `ingest.malformed_box` naming the parent when absent. */
export function requireChild(boxes: readonly Box[], type: string, parent: string): Box {
  const found = findChild(boxes, type);
  if (found === undefined) malformed(`'${parent}' has no '${type}' box`);
  return found;
}

/** Bounds-checked big-endian cursor over a byte view. */
export class ByteReader {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  #pos: number;

  /** `what` names the structure in error messages. */
  constructor(bytes: Uint8Array, what: string, pos = 0) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#what = what;
    this.#pos = pos;
  }

  /** Current offset. */
  get pos(): number {
    return this.#pos;
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.bytes.length - this.#pos;
  }

  #take(n: number): number {
    if (n < 0 || this.#pos + n > this.bytes.length) {
      malformed(
        `${this.#what} is truncated: needs ${n} bytes at offset ${this.#pos}, has ${this.bytes.length - this.#pos}`,
      );
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  /** Reads an unsigned 8-bit integer. */
  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }

  /** Reads an unsigned 16-bit integer. */
  u16(): number {
    return this.#view.getUint16(this.#take(2));
  }

  /** Reads an unsigned 24-bit integer. */
  u24(): number {
    const at = this.#take(3);
    return (this.#view.getUint8(at) << 16) | this.#view.getUint16(at + 1);
  }

  /** Reads an unsigned 32-bit integer. */
  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }

  /** Reads a signed 32-bit integer. */
  i32(): number {
    return this.#view.getInt32(this.#take(4));
  }

  /** Reads an unsigned 64-bit integer; throws when it exceeds 2^53 - 1. */
  u64(): number {
    const at = this.#take(8);
    const high = this.#view.getUint32(at);
    const low = this.#view.getUint32(at + 4);
    if (high > 0x1fffff) malformed(`${this.#what}: 64-bit value at offset ${at} exceeds 2^53`);
    return high * 0x1_0000_0000 + low;
  }

  /** Reads a four-character code. */
  fourcc(): string {
    return fourccAt(this.bytes, this.#take(4));
  }

  /** Returns a view of the next `n` bytes. */
  view(n: number): Uint8Array {
    const at = this.#take(n);
    return this.bytes.subarray(at, at + n);
  }

  /** Skips `n` bytes. */
  skip(n: number): void {
    this.#take(n);
  }
}

/** Version and flags of a full box body. */
export function fullBoxHeader(body: Uint8Array, type: string): { version: number; flags: number } {
  if (body.length < 4) malformed(`'${type}' is too short for a full box header (${body.length} bytes)`);
  return { version: body[0]!, flags: (body[1]! << 16) | (body[2]! << 8) | body[3]! };
}

// ---- writing ----

/** Byte joining lives in core; re-exported for the box builders' users. */
export { concatBytes } from '../core/bytes.ts';

/** Encodes an unsigned 8-bit integer. */
export function u8(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff);
}

/** Encodes an unsigned 16-bit integer. */
export function u16(n: number): Uint8Array {
  return Uint8Array.of((n >>> 8) & 0xff, n & 0xff);
}

/** Encodes an unsigned 24-bit integer. */
export function u24(n: number): Uint8Array {
  return Uint8Array.of((n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Encodes an unsigned (or two's-complement signed) 32-bit integer. */
export function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0);
  return out;
}

/** Encodes an unsigned 64-bit integer (up to 2^53 - 1). */
export function u64(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64: expected a non-negative safe integer, got ${n}`);
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(n / 0x1_0000_0000));
  view.setUint32(4, n >>> 0);
  return out;
}

/** Encodes a four-character code. */
export function fourcc(type: string): Uint8Array {
  if (type.length !== 4) throw new RangeError(`fourcc: expected 4 characters, got ${JSON.stringify(type)}`);
  return Uint8Array.from(type, (c) => c.charCodeAt(0) & 0xff);
}

/** Builds a box from its type and body parts (32-bit size). */
export function box(type: string, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let size = 8;
  for (const p of parts) size += p.length;
  if (size > 0xffff_ffff) throw new RangeError(`box '${type}': ${size} bytes do not fit a 32-bit size`);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, size);
  out.set(fourcc(type), 4);
  let at = 8;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Builds a full box (version + 24-bit flags before the body). */
export function fullBox(type: string, version: number, flags: number, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return box(type, Uint8Array.of(version & 0xff, (flags >>> 16) & 0xff, (flags >>> 8) & 0xff, flags & 0xff), ...parts);
}
