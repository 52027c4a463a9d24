/** Byte-array helpers shared by every layer. */

/**
 * Joins `parts` into one array. When there is exactly one part it is returned itself, not copied:
 * treat the result as read-only. `totalBytes` (their summed length) saves a pass when known.
 */
export function concatBytes<T extends ArrayBufferLike>(
  parts: readonly Uint8Array<T>[],
  totalBytes?: number,
): Uint8Array<T | ArrayBuffer> {
  if (parts.length === 1) return parts[0]!;
  let total = totalBytes;
  if (total === undefined) {
    total = 0;
    for (const p of parts) total += p.byteLength;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** True when `a` and `b` hold the same bytes; `undefined` equals nothing. */
export function sameBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  if (b === undefined || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Joins byte arrays into shared blocks ("slabs") of `slabBytes`: each join is a view of the
 * current slab, the next slab starts when it is full, and a slab is freed with the last view of
 * it. Media that lives together (a track's parts, or its complete segments) is then a few large
 * blocks instead of many small allocations that sit between other, shorter-lived ones in the
 * allocator's heap and keep it from giving pages back. A join of half a slab or more gets a block
 * of its own.
 */
export class Slabs {
  readonly #slabBytes: number;
  #slab: Uint8Array<ArrayBuffer> | undefined;
  #used = 0;

  /** Joins into slabs of `slabBytes`. */
  constructor(slabBytes: number) {
    if (!(Number.isInteger(slabBytes) && slabBytes > 0))
      throw new RangeError(`slabBytes: expected a positive integer, got ${slabBytes}`);
    this.#slabBytes = slabBytes;
  }

  /**
   * One copy of `parts` joined (`totalBytes` their summed length). A single part that already
   * fills a block of its own is returned itself; treat the result as read-only.
   */
  join(parts: readonly Uint8Array[], totalBytes: number): Uint8Array {
    if (totalBytes * 2 >= this.#slabBytes) {
      const only = parts.length === 1 ? parts[0]! : undefined;
      // A view of a larger block would keep all of that block alive: copy it out.
      if (only !== undefined && only.byteLength === only.buffer.byteLength) return only;
      const out = new Uint8Array(totalBytes);
      copyInto(out, parts);
      return out;
    }
    if (this.#slab === undefined || this.#used + totalBytes > this.#slabBytes) {
      this.#slab = new Uint8Array(this.#slabBytes);
      this.#used = 0;
    }
    const out = this.#slab.subarray(this.#used, this.#used + totalBytes);
    this.#used += totalBytes;
    copyInto(out, parts);
    return out;
  }
}

function copyInto(out: Uint8Array, parts: readonly Uint8Array[]): void {
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
}
