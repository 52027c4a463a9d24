/**
 * `ChunkQueue`: the bytes of a stream as they arrive, in the caller's chunks. Chunks are joined
 * only when a read spans them, so input cut into 1-byte chunks costs linear time.
 */

/** Chunks dropped from the front of the queue before its array is compacted. */
const COMPACT_AFTER = 1024;
/** What a consumed slot holds until the array is compacted. */
const CONSUMED = new Uint8Array(0);

/** A FIFO of byte chunks with reads by length; it tracks the stream offset of its first byte. */
export class ChunkQueue {
  #chunks: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  #position = 0;

  /** Bytes queued and not yet consumed. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Stream offset of the first queued byte (bytes consumed so far). */
  get position(): number {
    return this.#position;
  }

  /** Queues `chunk` (a view, not a copy: see `detachTail`). */
  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** Copies the last chunk if part of it is still queued, so no view of the caller's buffer is kept. */
  detachTail(): void {
    const last = this.#chunks.length - 1;
    if (last >= this.#head) this.#chunks[last] = this.#chunks[last]!.slice();
  }

  /** The first `n` (<= buffered) bytes without consuming them: a view when they lie in one chunk, else a copy. */
  peek(n: number): Uint8Array {
    const first = this.#chunks[this.#head]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.#join(n);
  }

  /** Consumes `n` (<= buffered) bytes; a view when they lie in one chunk, else a joined copy. */
  take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const out = this.peek(n);
    this.drop(n);
    return out;
  }

  /** Consumes `n` (<= buffered) bytes without reading them. */
  drop(n: number): void {
    this.#buffered -= n;
    this.#position += n;
    let left = n;
    while (left > 0) {
      const c = this.#chunks[this.#head]!;
      if (c.length <= left) {
        left -= c.length;
        // The slot is not read again: let go of the chunk now, not at the next compaction (a live
        // stream rarely empties the queue, so up to COMPACT_AFTER consumed chunks stayed alive).
        this.#chunks[this.#head] = CONSUMED;
        this.#head++;
      } else {
        this.#chunks[this.#head] = c.subarray(left);
        left = 0;
      }
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > COMPACT_AFTER && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  #join(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    for (let i = this.#head; at < n; i++) {
      const c = this.#chunks[i]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
    }
    return out;
  }
}
