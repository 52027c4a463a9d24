/**
 * The scaler's worker threads, shared by every source of the process: the main thread copies each
 * decoded frame into the source's shared memory and posts a run; a worker scales it while the
 * main thread serves requests and feeds the codecs. Where a runtime's worker cannot take a shared
 * WebAssembly memory, runs go inline. The runtime starts the threads (`StartWorker`).
 */

import { errorMessage } from '../../core/errors.ts';
import { createScalerExecutor, type ScalerExecutor } from './executor.ts';
import { KERNELS_WASM_BASE64 } from './kernels-wasm.ts';
import type { ScalerProgram } from './program.ts';

type Message =
  | { type: 'open'; id: number; memory: WebAssembly.Memory; program: ScalerProgram }
  | { type: 'run'; id: number; job: number; slot: number; outputs: number[] }
  | { type: 'close'; id: number };

type Reply = { job: number; error?: string };

/** A worker thread as the scaler drives it. */
export interface ScalerWorker {
  /** Posts `message` (structured clone; throws where it cannot be cloned, e.g. a shared memory). */
  postMessage(message: unknown): void;
  /** Each message the worker posts back. */
  onMessage(listener: (message: unknown) => void): void;
  /** The worker failed or exited, with why. */
  onEnd(listener: (reason: string) => void): void;
  /** Whether the worker holds the process open. */
  ref(): void;
  unref(): void;
  terminate(): void;
}

/**
 * Starts a worker thread (the runtime's: runtime/worker-thread.ts). `setup` is the source of a
 * function `(data, reply) => onMessage`, run once in the worker with `data`: `onMessage` gets each
 * posted message, `reply(message)` posts one back.
 */
export type StartWorker = (setup: string, options: { name: string; data: unknown }) => ScalerWorker;

/** The worker's code: the executor, and a handler that answers each run with its job number. */
function workerSetup(): string {
  return `(data, reply) => {
  const createScalerExecutor = ${createScalerExecutor.toString()};
  const executor = createScalerExecutor(new WebAssembly.Module(data.wasm));
  return (m) => {
    try {
      if (m.type === 'open') executor.open(m.id, m.memory, m.program);
      else if (m.type === 'close') executor.close(m.id);
      else {
        executor.run(m.id, m.slot, m.outputs);
        reply({ job: m.job });
      }
    } catch (error) {
      if (m.type === 'run') reply({ job: m.job, error: String(error && error.message || error) });
    }
  };
}`;
}

let kernels: WebAssembly.Module | null | undefined;

/** The kernels, compiled once; null where this runtime's WebAssembly lacks SIMD or threads. */
export function scalerKernels(): WebAssembly.Module | null {
  if (kernels === undefined) {
    try {
      kernels = new WebAssembly.Module(Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0)));
    } catch {
      kernels = null;
    }
  }
  return kernels;
}

/** A worker of the pool and the runs it has not answered. */
type PoolWorker = {
  worker: ScalerWorker;
  waiting: Map<number, { resolve: () => void; reject: (error: Error) => void }>;
};

/**
 * Posts runs to a pool of worker threads, started by `warm` (the service does at start: a cold
 * start held the first frames of the first source 0.1-0.2 s) or with the first source, and kept:
 * they hold the process open only while they have runs to answer. Each run goes to the worker with the fewest unanswered runs; pictures of one frame come
 * from one run, and the ladder awaits each picture in its rung's order, so runs of one source may
 * finish out of order. Two workers by default: on a busy 2-core machine one worker's runs took 3-5
 * times their CPU time in wall time (it waits for a core among the codecs' threads), and a 1080p30
 * source fell behind; two keep up.
 */
export class ScalerThread {
  readonly #module: WebAssembly.Module;
  readonly #start: StartWorker;
  readonly #size: number;
  #pool: PoolWorker[] = [];
  #inline: ScalerExecutor | undefined;
  #open = new Set<number>();
  #nextJob = 1;
  #nextId = 1;

