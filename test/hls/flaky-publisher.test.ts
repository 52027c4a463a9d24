import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import type { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import type { HlsBridge } from '../../src/hls/index.ts';
import { waitFor } from '../support/wait.ts';
import {
  AUDIO_DESCRIPTION,
  closeBridges,
  FakeTrack,
  playlist,
  startBridge,
  timelineOf,
  videoTrack,
} from './harness.ts';

afterEach(closeBridges);

/** The 480p rung of `source`: its frames on the source's clock. */
function rungOf(registry: FragmentBroadcasterRegistry, source: string): FakeTrack {
  return new FakeTrack(registry, `${source}/480p`, 'video', {
    origin: { kind: 'rendition', source, rendition: '480p', transcoder: 'test' },
    init: videoTrack(854, 480),
    bytes: 60,
  });
}

/** Waits until the bridge has taken (kept, dropped or held) `video` and `audio` fragments of `name`. */
async function taken(bridge: HlsBridge, name: string, video: number, audio: number): Promise<void> {
  await waitFor(() => {
    const tracks = bridge.broadcasts().find((b) => b.name === name)?.tracks ?? [];
    const seen = (kind: string) =>
      tracks.filter((t) => t.kind === kind).reduce((n, t) => n + t.fragments + t.droppedFragments + t.heldFragments, 0);
    return seen('video') >= video && seen('audio') >= audio;
  }, 'the bridge to take every fragment');
}

/**
 * A bridge (2 s target, 200 ms parts) and the video and audio of broadcast `name`: `play` sends
 * video frames (a keyframe every `gop`) with audio up to each frame's time, and waits until the
 * bridge has taken all of it (`settle`).
 */
function publisher(name: string, gop: number) {
  const { registry, bridge } = startBridge({ targetDurationMs: 2000, partTargetMs: 200 });
  const video = new FakeTrack(registry, name, 'video');
  const audio = new FakeTrack(registry, name, 'audio');
  let videoSent = 0;
  const settle = () => taken(bridge, name, videoSent, audio.frame);
  const play = async (frames: number) => {
    for (let i = 0; i < frames; i++) {
      video.emit(video.frame % gop === 0);
      videoSent += 1;
      audio.until(video.timeS);
    }
    await settle();
  };
  return { bridge, video, audio, play, settle };
}

/**
 * The source's video and audio playlists of `name`: each at the 2 s target duration with no segment
 * over `maxSegmentS`, and the audio's media sequence numbers on the video's timelines. Returns the
 * video's timeline and the audio track's dropped fragments.
 */
async function expectAudioOnVideoTimelines(
  bridge: HlsBridge,
  name: string,
  maxSegmentS: number,
): Promise<{ video: { raw: string; timeline: string[] }; audioDropped: number }> {
  const listed: Array<{ raw: string; timeline: string[] }> = [];
  for (const file of ['playlist.m3u8', 'audio.m3u8']) {
    const { raw, manifest } = await playlist(bridge, `/hls/${name}/${file}`);
    expect(manifest.targetDuration, raw).toBe(2);
    for (const seg of manifest.segments) expect(seg.duration, raw).toBeLessThanOrEqual(maxSegmentS);
    listed.push({ raw, timeline: timelineOf(manifest) });
  }
  expect(listed[1]!.timeline, listed[1]!.raw).toEqual(listed[0]!.timeline);
  const tracks = bridge.broadcasts().find((b) => b.name === name)!.tracks;
  return { video: listed[0]!, audioDropped: tracks.find((t) => t.kind === 'audio')!.droppedFragments };
}

/**
 * A publisher that drops and comes back, as the soak's flaky one does: after a network blip it
 * goes on from the next keyframe with its clock running on (media skipped), after an encoder
 * restart its clock starts again at 0 with the same init. Every later fragment of video and audio
 * must be kept and the segments must stay on the target duration.
 */
describe('a publisher that drops and reconnects', () => {
  it('keeps its audio after a blip then a clock restart: nothing dropped, no long segment', async () => {
    const { registry, bridge } = startBridge({ targetDurationMs: 2000, partTargetMs: 200 });
    const name = 'live/flaky';
    const video = new FakeTrack(registry, name, 'video');
    const audio = new FakeTrack(registry, name, 'audio');
    // A rung: its encoder restarts with the publisher (new init), its frames on the source's clock.
    const rungName = `${name}/480p`;
    const rung = rungOf(registry, name);
    // An audio rendition: after the blip its frames start on their own grid, a little before the video's.
    const opus = new FakeTrack(registry, `${name}/audio-opus-64k`, 'audio', {
      origin: { kind: 'rendition', source: name, rendition: 'audio-opus-64k', transcoder: 'test' },
    });
    let videoSent = 0;
    let audioSent = 0;
    const play = async (frames: number) => {
      for (let i = 0; i < frames; i++) {
        video.emit(video.frame % 30 === 0);
        rung.emit(rung.frame % 30 === 0);
        videoSent += 1;
        const before = audio.frame;
        audio.until(video.timeS);
        opus.until(video.timeS);
        audioSent += audio.frame - before;
      }
      // Every fragment sent is either in the window or counted as dropped.
      await waitFor(() => {
        const tracks = bridge.broadcasts().find((b) => b.name === name)?.tracks ?? [];
        const seen = (kind: string) => {
          const t = tracks.find((x) => x.kind === kind);
          return t === undefined ? 0 : t.fragments + t.droppedFragments;
        };
        const rungTrack = bridge.broadcasts().find((b) => b.name === rungName)?.tracks[0];
        const rungSeen = rungTrack === undefined ? 0 : rungTrack.fragments + rungTrack.droppedFragments;
        return seen('video') >= videoSent && seen('audio') >= audioSent && rungSeen >= videoSent;
      }, 'the bridge to take every fragment sent');
    };
    await play(30 * 12);
    // A blip: 1.5 s of media never arrives; both tracks resume on the running clock (a keyframe).
    const resumeS = video.timeS + 1.5;
    video.restart(videoTrack(1920, 1080), resumeS);
    rung.restart(videoTrack(854, 480), resumeS);
    audio.restart(AUDIO_DESCRIPTION, resumeS);
    opus.restart(AUDIO_DESCRIPTION, resumeS - 0.0012);
    await play(30 * 8);
    // An encoder restart: the clock starts again at 0, same init bytes.
    video.restart(videoTrack(1920, 1080), 0);
    rung.restart(videoTrack(854, 480, 'avc1.4d401f'), 0);
    audio.restart(AUDIO_DESCRIPTION, 0);
    opus.restart(AUDIO_DESCRIPTION, 0);
    await play(30 * 20);

    const summary = bridge.broadcasts().find((b) => b.name === name)!;
    const audioTrack = summary.tracks.find((t) => t.kind === 'audio')!;
    const videoTrackSummary = summary.tracks.find((t) => t.kind === 'video')!;
    expect(videoTrackSummary.droppedFragments).toBe(0);
    expect(audioTrack.droppedFragments).toBe(0);
    const rungSummary = bridge.broadcasts().find((b) => b.name === rungName)!.tracks[0]!;
    expect(rungSummary.droppedFragments).toBe(0);
    const listed = new Map<string, number>();
    const timelines = new Map<string, string[]>();
    for (const file of ['playlist.m3u8', 'audio.m3u8', '480p/playlist.m3u8', 'audio-opus-64k/audio.m3u8']) {
      const { raw, manifest } = await playlist(bridge, `/hls/${name}/${file}`);
      expect(manifest.targetDuration, raw).toBe(2);
      for (const seg of manifest.segments) expect(seg.duration, raw).toBeLessThanOrEqual(2.1);
      listed.set(file, (manifest.mediaSequence ?? 0) + manifest.segments.length);
      timelines.set(file, timelineOf(manifest));
    }
    // The rung keeps its source's numbering.
    expect(listed.get('480p/playlist.m3u8')).toBe(listed.get('playlist.m3u8'));
    // Two new timelines in the video (the blip's jump, the clock restart), and the same segments of
    // the audios and of the rung (which listed the blip as GAP) on the same timelines: players map
    // each variant's timestamps by its Discontinuity Sequence Number.
    const sourceTimelines = timelines.get('playlist.m3u8')!;
    expect(new Set(sourceTimelines.map((t) => t.split(':')[1])).size).toBe(3);
    expect(timelines.get('audio.m3u8')).toEqual(sourceTimelines);
    expect(timelines.get('480p/playlist.m3u8')).toEqual(sourceTimelines);
    expect(timelines.get('audio-opus-64k/audio.m3u8')).toEqual(sourceTimelines);
  });

  it("a rung whose source stalls is cut at twice the source's segment length, not at ever longer caps", async () => {
    const warnings: string[] = [];
    const { registry, bridge } = startBridge({
      targetDurationMs: 2000,
      partTargetMs: 200,
      logger: { ...silentLogger, warn: (message) => warnings.push(message) },
    });
    const name = 'live/stall';
    const source = new FakeTrack(registry, name, 'video');
    const rung = rungOf(registry, name);
    // Three 2 s segments of both, then the source stops (a stalled publisher) while the rung's
    // encoder still drains 40 s of frames.
    for (let i = 0; i < 30 * 7; i++) {
      source.emit(source.frame % 30 === 0);
      rung.emit(rung.frame % 30 === 0);
    }
    const rungTrack = () => bridge.broadcasts().find((b) => b.name === `${name}/480p`)?.tracks[0];
    for (let s = 0; s < 40; s++) {
      rung.frames(30, 30);
      await waitFor(() => {
        const t = rungTrack();
        return t !== undefined && t.fragments + t.droppedFragments >= rung.frame;
      }, 'the rung to be taken');
    }
    expect(rungTrack()?.droppedFragments).toBe(0);
    const { raw, manifest } = await playlist(bridge, `/hls/${name}/480p/playlist.m3u8`);
    expect(manifest.segments.length, raw).toBeGreaterThan(8);
    for (const seg of manifest.segments) expect(seg.duration, raw).toBeLessThanOrEqual(4.01);
    expect(manifest.targetDuration, raw).toBeLessThanOrEqual(4);
    // Each such cut is logged: the rung's numbers may no longer match its source's.
    expect(warnings.filter((w) => w.includes("not on its leader's boundary")).length).toBeGreaterThanOrEqual(8);
  });

  it('audio that starts its new timeline before its video does keeps on its own dates and the target duration', async () => {
    const name = 'live/reorder';
    const { bridge, video, audio, play, settle } = publisher(name, 60);
    // Two timelines (the publisher restarts at 0 after 20 s), then, on the second, the connection
    // breaks right after a keyframe (the video's new segment holds one frame) and the publisher
    // restarts at 0 again: this time its audio reaches the server before its video.
    // Ingest times run on across restarts (the wall clock), 1 s of reconnect gap each time.
    const restartClock = () => {
      const lagMs = video.lagMs + video.timeS * 1000 + 1000;
      video.lagMs = lagMs;
      audio.lagMs = lagMs;
      // A restarted encoder starts with a keyframe.
      video.frame = Math.ceil(video.frame / 60) * 60;
    };
    await play(30 * 20);
    restartClock();
    video.restart(videoTrack(1920, 1080), 0);
    audio.restart(AUDIO_DESCRIPTION, 0);
    await play(30 * 20 + 1);
    restartClock();
    audio.restart(AUDIO_DESCRIPTION, 0);
    audio.until(0.5);
    await settle();
    video.restart(videoTrack(1920, 1080), 0);
    await play(30 * 12);

    const timelines: string[][] = [];
    for (const file of ['playlist.m3u8', 'audio.m3u8']) {
      const { raw, manifest } = await playlist(bridge, `/hls/${name}/${file}`);
      timelines.push(timelineOf(manifest));
      expect(manifest.targetDuration, raw).toBe(2);
      for (const seg of manifest.segments) expect(seg.duration, raw).toBeLessThanOrEqual(2.1);
      // PROGRAM-DATE-TIME never goes back: a player places segments by it.
      const dates = manifest.segments.map((seg) => Date.parse(seg.dateTimeString ?? ''));
      for (let i = 1; i < dates.length; i++)
        expect(dates[i]!, `${file} segment ${i}: ${raw}`).toBeGreaterThanOrEqual(dates[i - 1]!);
    }
    // The same media sequence numbers on the same timelines.
    expect(timelines[1]).toEqual(timelines[0]);
  });

  it('audio of a session that drops before its video came (clock at 0), then comes back first with its clock running on: dropped, same timelines and numbers', async () => {
    const name = 'live/orphan';
    const { bridge, video, audio, play, settle } = publisher(name, 60);
    await play(30 * 21);
    // A short session: the publisher restarted with its clock at 0 and dropped 3 s later (so the
    // next session's running clock lies past all of it).
    video.frame = Math.ceil(video.frame / 60) * 60;
    video.restart(videoTrack(1920, 1080), 0);
    audio.restart(AUDIO_DESCRIPTION, 0);
    await play(30 * 3);
    // The publisher restarts with its clock at 0; only 0.3 s of audio arrives before it drops again.
    audio.restart(AUDIO_DESCRIPTION, 0);
    audio.until(0.3);
    await settle();
    // It comes back with its clock running on: its audio first again, then its video at a keyframe.
    audio.restart(AUDIO_DESCRIPTION, 5.3);
    audio.until(5.8);
    await settle();
    video.frame = Math.ceil(video.frame / 60) * 60;
    video.restart(videoTrack(1920, 1080), 5.3);
    await play(30 * 12);

    const { video: listed, audioDropped } = await expectAudioOnVideoTimelines(bridge, name, 2.1);
    expect(new Set(listed.timeline.map((t) => t.split(':')[1])).size, listed.raw).toBe(3);
    // The 0.3 s that no video ever matched are counted as dropped, nothing else.
    expect(audioDropped).toBe(Math.ceil(0.3 / (1024 / 48_000)));
  });

  it('audio of a new session that starts before its video’s first keyframe: that audio is dropped, the segments stay on the video’s boundaries', async () => {
    const name = 'live/early-audio';
    const { bridge, video, audio, play, settle } = publisher(name, 60);
    await play(30 * 21);
    // The publisher restarts with its clock at 0: its audio from 0, its video from a keyframe at 1 s.
    audio.restart(AUDIO_DESCRIPTION, 0);
    audio.until(0.9);
    await settle();
    video.frame = Math.ceil(video.frame / 60) * 60;
    video.restart(videoTrack(1920, 1080), 1);
    await play(30 * 12);

    // Audio may start up to a part target before its video's segment (frames on their own grid).
    const { audioDropped } = await expectAudioOnVideoTimelines(bridge, name, 2.2 + 0.01);
    expect(audioDropped).toBeGreaterThanOrEqual(Math.floor(0.8 / (1024 / 48_000)) - 1);
  });

  it('audio that comes back from a blip before its video does goes on to the same timelines and numbers', async () => {
    const name = 'live/blip';
    const { bridge, video, audio, play, settle } = publisher(name, 30);
    await play(30 * 9 + 10);
    // A blip: 1.5 s never arrives, the clock runs on, and 0.5 s of the new audio comes first.
    const resumeS = Math.ceil(video.timeS + 1.5);
    audio.restart(AUDIO_DESCRIPTION, resumeS);
    audio.until(resumeS + 0.5);
    await settle();
    // The video goes on from a keyframe.
    video.frame = Math.ceil(video.frame / 30) * 30;
    video.restart(videoTrack(1920, 1080), resumeS);
    await play(30 * 12);

    const { video: listed } = await expectAudioOnVideoTimelines(bridge, name, Number.POSITIVE_INFINITY);
    expect(new Set(listed.timeline.map((t) => t.split(':')[1])).size, listed.raw).toBe(2);
  });

  it('a rung far behind its source (more than a few segments) is still cut on the source boundaries', async () => {
    const { registry, bridge } = startBridge({ targetDurationMs: 2000, partTargetMs: 200 });
    const name = 'live/late';
    const source = new FakeTrack(registry, name, 'video');
    const rung = rungOf(registry, name);
    const rungTrack = () => bridge.broadcasts().find((b) => b.name === `${name}/480p`)?.tracks[0];
    // The rung keeps up for 4 s, then its encoder falls 20 s behind (ten source segments) and
    // produces the next 8 s late, every frame of it.
    for (let i = 0; i < 30 * 4; i++) {
      source.emit(source.frame % 30 === 0);
      rung.emit(rung.frame % 30 === 0);
    }
    source.frames(30 * 20, 30);
    await waitFor(
      () => (bridge.broadcasts().find((b) => b.name === name)?.tracks[0]?.fragments ?? 0) >= 30 * 24,
      'the source',
    );
    rung.frames(30 * 8, 30);
    await waitFor(() => (rungTrack()?.fragments ?? 0) >= 30 * 12, 'the rung');
    const { raw, manifest } = await playlist(bridge, `/hls/${name}/480p/playlist.m3u8`);
    expect(manifest.segments.length, raw).toBeGreaterThanOrEqual(5);
    for (const seg of manifest.segments) expect(seg.duration, raw).toBeCloseTo(2, 5);
    expect(manifest.targetDuration, raw).toBe(2);
  });
});
