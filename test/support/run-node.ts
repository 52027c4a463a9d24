/** Runs a TypeScript script of the repository the way the CLI runs: `node --expose-gc --import tsx`. */

import { spawn } from 'node:child_process';
import { ROOT } from '../../testkit/server.ts';

/** Runs `node --expose-gc --import tsx <args>` in the repository root; resolves with the exit code and output. */
export function runNode(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', ...args], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: out }));
  });
}