  constructor(module: WebAssembly.Module, start: StartWorker, workers = 2) {
    this.#module = module;
    this.#start = start;
    this.#size = Math.max(1, workers);
  }

  /** Where runs go: `worker`, or `inline` where a worker could not take the memory. */
  get mode(): 'worker' | 'inline' {
    return this.#inline === undefined ? 'worker' : 'inline';
  }

  /** Starts the workers now, so the first source's frames do not wait for them. */
  warm(): void {
    if (this.#inline !== undefined) return;
    try {
      this.#ensurePool();
    } catch {
      // The first open finds out again and runs inline.
    }
  }

  /** Opens a source (on every worker); returns its id. */
  open(memory: WebAssembly.Memory, program: ScalerProgram): number {
    const id = this.#nextId++;
    if (this.#inline === undefined) {
      try {
        for (const w of this.#ensurePool())
          w.worker.postMessage({ type: 'open', id, memory, program } satisfies Message);
      } catch {
        // No worker, or it cannot take a shared memory (DataCloneError): scale on this thread.
        this.#inline = createScalerExecutor(this.#module);
      }
    }
    this.#inline?.open(id, memory, program);
    this.#open.add(id);
    return id;
  }

  /** Scales `outputs` of `slot` for source `id`; resolves when done. */
  run(id: number, slot: number, outputs: number[]): Promise<void> {
    if (this.#inline !== undefined) {
      try {
        this.#inline.run(id, slot, outputs);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(new Error(`scaler failed: ${errorMessage(error)}`));
      }
    }
    if (this.#pool.length === 0) return Promise.reject(new Error('scaler thread is not running'));
    const target = this.#pool.reduce((best, w) => (w.waiting.size < best.waiting.size ? w : best));
    const job = this.#nextJob++;
    return new Promise<void>((resolve, reject) => {
      if (target.waiting.size === 0) target.worker.ref();
      target.waiting.set(job, { resolve, reject });
      target.worker.postMessage({ type: 'run', id, job, slot, outputs } satisfies Message);
    });
  }

  /** Closes source `id` (its instance in every worker). */
  close(id: number): void {
    if (!this.#open.delete(id)) return;
    this.#inline?.close(id);
    for (const w of this.#pool) w.worker.postMessage({ type: 'close', id } satisfies Message);
  }

  #ensurePool(): PoolWorker[] {
    if (this.#pool.length > 0) return this.#pool;
    const wasm = Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));
    const pool: PoolWorker[] = [];
    this.#pool = pool;
    for (let i = 0; i < this.#size; i++) {
      const entry: PoolWorker = {
        worker: this.#start(workerSetup(), { name: `frame-scaler-${i}`, data: { wasm } }),
        waiting: new Map(),
      };
      const { worker, waiting } = entry;
      // It holds the process open only while it has work.
      worker.unref();
      worker.onMessage((message) => {
        const reply = message as Reply;
        const waiter = waiting.get(reply.job);
        if (waiter === undefined) return;
        waiting.delete(reply.job);
        if (waiting.size === 0) worker.unref();
        if (reply.error === undefined) waiter.resolve();
        else waiter.reject(new Error(`scaler failed: ${reply.error}`));
      });
      const fail = (reason: string): void => {
        if (this.#pool !== pool) return;
        this.#pool = [];
        for (const w of pool) {
          for (const waiter of w.waiting.values()) waiter.reject(new Error(`scaler thread ${reason}`));
          w.waiting.clear();
          if (w !== entry) w.worker.terminate();
        }
        // Sources opened on them are gone with them: their scalers fail their next run and stop.
        this.#open.clear();
      };
      worker.onEnd(fail);
      pool.push(entry);
    }
    return pool;
  }
}

let shared: ScalerThread | null | undefined;

/** The process's scaler thread (its workers started by `start`); null where the kernels cannot run here. */
export function scalerThread(start: StartWorker): ScalerThread | null {
  if (shared === undefined) {
    const module = scalerKernels();
    shared = module === null ? null : new ScalerThread(module, start);
  }
  return shared;
}
