/** MSB-first bit reader with exp-Golomb codes, for codec headers (SPS, AudioSpecificConfig). */

import { malformed } from './boxes.ts';

/** Reads bits MSB first; reading past the end throws `ingest.malformed_box` naming `what`. */
export class BitReader {
  readonly #bytes: Uint8Array;
  readonly #what: string;
  #bit = 0;

  /** `what` names the structure in error messages. */
  constructor(bytes: Uint8Array, what: string) {
    this.#bytes = bytes;
    this.#what = what;
  }

  /** Bits left. */
  get remaining(): number {
    return this.#bytes.length * 8 - this.#bit;
  }

  /** Reads one bit. */
  bit(): number {
    const byte = this.#bytes[this.#bit >>> 3];
    if (byte === undefined) malformed(`${this.#what} is truncated (read past bit ${this.#bit})`);
    const value = (byte >>> (7 - (this.#bit & 7))) & 1;
    this.#bit++;
    return value;
  }

  /** Reads `n` (0..32) bits as an unsigned integer. */
  bits(n: number): number {
    let value = 0;
    for (let i = 0; i < n; i++) value = value * 2 + this.bit();
    return value;
  }

  /** Reads a boolean flag. */
  flag(): boolean {
    return this.bit() === 1;
  }

  /** Skips `n` bits. */
  skip(n: number): void {
    if (n > this.remaining) malformed(`${this.#what} is truncated (skip of ${n} bits past the end)`);
    this.#bit += n;
  }

  /** Reads an unsigned exp-Golomb code (ue(v)). */
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      zeros++;
      if (zeros > 31) malformed(`${this.#what}: exp-Golomb code longer than 32 bits`);
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  /** Reads a signed exp-Golomb code (se(v)). */
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

/** Removes H.264/H.265 emulation-prevention bytes (`00 00 03` -> `00 00`). */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  let zeros = 0;
  let needed = false;
  for (const b of nal) {
    if (zeros >= 2 && b === 3) {
      needed = true;
      break;
    }
    zeros = b === 0 ? zeros + 1 : 0;
  }
  if (!needed) return nal;
  const out = new Uint8Array(nal.length);
  let n = 0;
  zeros = 0;
  for (const b of nal) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}
