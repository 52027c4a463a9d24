import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('benchmarks', () => {
  it('every benchmark still runs end to end in its seconds-long smoke mode (npm run bench -- --smoke)', async () => {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/run-all.ts', '--smoke'], {
        cwd: root,
      });
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        out += d;
      });
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });
    expect(output, output.slice(-4000)).toMatch(/^bench: 5 passed, 0 failed$/m);
    // Each benchmark printed its table with real figures.
    expect(output).toMatch(/\| 4 \| [\d.]+ \(/);
    expect(output).toMatch(/worst rung p99 \*\*\d+ ms\*\*/);
    // Whether one source is sustained depends on what else runs on the box; the step must have run.
    expect(output).toMatch(/\| 1 \| (yes|no) \| \d+ \| \d+ \| [\d.]+ \| \d+ \|/);
    expect(output).toMatch(/This machine sustains \*\*\d+\*\*/);
    expect(output).toMatch(/\| ours \| [\d.]+ \(/);
  }, 240_000);
});
