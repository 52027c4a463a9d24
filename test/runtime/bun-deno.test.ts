import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DENO_FLAGS } from '../../testkit/server.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);

async function smoke(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(command, args, { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} smoke failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

describe('other runtimes', () => {
  it('the smoke suite passes under Bun (npm run test:bun)', async () => {
    const out = await smoke(bin('bun'), ['test/smoke/run-smoke.ts']);
    expect(out).toMatch(/^bun: [1-9]\d* passed, 0 failed$/m);
  }, 300_000);

  it('the smoke suite passes under Deno (npm run test:deno)', async () => {
    // The service's flags, and --allow-run: the smoke runner starts the service as a child.
    const out = await smoke(bin('deno'), ['run', ...DENO_FLAGS, '--allow-run', 'test/smoke/run-smoke.ts']);
    expect(out).toMatch(/^deno: [1-9]\d* passed, 0 failed$/m);
  }, 300_000);
});
