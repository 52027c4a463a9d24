// Compiles the Node service (src/runtime/node.ts and the test pattern's worker) to JavaScript with
// esbuild, so that no TypeScript loader runs in the service's process: tsx costs about 0.4 s at
// start and 60 MB of peak RSS on the 1080p ladder, and nothing per frame (bench/RESULTS.md,
// "Ladder throughput": ours against "ours, compiled JavaScript").
//
// The bundles keep every package external and are written under node_modules/.cache, inside the
// package, so that Node resolves those packages from there. Their folder is named after a hash of
// their content: a process that finds it written uses it, a changed source gets a new one, and
// several processes starting at once each write a copy of their own and rename it into place.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Entry points (output name -> source), relative to the package root. */
const ENTRIES = {
  node: 'src/runtime/node.ts',
  'test-pattern-worker': 'src/runtime/test-pattern-worker.ts',
  'codec-worker': 'src/runtime/codec-worker.ts',
};

/** Compiled folders kept besides the one in use (older ones are removed). */
const KEEP = 4;

/**
 * Compiles the service under `root`; resolves with the path of the compiled node entry
 * (`<dir>/node.mjs`), or with `{ error }` when esbuild is missing, the sources do not build or the
 * cache folder cannot be written.
 */
export async function compileService(root) {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (error) {
    return { error: `esbuild is not installed (${error.message})` };
  }
  let result;
  try {
    result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: ENTRIES,
      outdir: 'compiled',
      outExtension: { '.js': '.mjs' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      write: false,
      logLevel: 'silent',
    });
  } catch (error) {
    return { error: `the sources did not compile: ${error.message}` };
  }
  const hash = createHash('sha256');
  for (const file of result.outputFiles) hash.update(file.path).update(file.contents);
  const cache = join(root, 'node_modules', '.cache', 'lvqr-transcode');
  const dir = join(cache, hash.digest('hex').slice(0, 16));
  const entry = join(dir, 'node.mjs');
  if (existsSync(entry)) return { entry };
  const staging = `${dir}.${process.pid}.tmp`;
  try {
    mkdirSync(staging, { recursive: true });
    for (const file of result.outputFiles) writeFileSync(join(staging, file.path.split('/').at(-1)), file.contents);
    try {
      renameSync(staging, dir);
    } catch (error) {
      // Another process renamed its identical copy first.
      rmSync(staging, { recursive: true, force: true });
      if (!existsSync(entry)) throw error;
    }
  } catch (error) {
    return { error: `cannot write ${cache}: ${error.message}` };
  }
  prune(cache, dir);
  return { entry };
}

/** Removes all but the newest KEEP compiled folders of `cache` besides `current`. */
function prune(cache, current) {
  try {
    const dirs = readdirSync(cache)
      .map((name) => join(cache, name))
      .filter((path) => path !== current && !path.endsWith('.tmp'))
      .map((path) => ({ path, mtimeMs: statSync(path).mtimeMs }))
      .sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const { path } of dirs.slice(KEEP)) rmSync(path, { recursive: true, force: true });
  } catch {
    // Another process pruned at the same time: nothing to do.
  }
}
