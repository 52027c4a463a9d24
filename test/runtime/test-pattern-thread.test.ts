/**
 * The built-in test pattern draws and encodes off the server's JavaScript thread: while it
 * publishes 45 frames, the thread that started it is busy well under a third of the time (drawing a
 * 1280x720 frame and converting it for the encoder on that thread kept it busy all the time on a
 * loaded 2-core box, and every HTTP answer waited behind a frame). Runs as the server does:
 * `node --import tsx`, in a child process.
 */

import { describe, expect, it } from 'vitest';
import { runNode } from '../support/run-node.ts';

describe('test pattern thread', () => {
  it('leaves the event loop of the thread that started it mostly idle while it publishes', async () => {
    const { code, output } = await runNode(['test/support/test-pattern-load.ts']);
    expect(code, output).toBe(0);
    const result = JSON.parse(output.trim().split('\n').at(-1)!) as { utilization: number; frames: number };
    console.log(
      `test pattern: event loop utilization ${(result.utilization * 100).toFixed(1)} % over ${result.frames} frames`,
    );
    expect(result.frames).toBeGreaterThanOrEqual(45);
    expect(result.utilization).toBeLessThan(0.3);
  }, 90_000);
});
