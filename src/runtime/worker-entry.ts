/**
 * The code that starts one of the service's worker threads (`new Worker(code, { eval: true })`):
 * it imports `<name>.ts` from this folder, or `<name>.mjs` beside this module when the launcher
 * compiled the service (bin/compile.mjs compiles each worker entry). Node takes no `.ts` file as a
 * worker's entry and its worker does not inherit a parent's `--import tsx` (nor is there one under
 * the test runner): uncompiled, the worker registers tsx's loader first. Bun and Deno import the
 * TypeScript file as it is.
 */
export function workerEntry(name: 'test-pattern-worker' | 'codec-worker'): string {
  const compiled = import.meta.url.endsWith('.mjs');
  const entry = JSON.stringify(new URL(`./${name}.${compiled ? 'mjs' : 'ts'}`, import.meta.url).href);
  const versions = process.versions as { bun?: string; deno?: string };
  if (compiled || versions.bun !== undefined || versions.deno !== undefined) return `import(${entry});`;
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return `import(${tsx}).then((tsx) => tsx.register()).then(() => import(${entry}));`;
}
