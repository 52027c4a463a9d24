/**
 * Runs scaler programs: one WebAssembly instance per open source, over that source's memory. The
 * same code runs in the scaler's worker thread (its source text is the worker's; see thread.ts)
 * and, where no worker can take shared memory, inline.
 */

import type { ScalerProgram } from './program.ts';

/** What a thread (or the inline fallback) offers. */
export type ScalerExecutor = {
  open(id: number, memory: WebAssembly.Memory, program: ScalerProgram): void;
  /** Runs the calls of `outputs`, in that order, on the pictures of `slot`. */
  run(id: number, slot: number, outputs: readonly number[]): void;
  close(id: number): void;
};

/**
 * An executor of `module` (the kernels). Self-contained on purpose: its source text is evaluated
 * in the worker thread, so it refers to nothing outside itself.
 */
export function createScalerExecutor(module: WebAssembly.Module): ScalerExecutor {
  type Kernels = {
    hpass: (...args: number[]) => void;
    vpass: (...args: number[]) => void;
  };
  const sources = new Map<number, { kernels: Kernels; program: ScalerProgram }>();
  return {
    open(id, memory, program) {
      const instance = new WebAssembly.Instance(module, { env: { memory } });
      sources.set(id, { kernels: instance.exports as unknown as Kernels, program });
    },
    run(id, slot, outputs) {
      const source = sources.get(id);
      if (source === undefined) throw new Error(`scaler ${id} is not open`);
      const { hpass, vpass } = source.kernels;
      for (const output of outputs) {
        const c = source.program.calls[slot]![output]!;
        for (let i = 0; i < c.length; ) {
          if (c[i] === 0) {
            hpass(
              c[i + 1]!,
              c[i + 2]!,
              c[i + 3]!,
              c[i + 4]!,
              c[i + 5]!,
              c[i + 6]!,
              c[i + 7]!,
              c[i + 8]!,
              c[i + 9]!,
              c[i + 10]!,
            );
            i += 11;
          } else {
            vpass(c[i + 1]!, c[i + 2]!, c[i + 3]!, c[i + 4]!, c[i + 5]!, c[i + 6]!, c[i + 7]!, c[i + 8]!, c[i + 9]!);
            i += 10;
          }
        }
      }
    },
    close(id) {
      sources.delete(id);
    },
  };
}
