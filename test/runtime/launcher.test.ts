import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** Runs the `lvqr-transcode` launcher with `args` and `env` added. */
function launch(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['bin/lvqr-transcode.mjs', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
}

describe('the Node launcher', () => {
  it('compiles the service into a folder named after its content, the same one on every run', () => {
    const first = launch(['compile']);
    expect(first.status, first.stderr).toBe(0);
    const entry = /^compiled to (\S+node\.mjs)$/m.exec(first.stdout)?.[1];
    expect(entry).toMatch(/node_modules\/\.cache\/lvqr-transcode\/[0-9a-f]{16}\/node\.mjs$/);
    expect(existsSync(entry!)).toBe(true);
    expect(existsSync(entry!.replace(/node\.mjs$/, 'test-pattern-worker.mjs'))).toBe(true);
    const second = launch(['compile']);
    expect(second.stdout).toContain(`compiled to ${entry}`);
  });

  it('runs a command compiled in its own process, and through tsx with LVQR_TSX=1, with the same answer', () => {
    const env = { LVQR_PLAYBACK_SECRET: 'launcher-test' };
    const compiled = launch(['sign', 'live/x', '--ttl', '60'], env);
    expect(compiled.status, compiled.stderr).toBe(0);
    expect(compiled.stderr).not.toContain('running through tsx');
    expect(compiled.stdout).toMatch(/^exp=\d+&sig=[0-9a-f]{64}\n$/);
    const tsx = launch(['sign', 'live/x', '--ttl', '60'], { ...env, LVQR_TSX: '1' });
    expect(tsx.status, tsx.stderr).toBe(0);
    const [c, t] = [compiled.stdout, tsx.stdout].map((out) => /^exp=(\d+)&sig=([0-9a-f]{64})\n$/.exec(out));
    expect(t, tsx.stdout).not.toBeNull();
    expect(Math.abs(Number(t![1]) - Number(c![1]))).toBeLessThan(30);
    // The same secret and broadcast: at the same expiry, the same signature.
    if (t![1] === c![1]) expect(t![2]).toBe(c![2]);
  });
});
