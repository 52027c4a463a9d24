/**
 * The ladder's keyframe tap (`onKeyframe`): the shared decoder hands clones of decoded source
 * keyframes, never more often than `keyframeTapMs` per source, each one the callee's to close.
 */

import { describe, expect, it } from 'vitest';
import type { VideoFrameLike } from '../../src/transcode/codecs.ts';
import { PRESET_240P } from '../../src/transcode/index.ts';
import type { VideoFramePort } from '../../src/webcodecs/index.ts';
import { fixtureInfo, readFixture } from '../../testkit/fixtures.ts';
import { createHarness, publish } from '../support/ladder.ts';

describe('ladder keyframe tap', () => {
  it('hands a clone of source keyframes, at most once per keyframeTapMs per source', async () => {
    const taps: Array<{ broadcast: string; atMs: number; timestampUs: number; width: number }> = [];
    const harness = await createHarness({
      renditions: [PRESET_240P],
      ladder: {
        keyframeTapMs: 1000,
        onKeyframe: (broadcast: string, frame: VideoFrameLike) => {
          const port = frame as VideoFramePort;
          taps.push({ broadcast, atMs: Date.now(), timestampUs: frame.timestamp, width: port.displayWidth });
          frame.close();
        },
      },
    });
    try {
      // 3 s of 30 fps with a keyframe every 30 frames, published at 3x: a keyframe every ~333 ms.
      await publish(harness.ingest, 'live/tap', [{ bytes: readFixture('portrait-720x1280.mp4'), durationS: 3 }], {
        speed: 3,
      });
      await harness.settled('live/tap');
    } finally {
      await harness.close();
    }
    expect(taps.length).toBeGreaterThanOrEqual(1);
    // Three keyframes arrive within about a second: the tap passes at most two of them.
    expect(taps.length).toBeLessThanOrEqual(2);
    // Every tap is a source keyframe: its timestamp is one of the fixture's keyframe times.
    const { keyframePts, timescale } = fixtureInfo('portrait-720x1280.mp4').video;
    const keyUs = keyframePts.map((pts) => Math.round((pts * 1_000_000) / timescale));
    for (const tap of taps) {
      expect(tap.broadcast).toBe('live/tap');
      expect(tap.width).toBe(720);
      expect(keyUs).toContain(tap.timestampUs);
    }
    for (let i = 1; i < taps.length; i++) expect(taps[i]!.atMs - taps[i - 1]!.atMs).toBeGreaterThanOrEqual(1000);
  });
});
