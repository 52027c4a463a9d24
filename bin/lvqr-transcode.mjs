#!/usr/bin/env node
// Launcher for the `lvqr-transcode` command: runs the TypeScript sources on Node through tsx,
// with --expose-gc (the WebCodecs addon frees native frame memory only on GC).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { requireSupportedNode } from './node-version.mjs';

requireSupportedNode();

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
const child = spawn(
  process.execPath,
  ['--expose-gc', '--import', tsx, join(root, 'src', 'runtime', 'node.ts'), ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
