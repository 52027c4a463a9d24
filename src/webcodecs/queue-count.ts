/**
 * How long a full queue may go without a dequeue event before the codec's own count is read. Far
 * above a frame's work on a loaded machine: with `@napi-rs/webcodecs` the events never stop, and a
 * read blocks the JavaScript thread.
 */
export const RESYNC_AFTER_MS = 250;

/**
 * How many items a native codec holds in its queue, counted from our own calls and the codec's
 * `dequeue` events (one per item with `@napi-rs/webcodecs`, measured).
 *
 * The addon's `decodeQueueSize` / `encodeQueueSize` getters wait for the codec's lock, which its
 * thread holds while it works on a frame. On the 1080p ladder (bench/run-ladder.ts) reading them
 * once per frame blocked the main thread 3.6 ms a read on average and up to 77 ms: 6.7 s of an
 * 8.5 s run, which serialised decoder and encoders. Read a getter only through `resync`, once the
 * count has not moved for `RESYNC_AFTER_MS` (a runtime that merges dequeue events).
 */
export class QueueCount {
  #count = 0;
  /** Dequeue events still on their way for items the last `resync` saw gone. */
  #inFlight = 0;
  #changedAt = performance.now();

  /** Items queued now, as far as the events tell. */
  get value(): number {
    return this.#count;
  }

  /** One item handed to the codec. */
  queued(): void {
    this.#count++;
    this.#changedAt = performance.now();
  }

  /** One `dequeue` event. */
  dequeued(): void {
    if (this.#inFlight > 0) this.#inFlight--;
    else if (this.#count > 0) this.#count--;
    this.#changedAt = performance.now();
  }

  /** Whether the count has not moved for `RESYNC_AFTER_MS`: time to `resync` it. */
  get stale(): boolean {
    return performance.now() - this.#changedAt >= RESYNC_AFTER_MS;
  }

  /**
   * Lowers the count to the codec's own figure (never raises it). The events of the items that left
   * meanwhile may still be on their way: they are expected, so that they do not count twice.
   */
  resync(native: number): void {
    if (native < this.#count) {
      this.#inFlight = this.#count - Math.max(0, native);
      this.#count = Math.max(0, native);
    }
    this.#changedAt = performance.now();
  }

  /** The codec was replaced or closed: nothing is queued. */
  reset(): void {
    this.#count = 0;
    this.#inFlight = 0;
  }
}
