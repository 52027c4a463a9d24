/**
 * How many items a native codec holds in its queue, counted from our own calls and the codec's
 * `dequeue` events (one per item with `@napi-rs/webcodecs`, measured).
 *
 * The addon's `decodeQueueSize` / `encodeQueueSize` getters wait for the codec's lock, which its
 * thread holds while it works on a frame. On the 1080p ladder (bench/run-ladder.ts) reading them
 * once per frame blocked the main thread 3.6 ms a read on average and up to 77 ms: 6.7 s of an
 * 8.5 s run, which serialised decoder and encoders. Read a getter only through `resync`, when the
 * count has not moved for a while (a runtime that merges dequeue events).
 */
export class QueueCount {
  #count = 0;

  get value(): number {
    return this.#count;
  }

  /** One item handed to the codec. */
  queued(): void {
    this.#count++;
  }

  /** One `dequeue` event. */
  dequeued(): void {
    if (this.#count > 0) this.#count--;
  }

  /** Lowers the count to the codec's own figure (never raises it: events may still be on their way). */
  resync(native: number): void {
    if (native < this.#count) this.#count = Math.max(0, native);
  }

  /** The codec was replaced or closed: nothing is queued. */
  reset(): void {
    this.#count = 0;
  }
}
