/**
 * The threads backend (`--transcode-backend threads`): each source's codecs in a worker thread of
 * its own, real H.264 through the addon in those threads. Two sources run at once; one source's
 * thread is made to throw an uncaught error, or to hang (test-only hooks; the hung one is found by
 * the call timeout and terminated). That source's rungs restart on a new thread from a later
 * source keyframe, the other source loses no frame and never restarts; every output is judged by
 * ffprobe frame by frame against the source's frame times.
 */

import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { CodecThreads } from '../../src/runtime/codec-threads.ts';
import { PRESET_240P, type RenditionSpec } from '../../src/transcode/index.ts';
import { fixtureInfo, fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { probeFrames } from '../support/ffprobe.ts';
import { type CollectedOutput, createHarness, publish } from '../support/ladder.ts';
import { expectResumedAtKeyframe, expectUntouched, publishedIndices } from '../support/source-frames.ts';
import { waitFor } from '../support/wait.ts';

const FIXTURE = '360p30.mp4';
const RENDITIONS: RenditionSpec[] = [
  PRESET_240P,
  { name: '180p', width: 320, height: 180, videoBitrateKbps: 250, audioBitrateKbps: 64 },
];

describe('threads backend: one codec thread per source', () => {
  it('transcodes every frame of a source in a thread, and ends the thread with the source', async () => {
    const info = fixtureInfo(FIXTURE);
    const sourceS = (await probeFrames(fixturePath(FIXTURE))).map((f) => f.pts / info.video.timescale);
    const threads = new CodecThreads({
      backend: 'software',
      hardwareAcceleration: 'no-preference',
      logger: silentLogger,
    });
    await threads.start();
    const harness = await createHarness({ codecs: threads.codecs, renditions: RENDITIONS });
    try {
      await publish(harness.ingest, 'live/a', [{ bytes: readFixture(FIXTURE), durationS: 3 }]);
      await harness.settled('live/a');
      const outputs = [...harness.outputs.values()];
      expect(outputs.map((o) => o.rendition).sort()).toEqual(['180p', '240p']);
      for (const output of outputs) {
        expect(output.sessions, output.rendition).toHaveLength(1);
        expect(await publishedIndices(output, sourceS, info.video.timescale), output.rendition).toEqual(
          Array.from({ length: info.video.frameCount }, (_, i) => i),
        );
      }
      await waitFor(() => threads.size === 0, 'the thread of the ended source to end');
    } finally {
      await harness.close();
      await threads.close();
    }
  });

  it.each([
    ['throws', 'throw', 2500, 0.3, /its thread failed: test fault/],
    ['hangs', 'hang', 1500, 0.2, /left a call unanswered/],
  ] as const)(
    'a source whose thread %s restarts from a later keyframe on a new thread; the other source loses no frame',
    async (_what, how, callTimeoutMs, speed, lastError) => {
      const info = fixtureInfo(FIXTURE);
      const frameCount = info.video.frameCount;
      const sourceS = (await probeFrames(fixturePath(FIXTURE))).map((f) => f.pts / info.video.timescale);
      const threads = new CodecThreads({
        backend: 'software',
        hardwareAcceleration: 'no-preference',
        logger: silentLogger,
        callTimeoutMs,
        testHooks: true,
      });
      const { codecs } = threads;
      const harness = await createHarness({ codecs, renditions: RENDITIONS });
      const outputsOf = (broadcast: string): CollectedOutput[] =>
        [...harness.outputs.values()].filter((o) => o.broadcast.startsWith(`${broadcast}/`));
      const firstFrames = (broadcast: string) =>
        waitFor(
          () =>
            outputsOf(broadcast).length === RENDITIONS.length &&
            outputsOf(broadcast).every((o) => (o.sessions[0]?.fragments.length ?? 0) > 0),
          `${broadcast} to publish`,
          { timeoutMs: 30_000, intervalMs: 10 },
        );
      try {
        // Slowed down (3 s of media over 10-15 s) so that the fault is noticed before the source's last
        // keyframe; b starts as a's thread fails and runs through it.
        const failing = publish(harness.ingest, 'live/a', [{ bytes: readFixture(FIXTURE), durationS: 3 }], { speed });
        await firstFrames('live/a');
        const [threadA] = codecs.workerIds();
        expect(codecs.workerIds()).toHaveLength(1);
        const steady = publish(harness.ingest, 'live/b', [{ bytes: readFixture(FIXTURE), durationS: 3 }], { speed });
        codecs.injectWorkerFault(threadA!, how);
        await waitFor(() => !codecs.workerIds().includes(threadA!), 'the failed thread to be dropped', {
          timeoutMs: 15_000,
        });
        await firstFrames('live/b');
        expect(codecs.workerIds().length, 'b runs in a thread of its own').toBeGreaterThanOrEqual(1);
        await Promise.all([failing, steady]);
        await Promise.all([harness.settled('live/a'), harness.settled('live/b')]);
        await waitFor(() => threads.size === 0, 'the threads of ended sources to end');
        const tasks = harness.handle.stats();
        for (const output of outputsOf('live/b')) {
          const stats = tasks.find((t) => t.broadcast === 'live/b' && t.rendition === output.rendition)!;
          await expectUntouched(
            output,
            stats.transcoderStats!,
            { sourceS, timescale: info.video.timescale },
            `b/${output.rendition}`,
          );
        }
        for (const output of outputsOf('live/a')) {
          const indices = await publishedIndices(output, sourceS, info.video.timescale);
          expectResumedAtKeyframe(indices, info.video.keyframeIndices, frameCount, `a/${output.rendition}`);
          const stats = tasks.find((t) => t.broadcast === 'live/a' && t.rendition === output.rendition)!
            .transcoderStats!;
          expect(Number(stats['restarts']), `a/${output.rendition}`).toBeGreaterThanOrEqual(1);
          expect(String(stats['lastError']), `a/${output.rendition}`).toMatch(lastError);
        }
      } finally {
        await harness.close();
        await threads.close();
      }
    },
  );
});
