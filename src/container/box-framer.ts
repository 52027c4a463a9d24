/**
 * `BoxFramer`: cuts a byte stream, pushed in chunks of any size, into whole top-level boxes.
 * Boxes of the kept types are returned whole (a view when they arrived in one chunk); every other
 * box is skipped as it arrives, never buffered. Sizes are checked against the limits as soon as a
 * header is complete.
 */

import { ContainerError } from '../core/errors.ts';
import {
  type Box,
  type BoxHeader,
  isPrintableFourcc,
  MAX_BOX_HEADER_BYTES,
  malformed,
  printable,
  readBoxHeader,
} from './boxes.ts';
import { ChunkQueue } from './chunk-queue.ts';

/** A whole top-level box and the stream offset it starts at. */
export type FramedBox = Box & { readonly position: number };

/** What the framer keeps, how large a box may be, and the caller's check of each header. */
export type BoxFramerOptions = {
  /** Box types returned whole; any other box is skipped. */
  readonly keep: ReadonlySet<string>;
  /** Largest size in bytes of a box of `type` (kept or skipped). */
  readonly limitOf: (type: string) => number;
  /** Sees each header once it is complete, after its type is checked and before its size is; throws to refuse it. */
  readonly check: (header: BoxHeader, position: number) => void;
};

type OpenBox = BoxHeader & { position: number };

/**
 * Box framing of one stream. Errors: `ingest.malformed_box` (not a box), `ingest.box_too_large`,
 * `ingest.truncated` (at `end`), and whatever `check` throws.
 */
export class BoxFramer {
  readonly #queue = new ChunkQueue();
  readonly #options: BoxFramerOptions;
  #open: OpenBox | undefined;
  #skip = 0;

  /** A framer that keeps `options.keep` boxes and checks headers with `options.check`. */
  constructor(options: BoxFramerOptions) {
    this.#options = options;
  }

  /** Bytes of the stream fully consumed so far (the offset of the next unread byte). */
  get position(): number {
    return this.#queue.position;
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#queue.buffered;
  }

  /** Queues the next chunk (a view until `detach` is called). */
  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
  }

  /** Copies what is still queued of the latest chunk, so the caller may reuse its buffer. */
  detach(): void {
    this.#queue.detachTail();
  }

  /** The next whole kept box, or undefined when more bytes are needed. */
  next(): FramedBox | undefined {
    const queue = this.#queue;
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, queue.buffered);
        queue.drop(n);
        this.#skip -= n;
        if (this.#skip > 0) return undefined;
      }
      const open = this.#open;
      if (open === undefined) {
        if (queue.buffered < 8) return undefined;
        const head = queue.peek(Math.min(queue.buffered, MAX_BOX_HEADER_BYTES));
        const header = readBoxHeader(head, 0, head.length);
        if (header === undefined) return undefined;
        this.#begin(header);
        continue;
      }
      if (open.size === undefined) {
        if (queue.buffered > this.#options.limitOf(open.type)) this.#tooLarge(open.type, queue.buffered);
        return undefined;
      }
      if (queue.buffered < open.size) return undefined;
      this.#open = undefined;
      return framed(open, queue.take(open.size));
    }
  }

  /**
   * The stream ended: returns the kept box that runs to the end (size 0 in its header), if one is
   * open. Throws `ingest.truncated` when a box or box header is only partly received.
   */
  end(): FramedBox | undefined {
    const queue = this.#queue;
    const open = this.#open;
    if (open !== undefined) {
      if (open.size !== undefined) {
        throw new ContainerError(
          'ingest.truncated',
          `stream ended inside '${open.type}' at ${open.position}: ${queue.buffered} of ${open.size} bytes`,
        );
      }
      this.#open = undefined;
      return framed(open, queue.take(queue.buffered));
    }
    if (this.#skip > 0 && this.#skip !== Number.POSITIVE_INFINITY) {
      throw new ContainerError('ingest.truncated', `stream ended ${this.#skip} bytes before the end of a skipped box`);
    }
    if (queue.buffered > 0 && this.#skip === 0) {
      throw new ContainerError('ingest.truncated', `stream ended inside a box header (${queue.buffered} bytes)`);
    }
    return undefined;
  }

  /** Validates a header as soon as it is complete; errors here need no body. */
  #begin(header: BoxHeader): void {
    const { type, size } = header;
    const position = this.#queue.position;
    if (!isPrintableFourcc(type)) {
      malformed(`bytes at stream offset ${position} do not start a box (type ${printable(type)})`, { position });
    }
    this.#options.check(header, position);
    if (size !== undefined && size > this.#options.limitOf(type)) this.#tooLarge(type, size);
    if (this.#options.keep.has(type)) {
      this.#open = { ...header, position };
    } else {
      this.#skip = size ?? Number.POSITIVE_INFINITY;
    }
  }

  #tooLarge(type: string, size: number): never {
    const limit = this.#options.limitOf(type);
    throw new ContainerError('ingest.box_too_large', `'${type}' box of ${size} bytes exceeds the ${limit}-byte limit`, {
      details: { type, size, limit },
    });
  }
}

function framed(open: OpenBox, bytes: Uint8Array): FramedBox {
  return {
    type: open.type,
    offset: 0,
    headerSize: open.headerSize,
    bytes,
    body: bytes.subarray(open.headerSize),
    position: open.position,
  };
}
