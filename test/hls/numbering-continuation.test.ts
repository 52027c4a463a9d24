/**
 * A source's numbering across a change of producer (a new ingest node after a failover): the new
 * producer's `SegmentMarker` goes on from the last segment the old one marked
 * (`continueFrom`), and an edge that starts the track at one of its marks lists the same segments
 * (numbers, discontinuity numbers, dates) as an edge that kept the track across the change.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { type SegmentMark, SegmentMarker } from '../../src/cluster/segment-marker.ts';
import { createFragment, FragmentFlags } from '../../src/fragment/index.ts';
import { expectSameSegments, segmentsOf } from '../support/segments.ts';
import {
  appended,
  closeBridges,
  EPOCH_MS,
  FakeTrack,
  FRAME_TICKS,
  playlist,
  startBridge,
  VIDEO_TIMESCALE,
  videoTrack,
} from './harness.ts';

afterEach(closeBridges);

const NAME = 'live/handover';
const GOP = 30;
/** Frames the first producer publishes before it dies (its last GOP unfinished). */
const FIRST = 100;
/** Frames of the second producer's stream (timestamps from 0 again, same init). */
const SECOND = 200;

/** The marks `marker` gives frames `from`..`to` - 1 (FakeTrack's keyframes: every GOP-th frame), timestamps from `base`. */
function markFrames(marker: SegmentMarker, from: number, to: number, base: number): Array<SegmentMark | undefined> {
  const marks: Array<SegmentMark | undefined> = [];
  for (let i = from; i < to; i++) {
    const dts = (i - base) * FRAME_TICKS;
    const keyframe = i % GOP === 0;
    marks.push(
      marker.mark(
        createFragment({
          trackId: '0.mp4',
          groupId: 0,
          objectId: i,
          priority: 0,
          dts,
          pts: dts,
          duration: FRAME_TICKS,
          flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
          payload: new Uint8Array(0),
          ingestTimeMs: EPOCH_MS + Math.round(dts / 90), // as FakeTrack dates its fragments
        }),
        VIDEO_TIMESCALE,
      ),
    );
  }
  return marks;
}

describe('numbering across a change of producer', () => {
  it('an edge that starts at the new producer’s first mark lists what an edge that kept the track lists', async () => {
    const targets = { targetDurationMs: 2000, partTargetMs: 200 };
    const first = new SegmentMarker(targets);
    const last = markFrames(first, 0, FIRST, 0)
      .filter((m) => m !== undefined)
      .at(-1)!;
    expect(last.msn).toBe(1); // segments start at frames 0 and 60

    const second = new SegmentMarker(targets);
    second.continueFrom(last);
    const marks = markFrames(second, FIRST, FIRST + SECOND, FIRST);
    const start = marks.findIndex((m) => m !== undefined);
    const mark = marks[start]!;
    // The first keyframe of the new stream (frame 120) starts the segment after the old producer's
    // last, on a new timeline.
    expect(FIRST + start).toBe(120);
    expect(mark).toMatchObject({ msn: 2, discontinuitySequence: 1 });

    // The edge that kept the track: the old stream, then the new one (timestamps from 0).
    const kept = startBridge();
    const video = new FakeTrack(kept.registry, NAME, 'video', {
      origin: { kind: 'ingest', mirroredFrom: 'A1' },
      numbering: { msn: 0, discontinuitySequence: 0 },
    });
    video.frames(FIRST, GOP);
    await appended(kept.bridge, NAME, 'video', FIRST);
    video.restart(videoTrack(1920, 1080), 0);
    video.frames(SECOND, GOP);
    // The edge that joined after the change: the new stream from its first mark on.
    const late = startBridge();
    const lateVideo = new FakeTrack(late.registry, NAME, 'video', {
      origin: { kind: 'ingest', mirroredFrom: 'A2' },
      numbering: mark,
    });
    lateVideo.frame = FIRST + start;
    lateVideo.restart(videoTrack(1920, 1080), start / 30);
    lateVideo.frames(SECOND - start, GOP);
    for (const [e, count] of [
      [kept, FIRST + SECOND - 20],
      [late, SECOND - start],
    ] as const) {
      await appended(e.bridge, NAME, 'video', count);
    }
    const early = (await playlist(kept.bridge, `/hls/${NAME}/playlist.m3u8`)).raw;
    const later = (await playlist(late.bridge, `/hls/${NAME}/playlist.m3u8`)).raw;
    expectSameSegments('playlist.m3u8', early, later);
    expect(segmentsOf(later).segments[0]).toMatchObject({ msn: 2, discontinuity: 1 });
  });
});
