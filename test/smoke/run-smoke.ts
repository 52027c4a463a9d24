/**
 * Runtime smoke suite for Bun and Deno (Node runs the full vitest suite): the registry, the
 * runner and the rest of the core run unchanged on each runtime. Prints `N passed, N failed`.
 * Makes the media fixtures first when any is missing, as vitest's global setup does.
 */

import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import { defaultLadder, PassthroughTranscoderFactory, TranscodeRunner } from '../../src/transcode/index.ts';
import { ensureFixtures } from '../../testkit/fixtures.ts';
import { frag, videoMeta } from '../support/fragments.ts';
import { waitFor } from '../support/wait.ts';
import { serverSmokeCases } from './server-smoke.ts';

type Case = { name: string; run: () => Promise<void> };

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

const runtime =
  typeof (globalThis as { Bun?: unknown }).Bun !== 'undefined'
    ? 'bun'
    : typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined'
      ? 'deno'
      : 'node';

const cases: Case[] = [
  {
    name: 'registry fans out and ends after the producer closes',
    async run() {
      const reg = new FragmentBroadcasterRegistry();
      const bc = reg.getOrCreate('live/a', '0.mp4', videoMeta(new Uint8Array(1)));
      const a = bc.subscribe();
      const b = bc.subscribe();
      check(bc.emit(frag(0)) === 2, 'emit reached 2');
      bc.emit(frag(1));
      reg.remove('live/a', '0.mp4');
      for (const sub of [a, b]) {
        check((await sub.next())?.dts === 0, 'first');
        check((await sub.next())?.dts === 3000, 'second');
        check((await sub.next()) === undefined, 'end');
      }
    },
  },
  {
    name: 'a lagging subscriber resumes at a keyframe',
    async run() {
      const reg = new FragmentBroadcasterRegistry({ broadcaster: { capacity: 4 } });
      const bc = reg.getOrCreate('live/l', '0.mp4', videoMeta(new Uint8Array(1)));
      const sub = bc.subscribe();
      for (let i = 0; i < 20; i++) bc.emit(frag(i, { gop: 3 }));
      const first = await sub.next();
      check(first?.flags.keyframe === true, 'resumed at keyframe');
      check(sub.lagged > 0, 'lag counted');
    },
  },
  {
    name: 'the runner drives the default ladder, counts into metrics and closes',
    async run() {
      const reg = new FragmentBroadcasterRegistry();
      const metrics = createMetrics();
      const handle = new TranscodeRunner({ metrics })
        .withLadder(defaultLadder(), (s) => new PassthroughTranscoderFactory(s))
        .install(reg);
      const bc = reg.getOrCreate('live/r', '0.mp4', videoMeta());
      bc.setInitSegment(new Uint8Array(2));
      for (let i = 0; i < 5; i++) bc.emit(frag(i));
      await waitFor(
        () => handle.stats().length === 3 && handle.stats().every((s) => s.fragmentsSeen === 5),
        'ladder saw 5',
      );
      const text = await metrics.registry.metrics();
      check(text.includes('lvqr_transcode_fragments_total{transcoder="passthrough",rendition="240p"} 5'), 'metric');
      await handle.close();
      check(
        handle.stats().every((s) => s.state === 'ended'),
        'all ended',
      );
    },
  },
  ...serverSmokeCases(runtime),
];

ensureFixtures('smoke');
let passed = 0;
let failed = 0;
for (const c of cases) {
  const started = Date.now();
  try {
    await c.run();
    passed += 1;
    console.log(`ok   ${c.name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${c.name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
}
console.log(`${runtime}: ${passed} passed, ${failed} failed`);
if (failed > 0 || passed === 0) {
  const proc = (globalThis as { process?: { exit(code: number): never } }).process;
  proc?.exit(1);
}
