#!/usr/bin/env node
// Launcher for the `lvqr-transcode` command. It compiles the TypeScript sources with esbuild
// (bin/compile.mjs, about 0.3 s on an idle 2-vCPU machine) and runs the result in this process,
// with `gc` exposed (the WebCodecs addon frees native frame memory only on GC). Where that cannot
// be done (no esbuild, a cache folder it may not write, or LVQR_TSX=1) it runs the sources through
// tsx in a child process with --expose-gc. `lvqr-transcode compile` only compiles (the Docker image
// runs it at build time, since its runtime user may not write the package's folder).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { compileService } from './compile.mjs';
import { requireSupportedNode } from './node-version.mjs';

requireSupportedNode();

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

if (args[0] === 'compile') {
  const compiled = await compileService(root);
  if (compiled.error !== undefined) {
    console.error(`lvqr-transcode compile: ${compiled.error}`);
    process.exit(1);
  }
  console.log(`compiled to ${compiled.entry}`);
  process.exit(0);
}

const compiled = process.env.LVQR_TSX === '1' ? { error: 'LVQR_TSX=1' } : await compileService(root);
if (compiled.entry !== undefined) {
  // Contexts created from now on (worker threads too) get `gc`; this one takes it from a new one.
  setFlagsFromString('--expose-gc');
  globalThis.gc ??= runInNewContext('gc');
  const service = await import(pathToFileURL(compiled.entry).href);
  service.runNodeMain();
} else {
  if (process.env.LVQR_TSX !== '1') console.error(`lvqr-transcode: running through tsx (${compiled.error})`);
  const require = createRequire(import.meta.url);
  const tsx = pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', tsx, join(root, 'src', 'runtime', 'node.ts'), ...args],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
