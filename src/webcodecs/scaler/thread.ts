/**
 * The scaler's worker thread, shared by every source of the process: the main thread copies each
 * decoded frame into the source's shared memory and posts a run; the worker scales it while the
 * main thread serves requests and feeds the codecs. Runs are answered in the order they were
 * posted. Where a runtime's worker cannot take a shared WebAssembly memory, runs go inline.
 */

import { Worker } from 'node:worker_threads';
import { errorMessage } from '../../core/errors.ts';
import { createScalerExecutor, type ScalerExecutor } from './executor.ts';
import { KERNELS_WASM_BASE64 } from './kernels-wasm.ts';
import type { ScalerProgram } from './program.ts';

type Message =
  | { type: 'open'; id: number; memory: WebAssembly.Memory; program: ScalerProgram }
  | { type: 'run'; id: number; job: number; slot: number; outputs: number[] }
  | { type: 'close'; id: number };

type Reply = { job: number; error?: string };

/** The worker's code: the executor, and a loop that answers each run with its job number. */
function workerSource(): string {
  return `import('node:worker_threads').then(({ parentPort, workerData }) => {
  const createScalerExecutor = ${createScalerExecutor.toString()};
  const executor = createScalerExecutor(new WebAssembly.Module(workerData.wasm));
  parentPort.on('message', (m) => {
    try {
      if (m.type === 'open') executor.open(m.id, m.memory, m.program);
      else if (m.type === 'close') executor.close(m.id);
      else {
        executor.run(m.id, m.slot, m.outputs);
        parentPort.postMessage({ job: m.job });
      }
    } catch (error) {
      if (m.type === 'run') parentPort.postMessage({ job: m.job, error: String(error && error.message || error) });
    }
  });
});`;
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

/** Posts runs to the worker (started with the first open source, ended with the last). */
export class ScalerThread {
  readonly #module: WebAssembly.Module;
  #worker: Worker | undefined;
  #inline: ScalerExecutor | undefined;
  #open = new Set<number>();
  #waiting = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  #nextJob = 1;
  #nextId = 1;

  constructor(module: WebAssembly.Module) {
    this.#module = module;
  }

  /** Where runs go: `worker`, or `inline` where the worker could not take the memory. */
  get mode(): 'worker' | 'inline' {
    return this.#inline === undefined ? 'worker' : 'inline';
  }

  /** Opens a source; returns its id. */
  open(memory: WebAssembly.Memory, program: ScalerProgram): number {
    const id = this.#nextId++;
    if (this.#inline === undefined) {
      try {
        this.#ensureWorker().postMessage({ type: 'open', id, memory, program } satisfies Message);
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
    const worker = this.#worker;
    if (worker === undefined) return Promise.reject(new Error('scaler thread is not running'));
    const job = this.#nextJob++;
    return new Promise<void>((resolve, reject) => {
      if (this.#waiting.size === 0) worker.ref();
      this.#waiting.set(job, { resolve, reject });
      worker.postMessage({ type: 'run', id, job, slot, outputs } satisfies Message);
    });
  }

  /** Closes source `id`; the worker ends with the last one. */
  close(id: number): void {
    if (!this.#open.delete(id)) return;
    this.#inline?.close(id);
    const worker = this.#worker;
    if (worker === undefined) return;
    worker.postMessage({ type: 'close', id } satisfies Message);
    if (this.#open.size === 0 && this.#waiting.size === 0) {
      this.#worker = undefined;
      void worker.terminate();
    }
  }

  #ensureWorker(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(workerSource(), {
      eval: true,
      name: 'frame-scaler',
      workerData: { wasm: Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0)) },
    });
    // It holds the process open only while it has work.
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiter = this.#waiting.get(reply.job);
      if (waiter === undefined) return;
      this.#waiting.delete(reply.job);
      if (this.#waiting.size === 0) worker.unref();
      if (reply.error === undefined) waiter.resolve();
      else waiter.reject(new Error(`scaler failed: ${reply.error}`));
      if (this.#waiting.size === 0 && this.#open.size === 0 && this.#worker === worker) {
        this.#worker = undefined;
        void worker.terminate();
      }
    });
    const fail = (reason: string): void => {
      // A worker ended by close() had nothing left to do.
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const waiter of this.#waiting.values()) waiter.reject(new Error(`scaler thread ${reason}`));
      this.#waiting.clear();
      // Sources opened on it are gone with it: their scalers fail their next run and stop.
      this.#open.clear();
    };
    worker.on('error', (error) => fail(`failed: ${error.message}`));
    worker.on('exit', (code) => fail(`exited (${code})`));
    this.#worker = worker;
    return worker;
  }
}

let shared: ScalerThread | null | undefined;

/** The process's scaler thread; null where the kernels cannot run here. */
export function scalerThread(): ScalerThread | null {
  if (shared === undefined) {
    const module = scalerKernels();
    shared = module === null ? null : new ScalerThread(module);
  }
  return shared;
}
