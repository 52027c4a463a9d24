/**
 * The encoder policy on the chromium backend, decided by a real test encode in the page: on a
 * machine whose Chromium has no hardware encoder (this one: `--disable-gpu` or no VA-API device),
 * `software` runs OpenH264, `prefer-hardware` falls back to it with a warning, `hardware-only`
 * refuses with a message that says why; a binary that does not run fails at once. No browser is
 * left behind by a refusal.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/log.ts';
import { loadChromiumCodecs } from '../../src/runtime/chromium-codecs.ts';
import { parseServe } from '../../src/server/config.ts';

const CHROMIUM = process.env['LVQR_CHROMIUM'] ?? '/usr/bin/chromium';

function recordingLogger(lines: string[]): Logger {
  const push = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  return { debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}

function config(...argv: string[]) {
  return parseServe(['--transcode-backend', 'chromium', '--chromium', CHROMIUM, ...argv], {}, () => '');
}

describe('chromium backend: encoder policy', () => {
  it('software: the page encodes with its software encoder; profile folders of services that are gone are removed', async () => {
    expect(existsSync(CHROMIUM)).toBe(true);
    // A SIGKILLed service leaves its profile behind: one of a pid that no longer runs, one of a live pid.
    const dead = spawnSync('true').pid!;
    const stale = mkdtempSync(path.join(tmpdir(), `lvqr-chromium-${dead}-`));
    const live = mkdtempSync(path.join(tmpdir(), `lvqr-chromium-${process.ppid}-`));
    const loaded = await loadChromiumCodecs(config('--transcode-encoder', 'software'), recordingLogger([]));
    try {
      expect(loaded.reason).toBeUndefined();
      expect(loaded.codecs?.backend).toBe('chromium-software');
      expect(loaded.audioCodecs, 'audio stays in-process (napi)').toBeDefined();
      expect(loaded.provider?.name).toBe('napi');
      expect(existsSync(stale), 'the dead service profile').toBe(false);
      expect(existsSync(live), 'the live one').toBe(true);
    } finally {
      await loaded.close?.();
      rmSync(live, { recursive: true, force: true });
    }
  });

  it('prefer-hardware without a hardware encoder: software, with a warning and the reason in the info', async () => {
    const lines: string[] = [];
    const loaded = await loadChromiumCodecs(config('--transcode-encoder', 'prefer-hardware'), recordingLogger(lines));
    try {
      // Why it did not load, when it did not (a full run once got no codecs here, with no reason shown).
      expect(loaded.reason).toBeUndefined();
      expect(loaded.codecs?.backend).toBe('chromium-software');
      expect(String(loaded.info?.['hardwareFallback'])).toMatch(/no hardware encoder in chromium/);
      expect(lines.some((l) => l.startsWith('warn prefer-hardware: falling back to software'))).toBe(true);
    } finally {
      await loaded.close?.();
    }
  });

  it('hardware-only without a hardware encoder: refused, saying why', async () => {
    const loaded = await loadChromiumCodecs(config('--transcode-encoder', 'hardware-only'), recordingLogger([]));
    expect(loaded.codecs).toBeUndefined();
    expect(loaded.close).toBeUndefined();
    expect(loaded.reason).toMatch(/^no hardware encoder in chromium: its prefer-hardware test encode failed \(.+\)$/);
  });

  it('a Chromium binary that does not run is reported at once', async () => {
    const started = Date.now();
    const loaded = await loadChromiumCodecs(
      parseServe(['--transcode-backend', 'chromium', '--chromium', '/nonexistent/chromium'], {}, () => ''),
      recordingLogger([]),
    );
    expect(loaded.codecs).toBeUndefined();
    expect(loaded.reason).toMatch(/\/nonexistent\/chromium did not start: cannot run \/nonexistent\/chromium/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
