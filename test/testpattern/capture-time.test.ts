/**
 * The test pattern is the camera: each video fragment carries the time its frame was drawn (the
 * clock drawn in it), not the time the encoder returned it, so the playlists' PROGRAM-DATE-TIMEs
 * (counted from the first frame's) are capture times. Real encoders (the napi WebCodecs addon), one
 * of them made slow.
 */

import { describe, expect, it } from 'vitest';
import type { ParserEvent } from '../../src/container/index.ts';
import type { Fragment } from '../../src/fragment/fragment.ts';
import { TestPatternSource } from '../../src/testpattern/index.ts';
import { napiProvider } from '../../src/webcodecs/index.ts';
import { waitFor } from '../support/wait.ts';

describe('test pattern capture times', () => {
  it("stamps each video fragment with its frame's draw time, not the encoder's output time", async () => {
    const { codecs } = await napiProvider();
    const DELAY_MS = 300;
    type Init = { output: (...args: unknown[]) => void; error: (e: unknown) => void };
    const Native = codecs.VideoEncoder as unknown as new (init: Init) => object;
    // An encoder whose every output comes 300 ms late.
    class SlowEncoder extends Native {
      constructor(init: Init) {
        super({ ...init, output: (...args: unknown[]) => void setTimeout(() => init.output(...args), DELAY_MS) });
      }
    }
    const published: Array<{ fragment: Fragment; atMs: number }> = [];
    const source = new TestPatternSource({
      codecs: { ...codecs, VideoEncoder: SlowEncoder as unknown as typeof codecs.VideoEncoder },
      width: 320,
      height: 180,
      audio: false,
      publish: (events: ParserEvent[]) => {
        for (const e of events) if (e.type === 'fragment') published.push({ fragment: e.fragment, atMs: Date.now() });
      },
    });
    await source.start();
    try {
      await waitFor(() => published.length >= 10, '10 frames', { timeoutMs: 30_000, intervalMs: 10 });
    } finally {
      await source.stop();
    }
    for (const { fragment, atMs } of published.slice(0, 10)) {
      expect(atMs - fragment.ingestTimeMs, `frame at ${fragment.dts}`).toBeGreaterThanOrEqual(DELAY_MS);
    }
  }, 60_000);
});
