import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MIN_NODE, nodeTooOld } from '../../bin/node-version.mjs';

describe('minimum Node version', () => {
  it('package.json engines states the version the launcher enforces', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(`>=${MIN_NODE[0]}.${MIN_NODE[1]}`);
    expect(MIN_NODE[2]).toBe(0);
  });

  it('refuses versions older than 20.19 and accepts 20.19 and newer', () => {
    expect(['18.20.4', '20.0.0', '20.18.1', '20.18.99'].filter((v) => !nodeTooOld(v))).toEqual([]);
    expect(['20.19.0', '20.20.2', '21.0.0', '22.12.0', '24.1.0'].filter((v) => nodeTooOld(v))).toEqual([]);
  });

  it('the launcher stops on an old Node with a message naming both versions, before loading anything', () => {
    const script = `Object.defineProperty(process.versions, 'node', { value: '20.18.1' });
      const { requireSupportedNode } = await import('./bin/node-version.mjs');
      requireSupportedNode();
      console.log('still running');`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stdout).not.toContain('still running');
    expect(result.stderr).toContain('needs Node 20.19.0 or newer; this is Node 20.18.1');
  });
});
