/**
 * Scales one source's decoded frames to every rung size at once, so the encoders get pictures of
 * their own size (and do not scale them again with their bilinear filter). Per frame: the planes
 * are copied into one of the source's memory slots, the scaler thread runs the plan's kernels,
 * and each output becomes a new frame (the constructor copies it out: the slot is free again).
 * Frames go through in order; `scale` returns at once with pictures still being made.
 */

import { errorMessage } from '../../core/errors.ts';
import type { PlaneLayoutPort, VideoFramePort, WebCodecs } from '../port.ts';
import { PendingPicture } from './picture.ts';
import { type PicturePlanes, planScaler, runOrder, type ScalerPlan, type Size } from './program.ts';
import type { ScalerThread } from './thread.ts';

/** Options of a frame scaler. */
export type FrameScalerOptions = {
  codecs: Pick<WebCodecs, 'VideoFrame'>;
  thread: ScalerThread;
  source: Size;
  /** Output sizes, each no larger than the source. */
  sizes: readonly Size[];
  /** Frames in flight at once (copied in while others are scaled, by two workers). Default 3. */
  slots?: number;
  /** Called once if the scaler fails; it returns undefined from then on (callers fall back). */
  onFailure?: (error: Error) => void;
};

type Output = { index: number; settle: (result: VideoFramePort | Error) => void; wanted: () => boolean };
type Job = { frame: VideoFramePort; timestamp: number; duration: number | null; outputs: Output[] };

const sameSize = (a: Size, b: Size): boolean => a.width === b.width && a.height === b.height;

/** Bytes from the first plane's start to the last one's end, and each plane's place in that span. */
function span(planes: PicturePlanes): { start: number; length: number; layout: PlaneLayoutPort[] } {
  const start = planes[0].offset;
  const last = planes[2];
  return {
    start,
    length: last.offset + last.stride * last.height - start,
    layout: planes.map((p) => ({ offset: p.offset - start, stride: p.stride })),
  };
}

export class FrameScaler {
  readonly plan: ScalerPlan;
  readonly #options: FrameScalerOptions;
  readonly #memory: WebAssembly.Memory;
  readonly #id: number;
  readonly #queue: Job[] = [];
  readonly #freeSlots: number[];
  #slotWaiter: (() => void) | undefined;
  #pumping = false;
  #running = 0;
  #closed = false;
  #released = false;
  #failure: Error | undefined;

  constructor(options: FrameScalerOptions) {
    this.#options = options;
    const slots = options.slots ?? 3;
    // Sizes equal to the source's are not scaled (see `scale`); the plan needs at least one.
    const scaled = options.sizes.filter((s) => !sameSize(s, options.source));
    this.plan = planScaler(options.source, scaled.length > 0 ? scaled : [options.source], slots);
    const pages = this.plan.bytes / 65536;
    this.#memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const bytes = new Uint8Array(this.#memory.buffer);
    for (const table of this.plan.tables) bytes.set(table.data, table.offset);
    this.#freeSlots = Array.from({ length: slots }, (_, i) => i);
    this.#id = options.thread.open(this.#memory, this.plan.program);
  }

