/**
 * Whether objects were garbage collected: `track` keeps a WeakRef to each; `collected` runs a full
 * collection (vitest runs with --expose-gc) once the current job is over, since a WeakRef keeps its
 * target alive until the end of the job that created or read it.
 */

const gc = (globalThis as { gc?: () => void }).gc;

/** WeakRefs to `objects`, for `collected`. */
export function track<T extends object>(objects: readonly T[]): WeakRef<T>[] {
  return objects.map((o) => new WeakRef(o));
}

/** After a full collection: for each ref, whether its object is gone. */
export async function collected(refs: readonly WeakRef<object>[]): Promise<boolean[]> {
  if (gc === undefined) throw new Error('run with --expose-gc (vitest.config.ts sets it)');
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  return refs.map((r) => r.deref() === undefined);
}
