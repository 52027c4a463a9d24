/**
 * Runs the built-in test pattern as the server starts it (`startTestPattern`) into a stand-in
 * service for 45 frames after a 15-frame warm-up, and prints as JSON how busy the calling thread's
 * event loop was meanwhile (`performance.eventLoopUtilization`). Run with `node --import tsx`
 * (test/runtime/test-pattern-thread.test.ts).
 */

import { performance } from 'node:perf_hooks';
import type { ParserEvent } from '../../src/container/index.ts';
import { silentLogger } from '../../src/core/log.ts';
import { VIDEO_TRACK } from '../../src/fragment/fragment.ts';
import { startTestPattern } from '../../src/runtime/tools.ts';
import type { Service } from '../../src/server/service.ts';
import { waitFor } from './wait.ts';

let frames = 0;
const service = {
  ingest: {
    open: () => ({
      publishEvents: (events: ParserEvent[]) => {
        for (const e of events) if (e.type === 'fragment' && e.fragment.trackId === VIDEO_TRACK) frames += 1;
      },
      end: () => {},
    }),
  },
} as unknown as Service;

const stop = await startTestPattern(service, 'load/test', silentLogger);
await waitFor(() => frames >= 15, 'the first 15 frames', { timeoutMs: 60_000, intervalMs: 10 });
const from = frames;
const before = performance.eventLoopUtilization();
await waitFor(() => frames >= from + 45, '45 more frames', { timeoutMs: 60_000, intervalMs: 10 });
const { utilization } = performance.eventLoopUtilization(before);
await stop();
console.log(JSON.stringify({ utilization, frames: frames - from }));
process.exit(0);
