/**
 * Constant-bitrate Opus by padding (RFC 6716 §3.2.5). The WebCodecs addon's libopus runs in
 * unconstrained VBR whatever `bitrateMode` says, and settles well under its target on quiet or
 * simple input. A packet shorter than the constant size of its bitrate is rewritten as a code-3
 * packet carrying the same frames and enough padding bytes to reach that size; decoders discard
 * the padding. A packet already at or above the size is kept as it is.
 */

/** Samples per packet of the addon's Opus encoder at 48 kHz (20 ms). */
export const OPUS_FRAME_SAMPLES = 960;

/** The constant packet size, bytes, of `bitrateBps` for packets of `frameSamples` at `sampleRate`. */
export function opusPacketBytes(bitrateBps: number, frameSamples: number, sampleRate: number): number {
  return Math.round((bitrateBps * frameSamples) / sampleRate / 8);
}

/** Bytes of the code-3 padding-length field for `padding` bytes of padding (254 per 255 byte, then the rest). */
function paddingFieldBytes(padding: number): number {
  return Math.floor(padding / 254) + 1;
}

/**
 * `packet` padded to `size` bytes, or `packet` itself when it is already that long, is empty, or is
 * already a padded code-3 packet.
 */
export function padOpusPacket(packet: Uint8Array, size: number): Uint8Array {
  if (packet.byteLength === 0 || packet.byteLength >= size) return packet;
  const toc = packet[0]!;
  const code = toc & 0x03;
  // What follows the TOC (and, for code 3, the frame-count byte) in the code-3 layout.
  let countByte: number;
  let body: Uint8Array;
  if (code === 0) {
    countByte = 1; // CBR, one frame
    body = packet.subarray(1);
  } else if (code === 1) {
    countByte = 2; // CBR, two frames of equal size
    body = packet.subarray(1);
  } else if (code === 2) {
    countByte = 0x80 | 2; // VBR, two frames: the first frame's length field is kept as it is
    body = packet.subarray(1);
  } else {
    if (packet.byteLength < 2 || (packet[1]! & 0x40) !== 0) return packet;
    countByte = packet[1]!;
    body = packet.subarray(2);
  }
  // Header: TOC + count byte + the padding-length field; the field's own size depends on the padding.
  let padding = size - 2 - body.byteLength;
  while (padding > 0 && 2 + paddingFieldBytes(padding) + body.byteLength + padding > size) padding -= 1;
  if (padding <= 0) return packet;
  const fieldBytes = paddingFieldBytes(padding);
  const out = new Uint8Array(2 + fieldBytes + body.byteLength + padding);
  out[0] = (toc & 0xfc) | 0x03;
  out[1] = countByte | 0x40;
  let at = 2;
  let rest = padding;
  while (rest >= 254) {
    out[at++] = 255;
    rest -= 254;
  }
  out[at++] = rest;
  out.set(body, at);
  return out;
}
