/**
 * The test pattern stays live when the machine stalls it: after a 1.5 s stall of its clock it skips
 * slots towards the current one (as a camera drops frames; no frame longer than 200 ms, the default
 * part target) instead of producing the missed frames late, so its media time keeps up with the
 * wall clock; a frame lasts until the next one (no hole in the track), the audio stays continuous,
 * and each GOP starts at its first frame. Real
 * encoders (the napi WebCodecs addon), a clock that jumps.
 */

import { describe, expect, it } from 'vitest';
import type { ParserEvent } from '../../src/container/index.ts';
import { AUDIO_TRACK, type Fragment, VIDEO_TRACK } from '../../src/fragment/fragment.ts';
import { TestPatternSource } from '../../src/testpattern/index.ts';
import { napiProvider } from '../../src/webcodecs/index.ts';
import { waitFor } from '../support/wait.ts';

const GOP = 30;
const STALL_MS = 1500;

describe('test pattern pacing', () => {
  it('skips the slots a stall cost and keeps its media time within a part of the wall clock', async () => {
    const { codecs } = await napiProvider();
    let jumpMs = 0;
    const now = () => Date.now() + jumpMs;
    const video: Fragment[] = [];
    const audio: Fragment[] = [];
    const source = new TestPatternSource({
      codecs,
      width: 320,
      height: 180,
      gopFrames: GOP,
      now,
      publish: (events: ParserEvent[]) => {
        for (const e of events) {
          if (e.type !== 'fragment') continue;
          if (e.fragment.trackId === VIDEO_TRACK) video.push(e.fragment);
          if (e.fragment.trackId === AUDIO_TRACK) audio.push(e.fragment);
        }
      },
    });
    await source.start();
    try {
      await waitFor(() => video.length >= 10, '10 frames', { timeoutMs: 30_000, intervalMs: 10 });
      jumpMs = STALL_MS;
      const after = video.length;
      await waitFor(() => video.length >= after + 20, '20 frames after the stall', {
        timeoutMs: 30_000,
        intervalMs: 10,
      });
    } finally {
      await source.stop();
    }
    const seconds = (f: Fragment, timescale: number) => (f.dts + f.duration) / timescale;
    // One track without holes: each frame lasts until the next.
    for (let i = 1; i < video.length; i++) expect(video[i]!.dts).toBe(video[i - 1]!.dts + video[i - 1]!.duration);
    const frameTicks = 3000;
    // Skipped slots are spread over frames of at most 200 ms (the default part target) each.
    expect(Math.max(...video.map((f) => f.duration))).toBe(6 * frameTicks);
    // Media time kept up with the (jumped) clock: not the 1.5 s behind that producing every slot leaves.
    const [first, last] = [video[0]!, video.at(-1)!];
    const wallS = (last.ingestTimeMs - first.ingestTimeMs) / 1000;
    expect(wallS - (last.dts - first.dts) / 90_000).toBeLessThan(0.6);
    // GOPs start at the first frame of each run of GOP slots.
    for (const [i, f] of video.entries()) {
      const slot = Math.round(f.dts / frameTicks);
      const previous = i === 0 ? undefined : Math.round(video[i - 1]!.dts / frameTicks);
      const first = previous === undefined || Math.floor(slot / GOP) !== Math.floor(previous / GOP);
      expect(f.flags.keyframe, `frame at slot ${slot}`).toBe(first);
    }
    // Audio continuous, and as long as the video.
    for (let i = 1; i < audio.length; i++) expect(audio[i]!.dts).toBe(audio[i - 1]!.dts + audio[i - 1]!.duration);
    expect(Math.abs(seconds(audio.at(-1)!, 48_000) - seconds(last, 90_000))).toBeLessThan(0.2);
  }, 60_000);
});

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
