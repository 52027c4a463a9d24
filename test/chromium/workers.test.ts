/**
 * One page worker per source in the Chromium backend, each in a page (a renderer process) of its
 * own: two sources run through one real headless Chromium; one source's worker is made to throw, or
 * to hang (test-only hooks of the page; the hung one is found by the call timeout and ended by the
 * page), or its page's renderer is crashed (DevTools `Page.crash`). That source's rungs restart on
 * a new worker from a later source keyframe (a fault between two GOPs loses no frame), the other
 * source loses no frame and never restarts, and the browser is not relaunched.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChromiumBrowser } from '../../src/runtime/chromium.ts';
import type { ChromiumCodecs } from '../../src/transcode/chromium/codecs.ts';
import { PRESET_240P, type RenditionSpec } from '../../src/transcode/index.ts';
import { fixtureInfo, fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { chromiumUnderTest } from '../support/chromium.ts';
import { probeFrames } from '../support/ffprobe.ts';
import { type CollectedOutput, createHarness, publish } from '../support/ladder.ts';
import { expectResumedAtKeyframe, expectUntouched, publishedIndices } from '../support/source-frames.ts';
import { waitFor } from '../support/wait.ts';

const FIXTURE = '360p30.mp4';
const RENDITIONS: RenditionSpec[] = [
  PRESET_240P,
  { name: '180p', width: 320, height: 180, videoBitrateKbps: 250, audioBitrateKbps: 64 },
];

/** The shared browser, and one whose call timeout is short (the hung worker waits it out). */
let chromium: { codecs: ChromiumCodecs; browser: ChromiumBrowser };
let quick: { codecs: ChromiumCodecs; browser: ChromiumBrowser };
/** The source's frame times, seconds, and its timescale. */
let sourceS: number[];
let sourceTimescale: number;

beforeAll(async () => {
  sourceTimescale = fixtureInfo(FIXTURE).video.timescale;
  sourceS = (await probeFrames(fixturePath(FIXTURE))).map((f) => f.pts / sourceTimescale);
  chromium = chromiumUnderTest();
  quick = chromiumUnderTest({ callTimeoutMs: 2500 });
  await Promise.all([chromium.browser.start(), quick.browser.start()]);
});

afterAll(async () => {
  await Promise.all([chromium?.browser.stop(), quick?.browser.stop()]);
});

/** Waits until every rendition of `outputs()` published frames. */
async function waitForFirstFrames(outputs: () => CollectedOutput[], what: string): Promise<void> {
  await waitFor(
    () => outputs().length === RENDITIONS.length && outputs().every((o) => (o.sessions[0]?.fragments.length ?? 0) > 0),
    what,
    { timeoutMs: 30_000, intervalMs: 10 },
  );
}

describe('chromium backend: one page worker per source', () => {
  it.each([
    ['throws', 'throw', 0.3],
    ['hangs', 'hang', 0.2],
    ['page crashes', 'crash', 0.3],
  ] as const)(
    'a source whose worker %s restarts from a later keyframe on a new worker; the other source loses no frame',
    async (_what, how, speed) => {
      const { codecs, browser } = how === 'hang' ? quick : chromium;
      const info = fixtureInfo(FIXTURE);
      const frameCount = info.video.frameCount;
      const keyIndices = info.video.keyframeIndices;
      const harness = await createHarness({ codecs, renditions: RENDITIONS });
      const outputsOf = (broadcast: string): CollectedOutput[] =>
        [...harness.outputs.values()].filter((o) => o.broadcast.startsWith(`${broadcast}/`));
      const launches = browser.launches;
      try {
        // Slowed down (3 s of media over 10-15 s) so that the fault is noticed before the source's
        // last keyframe; b starts as a's worker fails and runs through it.
        const failing = publish(harness.ingest, 'live/a', [{ bytes: readFixture(FIXTURE), durationS: 3 }], { speed });
        await waitForFirstFrames(() => outputsOf('live/a'), 'source a to publish');
        const [workerA] = codecs.workerIds();
        expect(codecs.workerIds()).toHaveLength(1);
        expect(browser.openPages, "a's worker has a page").toContain(workerA);
        const steady = publish(harness.ingest, 'live/b', [{ bytes: readFixture(FIXTURE), durationS: 3 }], { speed });
        if (how === 'crash') {
          await waitForFirstFrames(() => outputsOf('live/b'), 'source b to publish');
          await browser.crashPage(workerA!);
        } else codecs.injectWorkerFault(workerA!, how);
        await waitFor(() => !codecs.workerIds().includes(workerA!), 'the failed worker to be dropped', {
          timeoutMs: 15_000,
        });
        await waitForFirstFrames(() => outputsOf('live/b'), 'source b to publish');
        expect(codecs.workerIds().length, 'b has a worker of its own').toBeGreaterThanOrEqual(1);
        await Promise.all([failing, steady]);
        await Promise.all([harness.settled('live/a'), harness.settled('live/b')]);
        expect(browser.launches, 'the browser was not relaunched').toBe(launches);
        await waitFor(() => browser.openPages.length === 0, 'the pages of ended sources to close');
        const tasks = harness.handle.stats();
        for (const output of outputsOf('live/b')) {
          const stats = tasks.find((t) => t.broadcast === 'live/b' && t.rendition === output.rendition)!;
          await expectUntouched(
            output,
            stats.transcoderStats!,
            { sourceS, timescale: sourceTimescale },
            `b/${output.rendition}`,
          );
        }
        for (const output of outputsOf('live/a')) {
          const indices = await publishedIndices(output, sourceS, sourceTimescale);
          expectResumedAtKeyframe(indices, keyIndices, frameCount, `a/${output.rendition}`);
          const stats = tasks.find((t) => t.broadcast === 'live/a' && t.rendition === output.rendition)!
            .transcoderStats!;
          expect(Number(stats['restarts']), `a/${output.rendition}`).toBeGreaterThanOrEqual(1);
          // A crash is reported by DevTools (crashed) or by the page's socket dropping, whichever comes first.
          expect(String(stats['lastError']), `a/${output.rendition}`).toMatch(
            {
              hang: /unanswered too long/,
              throw: /its worker failed/,
              crash: /its page (crashed|closed its connection)/,
            }[how],
          );
        }
      } finally {
        await harness.close();
      }
    },
  );
});