  /** Whether the scaler failed (it scales nothing more). */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /**
   * Pictures of `frame` at each of `sizes` (the source's size, or one this scaler was made for):
   * a clone of `frame` for the source's size, a picture still being made for the others. Undefined
   * when this frame cannot be scaled here (another format or size, or the scaler failed): callers
   * then hand the frame itself on. The caller keeps `frame` (and closes it).
   */
  scale(frame: VideoFramePort, sizes: readonly Size[]): Array<VideoFramePort | PendingPicture> | undefined {
    if (this.#closed || this.#failure !== undefined) return undefined;
    const source = this.#options.source;
    if (frame.format !== 'I420' || frame.codedWidth !== source.width || frame.codedHeight !== source.height) {
      return undefined;
    }
    const indexes = sizes.map((size) => this.plan.outputs.findIndex((o) => sameSize(o, size)));
    if (sizes.some((size, i) => indexes[i] === -1 && !sameSize(size, source))) return undefined;
    const job: Job = { frame: frame.clone(), timestamp: frame.timestamp, duration: frame.duration, outputs: [] };
    const pictures = sizes.map((size, i) => {
      if (sameSize(size, source)) return frame.clone();
      const { picture, settle, wanted } = PendingPicture.create(frame.timestamp);
      job.outputs.push({ index: indexes[i]!, settle, wanted });
      return picture;
    });
    if (job.outputs.length === 0) job.frame.close();
    else {
      this.#queue.push(job);
      void this.#pump();
    }
    return pictures;
  }

  /** Takes no more frames; the ones taken are still scaled, then the memory is released. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#releaseIfIdle();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const slot = await this.#takeSlot();
        const job = this.#queue.shift()!;
        const outputs = job.outputs.filter((o) => o.wanted());
        if (this.#failure !== undefined || outputs.length === 0) {
          job.frame.close();
          for (const o of outputs) o.settle(this.#failure ?? new Error('not wanted'));
          this.#freeSlot(slot);
          continue;
        }
        const places = this.plan.slots[slot]!;
        const input = span(places.source);
        try {
          await job.frame.copyTo(new Uint8Array(this.#memory.buffer, input.start, input.length), {
            layout: input.layout,
          });
        } catch (error) {
          this.#fail(new Error(`could not read a decoded frame: ${errorMessage(error)}`));
          for (const o of outputs) o.settle(this.#failure!);
          this.#freeSlot(slot);
          continue;
        } finally {
          job.frame.close();
        }
        this.#running += 1;
        const order = runOrder(
          this.plan,
          outputs.map((o) => o.index),
        );
        this.#options.thread.run(this.#id, slot, order).then(
          () => {
            this.#running -= 1;
            this.#deliver(job, outputs, places.outputs);
            this.#freeSlot(slot);
          },
          (error: unknown) => {
            this.#running -= 1;
            this.#fail(error instanceof Error ? error : new Error(String(error)));
            for (const o of outputs) o.settle(this.#failure!);
            this.#freeSlot(slot);
          },
        );
      }
    } finally {
      this.#pumping = false;
      this.#releaseIfIdle();
    }
  }

  #deliver(job: Job, outputs: Output[], places: PicturePlanes[]): void {
    for (const o of outputs) {
      if (!o.wanted()) {
        o.settle(new Error('not wanted'));
        continue;
      }
      const size = this.plan.outputs[o.index]!;
      const at = span(places[o.index]!);
      try {
        o.settle(
          new this.#options.codecs.VideoFrame(new Uint8Array(this.#memory.buffer, at.start, at.length), {
            format: 'I420',
            codedWidth: size.width,
            codedHeight: size.height,
            timestamp: job.timestamp,
            ...(job.duration === null ? {} : { duration: job.duration }),
            layout: at.layout,
          }),
        );
      } catch (error) {
        o.settle(new Error(`could not make a scaled frame: ${errorMessage(error)}`));
      }
    }
  }

  #takeSlot(): Promise<number> {
    const free = this.#freeSlots.shift();
    if (free !== undefined) return Promise.resolve(free);
    return new Promise<void>((resolve) => {
      this.#slotWaiter = resolve;
    }).then(() => this.#takeSlot());
  }

  #freeSlot(slot: number): void {
    this.#freeSlots.push(slot);
    const wake = this.#slotWaiter;
    this.#slotWaiter = undefined;
    wake?.();
    this.#releaseIfIdle();
  }

  #fail(error: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#options.onFailure?.(error);
  }

  #releaseIfIdle(): void {
    if (this.#released || !this.#closed || this.#pumping || this.#running > 0 || this.#queue.length > 0) return;
    this.#released = true;
    this.#options.thread.close(this.#id);
  }
}
