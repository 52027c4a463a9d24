/**
 * Followers mirrored from other nodes (a cluster edge gets each track on its own subject, from the
 * node that makes it, so audio can arrive ahead of its video and a rung ahead of its source) wait
 * for their leader: two edges that get the same media in different orders list the same segments,
 * audio cut at the first audio frame at or after each video boundary, a rung at its source's.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { HlsBridge } from '../../src/hls/index.ts';
import { waitFor } from '../support/wait.ts';
import { appended, describeFake, FakeTrack, type ParsedManifest, playlist, videoTrack } from './harness.ts';

const bridges: HlsBridge[] = [];
afterEach(() => {
  for (const b of bridges.splice(0)) b.close();
});

const NAME = 'live/mirror';

const ORIGIN = { kind: 'ingest', mirroredFrom: 'A' } as const;

/** An edge's bridge with a mirrored source: its video numbered by the producer, its audio by its video. */
function edge() {
  const { registry, bridge } = bridgeWith();
  const video = new FakeTrack(registry, NAME, 'video', {
    origin: ORIGIN,
    numbering: { msn: 0, discontinuitySequence: 0 },
  });
  const audio = new FakeTrack(registry, NAME, 'audio', { origin: ORIGIN, numbering: 'leader' });
  return { bridge, video, audio };
}

/** A started bridge on its own registry, with an optional wall clock. */
function bridgeWith(now?: () => number) {
  const registry = new FragmentBroadcasterRegistry();
  const bridge = new HlsBridge({ registry, describeInit: describeFake, ...(now === undefined ? {} : { now }) });
  bridge.start();
  bridges.push(bridge);
  return { registry, bridge };
}

/** The summary of the bridge's `kind` track of broadcast `name` (NAME unless told), or undefined. */
function trackOf(bridge: HlsBridge, kind: 'video' | 'audio', name = NAME) {
  return bridge
    .broadcasts()
    .find((x) => x.name === name)
    ?.tracks.find((x) => x.kind === kind);
}

/** Waits until the bridge's `kind` track of `name` (NAME unless told) has taken in `count` fragments (listed, dropped or held). */
async function received(bridge: HlsBridge, kind: 'video' | 'audio', count: number, name = NAME): Promise<void> {
  await waitFor(() => {
    const t = trackOf(bridge, kind, name);
    return t !== undefined && t.fragments + t.droppedFragments + (t.heldFragments ?? 0) >= count;
  }, `${name} ${kind} to take in ${count} fragments`);
}

