/**
 * The Chromium backend under the real ladder: fixtures are published through the real ingest, the
 * ladder decodes and encodes in a real headless Chromium (Debian's, OpenH264 inside), and every
 * rung output is judged by ffprobe/ffmpeg as the napi ladder's are (every frame at the source's
 * timestamps, IDRs at the source's keyframes only, planned sizes, PSNR floor). Then the browser is
 * killed mid-stream (the rungs must resume at a later source keyframe on a relaunched browser), or
 * its renderers are (the source's page is replaced by a new one in the same browser).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChromiumBrowser } from '../../src/runtime/chromium.ts';
import type { ChromiumCodecs } from '../../src/transcode/chromium/codecs.ts';
import { fixtureInfo, fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { chromiumUnderTest } from '../support/chromium.ts';
import { type ProbedFrame, probeFrames } from '../support/ffprobe.ts';
import { createHarness, type JudgedOutput, judge, publish, sessionFile } from '../support/ladder.ts';
import { psnrPerFrame } from '../support/psnr.ts';
import { waitFor } from '../support/wait.ts';

const FIXTURE = '720p30-nob-aac.mp4';
const PLANNED: Record<string, readonly [number, number]> = {
  '720p': [1280, 720],
  '480p': [854, 480],
  '240p': [426, 240],
};
/** Lowest PSNR-Y a frame may have against the source scaled (bicubic) to its rung's size (the napi ladder's floors). */
const PSNR_FLOOR_DB: Record<string, number> = { '720p': 32, '480p': 34, '240p': 33 };

type Truth = { timescale: number; ptsS: number[]; keyS: number[]; frames: ProbedFrame[] };

let codecs: ChromiumCodecs;
let browser: ChromiumBrowser;
let truth: Truth;

function seconds(frames: readonly ProbedFrame[], timescale: number): number[] {
  return frames.map((f) => f.pts / timescale);
}

/** Index of the source frame at `t` seconds (within half a tick), or -1. */
function sourceIndex(t: number): number {
  return truth.ptsS.findIndex((s) => Math.abs(s - t) <= 0.5 / truth.timescale);
}

/** The renderer processes (the page among them) of the browser `pid`: its process group's `--type=renderer` members. */
function renderersOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (pgrp === pid && cmdline.includes('--type=renderer')) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  if (found.length === 0) throw new Error(`no renderer under browser ${pid}`);
  return found;
}

beforeAll(async () => {
  const info = fixtureInfo(FIXTURE);
  const frames = await probeFrames(fixturePath(FIXTURE));
  truth = {
    timescale: info.video.timescale,
    frames,
    ptsS: seconds(frames, info.video.timescale),
    keyS: info.video.keyframePts.map((p) => p / info.video.timescale),
  };
  ({ codecs, browser } = chromiumUnderTest());
  await browser.start();
});

afterAll(async () => {
  await browser?.stop();
});

