/**
 * Silence in place of missing audio. Where a track's media is missing on its leader's boundaries
 * (gap-fill.ts), an audio track whose codec has a silent frame (AAC-LC, Opus; mono or stereo) is
 * filled with silent media instead of being listed as GAP: its segments then hold media up to
 * their listed ends. A player that loads a segment whole retimes the segments after it by the
 * media it parsed (hls.js 1.7.4 does): a segment of audio with a GAP tail moved every later audio
 * segment early by that tail, and the player stalled in an audio hole no GAP covered. Silence
 * leaves no hole; video keeps GAP (a picture cannot be made up here).
 */

import { buildMediaSegment, describeInit, type SilentFrame, silentAudioFrame } from '../container/index.ts';
import { AUDIO_TRACK, createFragment, type Fragment, FragmentFlags } from '../fragment/fragment.ts';
import type { InitVersion } from './track-media.ts';

const cache = new WeakMap<InitVersion, SilentFrame | null>();

/** The silent frame of the track an init version describes (its only track, track_ID 1), or undefined. */
export function silenceFor(init: InitVersion): SilentFrame | undefined {
  let frame = cache.get(init);
  if (frame === undefined) {
    frame = null;
    try {
      const tracks = describeInit(init.bytes);
      const track = tracks.length === 1 ? tracks[0] : undefined;
      if (track !== undefined && track.mp4TrackId === 1 && track.timescale === init.timescale) {
        frame = silentAudioFrame(track) ?? null;
      }
    } catch {
      frame = null;
    }
    cache.set(init, frame);
  }
  return frame ?? undefined;
}

/**
 * A fragment of silence from tick `startTick` lasting `ticks` (whole frames, the last one cut
 * short so that the fragment ends exactly there).
 */
export function silentFragment(frame: SilentFrame, startTick: number, ticks: number): Fragment {
  const samples: Array<{ data: Uint8Array; duration: number; keyframe: boolean }> = [];
  for (let left = ticks; left > 0; left -= frame.ticks) {
    samples.push({ data: frame.bytes, duration: Math.min(frame.ticks, left), keyframe: true });
  }
  return createFragment({
    trackId: AUDIO_TRACK,
    groupId: 0,
    objectId: 0,
    priority: 0,
    dts: startTick,
    pts: startTick,
    duration: ticks,
    flags: FragmentFlags.AUDIO,
    payload: buildMediaSegment({ sequenceNumber: 1, baseMediaDecodeTime: startTick, samples }),
  });
}
