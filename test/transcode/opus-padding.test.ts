import { describe, expect, it } from 'vitest';
import { opusPacketBytes, padOpusPacket } from '../../src/transcode/audio/opus-padding.ts';

/** Frames and padding of a code-3 packet (RFC 6716 §3.2.5). */
function readCode3(packet: Uint8Array): { frames: Uint8Array[]; padding: number } {
  expect(packet[0]! & 3).toBe(3);
  const count = packet[1]!;
  const vbr = (count & 0x80) !== 0;
  const frameCount = count & 0x3f;
  let at = 2;
  let padding = 0;
  if (count & 0x40) {
    for (;;) {
      const b = packet[at++]!;
      padding += b === 255 ? 254 : b;
      if (b !== 255) break;
    }
  }
  const sizes: number[] = [];
  if (vbr) for (let i = 0; i < frameCount - 1; i++) sizes.push(packet[at++]!); // one-byte lengths here
  const data = packet.byteLength - at - padding;
  if (vbr) sizes.push(data - sizes.reduce((a, b) => a + b, 0));
  else for (let i = 0; i < frameCount; i++) sizes.push(data / frameCount);
  const frames = sizes.map((size) => {
    const frame = packet.subarray(at, at + size);
    at += size;
    return frame;
  });
  return { frames, padding };
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('Opus padding to a constant packet size', () => {
  it('64 kb/s of 20 ms packets is 160 bytes each', () => {
    expect(opusPacketBytes(64_000, 960, 48_000)).toBe(160);
  });

  it('a one-frame packet becomes a code-3 packet of exactly the size, same TOC config and frame', () => {
    const frame = bytes(120, 1);
    for (const size of [124, 160, 400, 1275]) {
      const padded = padOpusPacket(Uint8Array.of(0xfc, ...frame), size);
      expect(padded.byteLength, `size ${size}`).toBeGreaterThanOrEqual(size - 1);
      expect(padded.byteLength, `size ${size}`).toBeLessThanOrEqual(size);
      expect(padded[0]! & 0xfc).toBe(0xfc);
      const read = readCode3(padded);
      expect(read.frames).toEqual([frame]);
    }
  });

  it('two equal frames (code 1) and two frames of different sizes (code 2) keep their frames', () => {
    const a = bytes(40, 2);
    const b = bytes(40, 3);
    expect(readCode3(padOpusPacket(Uint8Array.of(0x79, ...a, ...b), 160)).frames).toEqual([a, b]);
    const c = bytes(30, 4);
    expect(readCode3(padOpusPacket(Uint8Array.of(0x7a, 30, ...c, ...b), 160)).frames).toEqual([c, b]);
  });

  it('a packet at or above the size, an empty one and an already padded code-3 packet are kept', () => {
    const big = Uint8Array.of(0xfc, ...bytes(200, 5));
    expect(padOpusPacket(big, 160)).toBe(big);
    const empty = new Uint8Array(0);
    expect(padOpusPacket(empty, 160)).toBe(empty);
    const padded = padOpusPacket(Uint8Array.of(0xfc, ...bytes(50, 6)), 100);
    expect(padOpusPacket(padded, 160)).toBe(padded);
  });
});
