import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { consoleLogger } from '../../src/core/log.ts';
import { loadMallocTrim } from '../../src/runtime/malloc-trim.ts';
import { nodeHost } from '../../src/runtime/node.ts';
import { parseServe } from '../../src/server/config.ts';
import { startService } from '../../src/server/main.ts';
import { waitFor } from '../support/wait.ts';

const rssMb = () => process.memoryUsage().rss / 2 ** 20;
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

/** A full collection: `gc` as vitest.config exposes it, or taken from V8 where it is not. */
function gc(): void {
  if (typeof globalThis.gc === 'function') return void globalThis.gc();
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('malloc_trim (Linux with glibc)', () => {
  it('gives back the pages of freed small blocks that sit below live ones', async () => {
    const loaded = loadMallocTrim();
    expect(loaded.reason).toBeUndefined();
    const trim = loaded.trim!;
    // 12 KiB buffers come from glibc's heap (below any mmap threshold); keeping every fourth pins
    // the heap's top, so freeing the rest leaves ~70 MB of holes that free() cannot give back.
    const all: Array<Buffer | undefined> = Array.from({ length: 8000 }, () => Buffer.alloc(12 * 1024, 1));
    const kept = all.filter((_, i) => i % 4 === 0);
    // Measured while every buffer is live, so a collection that runs before the wait is counted too.
    const buffersLive = process.memoryUsage().arrayBuffers;
    all.fill(undefined);
    await waitFor(
      () => {
        gc();
        const now = process.memoryUsage().arrayBuffers;
        // Thrown, the numbers reach the timeout's message.
        if (now >= buffersLive - 60 * 2 ** 20) throw new Error(`array buffers ${mb(buffersLive)} -> ${mb(now)} MB`);
        return true;
      },
      'the freed buffers collected',
      // Between collections, time for V8's background sweeper to free their memory.
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    const before = rssMb();
    expect(await trim()).toBe(true);
    const after = rssMb();
    expect(before - after, `RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB`).toBeGreaterThan(40);
    expect(kept.every((b) => b?.[0] === 1)).toBe(true);
  });

  it('the service trims every --malloc-trim seconds, one at a time, and stops with it', async () => {
    const loaded = loadMallocTrim();
    let trims = 0;
    const host = {
      ...nodeHost,
      loadMallocTrim: () => ({
        trim: async () => {
          trims += 1;
          return loaded.trim!();
        },
      }),
    };
    const config = parseServe(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--test-pattern',
        'off',
        '--transcode-rendition',
        'none',
        '--malloc-trim',
        '0.05',
      ],
      {},
      () => '',
    );
    expect(config.mallocTrimEveryMs).toBe(50);
    const started = await startService(host, config, consoleLogger('warn'));
    try {
      await waitFor(() => trims >= 3, 'three trims', { timeoutMs: 10_000 });
      // Each finished trim is timed in lvqr_process_malloc_trim_seconds.
      const text = await started.service.metrics.registry.metrics();
      const count = Number(/^lvqr_process_malloc_trim_seconds_count (\S+)$/m.exec(text)?.[1]);
      expect(count).toBeGreaterThanOrEqual(2);
    } finally {
      await started.stop();
    }
    const stoppedAt = trims;
    // After stop no timer is left: the count holds while several periods pass.
    const until = Date.now() + 300;
    await waitFor(() => Date.now() >= until, '300 ms', { timeoutMs: 2_000 });
    expect(trims).toBe(stoppedAt);
  });
});
