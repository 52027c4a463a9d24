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
