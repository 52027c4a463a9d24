/**
 * EXT-X-PROGRAM-DATE-TIME advances with the media: a publisher that runs late or catches up (its
 * fragments' ingest times drift against their media times) moves no segment's date against the
 * media, audio lists the dates of its video at the same instants, and a window started late from a
 * cluster producer's segment mark lists the same dates as one that saw the whole timeline. hls.js
 * aligns playlists by these dates: dates that jumped against EXTINF shifted its timeline by seconds.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { SegmentMarker } from '../../src/cluster/segment-marker.ts';
import {
  appended,
  closeBridges,
  EPOCH_MS,
  FakeTrack,
  lines,
  playlist,
  startBridge,
  VIDEO_TIMESCALE,
} from './harness.ts';

afterEach(closeBridges);

const dates = (raw: string): number[] =>
  lines(raw, '#EXT-X-PROGRAM-DATE-TIME:').map((l) => Date.parse(l.slice('#EXT-X-PROGRAM-DATE-TIME:'.length)));

/** Per 2 s segment of media: how late its fragments arrive, ms (slow, then catching up). */
const LAG_MS = [40, 1500, 2900, 300];

describe('PROGRAM-DATE-TIME', () => {
  it('advances with the media while the publisher runs late and catches up, and audio lists its video dates', async () => {
    const { registry, bridge } = startBridge();
    const video = new FakeTrack(registry, 'live/pdt', 'video');
    const audio = new FakeTrack(registry, 'live/pdt', 'audio');
    for (const lag of LAG_MS) {
      video.lagMs = lag;
      audio.lagMs = lag + 70;
      video.frames(60, 60);
      audio.until(video.timeS);
    }
    video.frames(1, 60);
    await appended(bridge, 'live/pdt', 'video', 241);
    const v = dates((await playlist(bridge, '/hls/live/pdt/playlist.m3u8')).raw);
    expect(v.map((d) => d - EPOCH_MS)).toEqual([40, 2040, 4040, 6040]);
    const a = dates((await playlist(bridge, '/hls/live/pdt/audio.m3u8')).raw);
    // Audio segments start at the first audio frame at or after each video boundary (1024 / 48 kHz).
    const starts = [0, 2.005333, 4.010667, 6.016];
    expect(a).toHaveLength(4);
    // Dates are listed to the millisecond (truncated).
    for (const [i, date] of a.entries()) expect(date - EPOCH_MS).toBe(Math.floor(40 + starts[i]! * 1000));
  });

  it('a window started late from a segment mark lists the dates of the window that saw the whole timeline', async () => {
    const early = startBridge();
    const earlyVideo = new FakeTrack(early.registry, 'live/pdt', 'video');
    const marker = new SegmentMarker({ targetDurationMs: 2000, partTargetMs: 200 });
    const marks = LAG_MS.map((lag, i) =>
      marker.mark(
        {
          trackId: '0.mp4',
          groupId: i,
          objectId: 0,
          priority: 0,
          dts: i * 60 * 3000,
          pts: i * 60 * 3000,
          duration: 60 * 3000,
          flags: { keyframe: true, independent: true, discardable: false },
          payload: new Uint8Array(0),
          ingestTimeMs: EPOCH_MS + i * 2000 + lag,
        },
        VIDEO_TIMESCALE,
      ),
    );
    expect(marks.map((m) => m?.msn)).toEqual([0, 1, 2, 3]);
    expect(marks.every((m) => m?.dateAnchor?.dateMs === EPOCH_MS + 40 && m.dateAnchor.timeS === 0)).toBe(true);

    const late = startBridge();
    const lateVideo = new FakeTrack(late.registry, 'live/pdt', 'video', { numbering: marks[2]! });
    for (const [i, lag] of LAG_MS.entries()) {
      earlyVideo.lagMs = lag;
      earlyVideo.frames(60, 60);
      if (i < 2) {
        lateVideo.frame += 60;
        continue;
      }
      lateVideo.lagMs = lag;
      lateVideo.frames(60, 60);
    }
    earlyVideo.frames(1, 60);
    lateVideo.frames(1, 60);
    await appended(early.bridge, 'live/pdt', 'video', 241);
    await appended(late.bridge, 'live/pdt', 'video', 121);
    const e = (await playlist(early.bridge, '/hls/live/pdt/playlist.m3u8')).raw;
    const l = (await playlist(late.bridge, '/hls/live/pdt/playlist.m3u8')).raw;
    expect(l).toContain('#EXT-X-MEDIA-SEQUENCE:2');
    expect(lines(l, '#EXT-X-PROGRAM-DATE-TIME:')).toEqual(lines(e, '#EXT-X-PROGRAM-DATE-TIME:').slice(2));
  });
});
