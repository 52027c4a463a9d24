/**
 * The id of an init segment in its URI (`init-<id>.mp4`): a 48-bit hash of its bytes and
 * timescale. Every node that packages the same init names it alike, whatever it saw before (an
 * edge that joined late, a format change, a new transcode worker), so cluster edges render the same
 * EXT-X-MAP URIs, and an immutable init URI never stands for other bytes.
 */

/** FNV-1a over `bytes` then the 4 bytes of `extra`, from `seed`, as an unsigned 32-bit value. */
function fnv1a(bytes: Uint8Array, extra: number, seed: number): number {
  let h = seed >>> 0;
  const step = (byte: number): void => {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (let i = 0; i < bytes.length; i++) step(bytes[i]!);
  for (let shift = 0; shift < 32; shift += 8) step((extra >>> shift) & 0xff);
  return h;
}

/** The init's id: 48 bits (at most 15 decimal digits, what the routes accept). */
export function initId(bytes: Uint8Array, timescale: number): number {
  const low = fnv1a(bytes, timescale, 0x811c9dc5);
  const high = fnv1a(bytes, timescale, 0x050c5d1f) & 0xffff;
  return high * 0x1_0000_0000 + low;
}