describe('mirrored followers', () => {
  it('an edge that gets the audio half a second ahead of the video lists the same audio segments as one that gets the video first', async () => {
    const first = edge();
    const ahead = edge();
    // 10 s in steps of 0.5 s (keyframes every 2 s), each batch taken in before the next is sent.
    for (let step = 1; step <= 20; step++) {
      const t = step / 2;
      first.video.frames(15, 60);
      await received(first.bridge, 'video', first.video.frame);
      first.audio.until(t);
      await received(first.bridge, 'audio', first.audio.frame);
      ahead.audio.until(Math.min(t + 0.5, 10));
      await received(ahead.bridge, 'audio', ahead.audio.frame);
      ahead.video.frames(15, 60);
      await received(ahead.bridge, 'video', ahead.video.frame);
    }
    for (const e of [first, ahead]) {
      // The video goes on a little: the last audio frame ends just after 10 s.
      e.video.frames(15, 60);
      await appended(e.bridge, NAME, 'video', e.video.frame);
      await appended(e.bridge, NAME, 'audio', e.audio.frame);
    }
    const a = (await playlist(first.bridge, `/hls/${NAME}/audio.m3u8`)).manifest;
    const b = (await playlist(ahead.bridge, `/hls/${NAME}/audio.m3u8`)).manifest;
    const summary = (m: ParsedManifest) => m.segments.map((s) => [s.uri, s.duration.toFixed(5), s.dateTimeString]);
    expect(a.segments.length).toBeGreaterThanOrEqual(4);
    expect(summary(b)).toEqual(summary(a));
    // Cut at the first audio frame at or after 2.0 s (frame 94 of 1024/48000 s), as on a single node.
    expect(a.segments[0]!.duration).toBeCloseTo((94 * 1024) / 48000, 5);
  });

  it('audio whose video stops is held for at most two target durations, then listed', async () => {
    const e = edge();
    e.video.frames(60, 60); // 2 s of video, then none
    e.audio.until(8);
    // Held past the video's end (2 s) up to the cap (4 s of audio held): listed up to about 4 s.
    await appended(e.bridge, NAME, 'audio', Math.floor((3.9 * 48000) / 1024));
    const listed = e.bridge
      .broadcasts()
      .find((x) => x.name === NAME)
      ?.tracks.find((x) => x.kind === 'audio');
    expect(listed!.fragments).toBeLessThan(e.audio.frame);
  });

  it('audio replayed ahead of a video that joins mid-stream starts at the video’s first segment, with its number', async () => {
    // A late edge: the audio backlog (0-7.5 s) arrives before the video track exists; the video
    // then starts at its producer's segment 2 (4 s), as a replay from the newest keyframe does.
    const { registry, bridge } = bridgeWith();
    const audio = new FakeTrack(registry, NAME, 'audio', { origin: ORIGIN, numbering: 'leader' });
    audio.until(7.5);
    await received(bridge, 'audio', audio.frame);
    const video = new FakeTrack(registry, NAME, 'video', {
      origin: ORIGIN,
      numbering: { msn: 2, discontinuitySequence: 0 },
    });
    video.frame = 120; // 4 s at 30 fps, a keyframe (GOP 60)
    for (let step = 0; step < 8; step++) {
      video.frames(30, 60);
      audio.until(video.timeS + 0.3);
    }
    await appended(bridge, NAME, 'video', 8 * 30);
    const a = (await playlist(bridge, `/hls/${NAME}/audio.m3u8`)).manifest;
    const v = (await playlist(bridge, `/hls/${NAME}/playlist.m3u8`)).manifest;
    expect(a.mediaSequence).toBe(2);
    expect(v.mediaSequence).toBe(2);
    // Its first segment starts at the first audio frame at or after 4 s (frame 188), a whole segment
    // (up to the first frame at or after 6 s, frame 282), dated like the video's.
    expect(a.segments[0]!.duration).toBeCloseTo(((282 - 188) * 1024) / 48000, 5);
    const ms = (date: string | undefined) => Date.parse(date ?? '');
    expect(Math.abs(ms(a.segments[0]!.dateTimeString) - ms(v.segments[0]!.dateTimeString))).toBeLessThan(30);
  });

  it('mirrored audio whose video never comes starts on its own once the wait is over, by the wall clock', async () => {
    let nowMs = 1_700_000_000_000;
    const { registry, bridge } = bridgeWith(() => nowMs);
    const audio = new FakeTrack(registry, NAME, 'audio', { origin: ORIGIN, numbering: 'leader' });
    // 20 s of audio arriving at once is held (the newest 6 s), not listed: the wait is 3 target durations of wall clock.
    audio.until(20);
    await received(bridge, 'audio', audio.frame);
    const track = () => trackOf(bridge, 'audio')!;
    expect(track().fragments).toBe(0);
    expect((track().heldFragments ?? 0) * (1024 / 48000)).toBeLessThanOrEqual(6 + 0.03);
    expect(track().heldFragments ?? 0).toBeGreaterThan(5.9 * (48000 / 1024));
    nowMs += 6_001;
    audio.until(22);
    // Listed from the held media on: nothing held any more, numbered from 0 without a leader.
    await waitFor(() => track().fragments > 7.9 * (48000 / 1024), 'the held audio and the new to be listed');
    expect(track().heldFragments ?? 0).toBe(0);
    expect((await playlist(bridge, `/hls/${NAME}/audio.m3u8`)).manifest.mediaSequence).toBe(0);
  });

  it('a mirrored rung whose frames reach the edge ahead of its source’s cuts the segments its source cuts', async () => {
    // A cluster edge gets the rung from the transcode node and the source from the ingest node:
    // the rung's keyframe at a source boundary can arrive before the source's.
    const { registry, bridge } = bridgeWith();
    const video = new FakeTrack(registry, NAME, 'video', {
      origin: ORIGIN,
      numbering: { msn: 0, discontinuitySequence: 0 },
    });
    const rung = new FakeTrack(registry, `${NAME}/480p`, 'video', {
      origin: { kind: 'rendition', source: NAME, rendition: '480p', transcoder: 'B', mirroredFrom: 'B' },
      init: videoTrack(854, 480),
      numbering: 'leader',
    });
    // Keyframes every second; the source cuts at 2 s, 4 s, ... Each second the rung's frames come first.
    video.frames(30, 30);
    await received(bridge, 'video', video.frame);
    rung.frames(30, 30);
    await received(bridge, 'video', rung.frame, `${NAME}/480p`);
    for (let s = 0; s < 8; s++) {
      rung.frames(30, 30);
      await received(bridge, 'video', rung.frame, `${NAME}/480p`);
      video.frames(30, 30);
      await received(bridge, 'video', video.frame);
    }
    rung.frames(30, 30);
    video.frames(30, 30);
    await appended(bridge, `${NAME}/480p`, 'video', 9 * 30);
    const durations = async (path: string) =>
      (await playlist(bridge, path)).manifest.segments.map((x) => x.duration.toFixed(3));
    const source = await durations(`/hls/${NAME}/playlist.m3u8`);
    expect(source.slice(0, 4)).toEqual(['2.000', '2.000', '2.000', '2.000']);
    expect((await durations(`/hls/${NAME}/480p/playlist.m3u8`)).slice(0, 4)).toEqual(source.slice(0, 4));
  });
});
