/**
 * glibc's `malloc_trim(0)` for Node, through the koffi FFI package, run on libuv's thread pool.
 *
 * Why: glibc gives a freed block's pages back to the system only from the top of its main arena.
 * The JavaScript thread's small allocations (HTTP buffers, ArrayBuffers under the mmap threshold,
 * the codec addon's chunk copies) leave free holes below live blocks, and those pages stay
 * resident: in the soak's server the main arena held 38 MB, 18 MB of it free, and one
 * `malloc_trim(0)` took RSS down by 13 MB (bench/RESULTS.md, "Memory under overload"). It walks
 * every arena's free blocks and releases their whole pages; on a heap of 10,000 holes it took
 * 440 ms once and 15 ms after, so it runs off the JavaScript thread.
 */

import { createRequire } from 'node:module';
import type { MallocTrimLoad } from '../server/main.ts';

type AsyncCall = { async(pad: number, done: (error: unknown, result: number) => void): void };
type Koffi = { load(path: string): { func(signature: string): AsyncCall } };

/** The trim where it can run (Linux with glibc, koffi installed), else the reason there is none. */
export function loadMallocTrim(): MallocTrimLoad {
  if (process.platform !== 'linux') return { reason: `not Linux (${process.platform})` };
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    return { reason: `koffi not loadable: ${error instanceof Error ? error.message : String(error)}` };
  }
  let call: AsyncCall;
  try {
    // musl and other C libraries have no malloc_trim: the lookup fails there.
    call = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
  } catch (error) {
    return { reason: `no glibc malloc_trim: ${error instanceof Error ? error.message : String(error)}` };
  }
  return {
    trim: () =>
      new Promise((resolve, reject) => {
        call.async(0, (error, released) => (error ? reject(error) : resolve(released === 1)));
      }),
  };
}