describe('chromium backend: the ladder through a headless Chromium page', () => {
  it('every rung has every source frame at its timestamp, IDRs exactly at the source keyframes, its planned size and a PSNR floor', async () => {
    const harness = await createHarness({ codecs });
    const broadcast = 'live/chromium';
    try {
      await publish(harness.ingest, broadcast, [{ bytes: readFixture(FIXTURE), durationS: 3 }]);
      await harness.settled(broadcast);
      const tasks = harness.handle.stats().filter((t) => t.broadcast === broadcast);
      expect(tasks.map((t) => t.rendition).sort()).toEqual(Object.keys(PLANNED).sort());
      const lines: string[] = [];
      for (const output of harness.outputs.values()) {
        const rendition = output.rendition;
        expect(output.sessions.length, rendition).toBe(1);
        const file = sessionFile(output.sessions[0]!);
        const judged: JudgedOutput = await judge(file);
        expect([judged.width, judged.height], rendition).toEqual(PLANNED[rendition]);
        expect(judged.codecName).toBe('h264');
        expect(judged.codecTag).toBe('avc1');
        expect(judged.decodeErrors, rendition).toEqual([]);
        const times = seconds(judged.frames, judged.timescale);
        expect(times.length, `${rendition}: frames`).toBe(truth.ptsS.length);
        expect(
          times.every((t, i) => Math.abs(t - truth.ptsS[i]!) <= 0.5 / truth.timescale),
          `${rendition}: source timestamps`,
        ).toBe(true);
        const keys = seconds(
          judged.frames.filter((f) => f.keyFrame),
          judged.timescale,
        );
        expect(keys.length, `${rendition}: IDRs`).toBe(truth.keyS.length);
        expect(keys.every((t, i) => Math.abs(t - truth.keyS[i]!) <= 0.5 / truth.timescale)).toBe(true);
        expect(judged.frames.every((f) => f.pictType !== 'I' || f.keyFrame)).toBe(true);
        const fragments = output.sessions[0]!.fragments;
        expect(fragments.length, `${rendition}: one fragment per frame`).toBe(truth.ptsS.length);
        const psnr = await psnrPerFrame(file, fixturePath(FIXTURE), judged.width!, judged.height!);
        const minY = Math.min(...psnr.map((p) => p.y));
        expect(psnr.length).toBe(truth.ptsS.length);
        expect(minY, `${rendition}: lowest PSNR-Y`).toBeGreaterThanOrEqual(PSNR_FLOOR_DB[rendition]!);
        const stats = tasks.find((t) => t.rendition === rendition)!.transcoderStats!;
        expect(stats['backend']).toBe('chromium-software');
        expect(stats['droppedFrames']).toBe(0);
        lines.push(`${rendition} ${judged.width}x${judged.height} ${judged.profile} min PSNR-Y ${minY.toFixed(1)} dB`);
      }
      console.log(`[chromium ladder] ${lines.join(' | ')}`);
      expect(await harness.decoderSessions()).toEqual({ created: 1, closed: 1 });
    } finally {
      await harness.close();
    }
  });

  it.each([
    ['browser', 'SIGKILL of its process group: the browser is relaunched', 0.5],
    ['renderer', 'SIGKILL of every renderer: the page crashed, a new page replaces it', 0.5],
    ['hung page', 'SIGSTOP of every renderer: the call timeout finds it, a new page replaces it', 0.2],
  ] as const)(
    'a %s (%s) is noticed and every rung resumes at a later source keyframe with clean output',
    async (victim, _how, speed) => {
      // The hung page waits out its own short call timeout, with its own browser.
      const ownChromium = victim === 'hung page' ? chromiumUnderTest({ callTimeoutMs: 3000 }) : undefined;
      const own = ownChromium?.codecs;
      const ownBrowser = ownChromium?.browser;
      await ownBrowser?.start();
      const used = ownBrowser ?? browser;
      const harness = await createHarness({ codecs: own ?? codecs });
      const broadcast = `live/chromium-${victim.replace(' ', '-')}`;
      const launches = used.launches;
      try {
        // Slowed down (3 s of media over 6-15 s) so that noticing and relaunching fit before its last keyframe.
        const publishing = publish(harness.ingest, broadcast, [{ bytes: readFixture(FIXTURE), durationS: 3 }], {
          speed,
        });
        await waitFor(
          () => [...harness.outputs.values()].filter((o) => (o.sessions[0]?.fragments.length ?? 0) > 0).length === 3,
          'every rung to publish its first frames',
          { timeoutMs: 20_000, intervalMs: 10 },
        );
        const pid = used.pid!;
        if (victim === 'browser') process.kill(-pid, 'SIGKILL');
        else
          for (const renderer of renderersOf(pid))
            process.kill(renderer, victim === 'renderer' ? 'SIGKILL' : 'SIGSTOP');
        await publishing;
        await harness.settled(broadcast);
        if (victim === 'browser') {
          expect(used.launches).toBe(launches + 1);
          expect(used.pid).not.toBe(pid);
          expect(() => process.kill(pid, 0), 'the killed browser is gone').toThrow();
        } else {
          expect(used.launches, 'only the page was replaced').toBe(launches);
          expect(used.pid).toBe(pid);
        }
        const tasks = harness.handle.stats().filter((t) => t.broadcast === broadcast);
        for (const output of harness.outputs.values()) {
          const rendition = output.rendition;
          const frames: ProbedFrame[] = [];
          for (const session of output.sessions) {
            const judged = await judge(sessionFile(session));
            expect(judged.decodeErrors, rendition).toEqual([]);
            frames.push(...judged.frames);
          }
          const indices = seconds(frames, truth.timescale).map(sourceIndex);
          expect(
            indices.every((i) => i >= 0),
            `${rendition}: only source frames`,
          ).toBe(true);
          // A run of consecutive source frames up to the kill, then one from a later keyframe to the
          // end; a kill between two GOPs (no frame in flight) loses nothing, and the run is whole.
          expect(indices[0], `${rendition}: from the start`).toBe(0);
          const resumedAt = indices.findIndex((index, i) => i > 0 && index !== indices[i - 1]! + 1);
          const resumed = resumedAt === -1 ? 0 : indices[resumedAt]!;
          expect(
            truth.keyS.some((k) => Math.abs(k - truth.ptsS[resumed]!) < 1e-6),
            `${rendition}: resumed at a key`,
          ).toBe(true);
          expect(indices.slice(Math.max(0, resumedAt))).toEqual(
            Array.from({ length: truth.ptsS.length - resumed }, (_, k) => resumed + k),
          );
          const stats = tasks.find((t) => t.rendition === rendition)!.transcoderStats!;
          expect(Number(stats['restarts']), rendition).toBeGreaterThanOrEqual(1);
        }
      } finally {
        await harness.close();
        await ownBrowser?.stop();
      }
    },
  );
});
