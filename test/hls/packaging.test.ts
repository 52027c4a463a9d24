import { afterEach, describe, expect, it } from 'vitest';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { HlsBridge, type HlsBridgeOptions } from '../../src/hls/index.ts';
import { waitFor } from '../support/wait.ts';
import {
  AUDIO_DESCRIPTION,
  appended,
  describeFake,
  EPOCH_MS,
  ended,
  FakeTrack,
  fakeInit,
  get,
  initUri,
  lines,
  playlist,
  text,
  videoTrack,
} from './harness.ts';

const bridges: HlsBridge[] = [];

function setup(options: Partial<HlsBridgeOptions> = {}): { registry: FragmentBroadcasterRegistry; bridge: HlsBridge } {
  const registry = new FragmentBroadcasterRegistry();
  const bridge = new HlsBridge({ registry, describeInit: describeFake, ...options });
  bridge.start();
  bridges.push(bridge);
  return { registry, bridge };
}

afterEach(() => {
  for (const b of bridges.splice(0)) b.close();
});

/** Frame index stored in the first 4 bytes of each synthetic 200-byte video payload. */
function frameIndices(bytes: Uint8Array, size = 200): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let offset = 0; offset < bytes.byteLength; offset += size) out.push(view.getUint32(offset));
  return out;
}

describe('HLS packaging', () => {
  it('cuts segments at the first keyframe at or after the target and groups frames into parts of at most the part target', async () => {
    const { registry, bridge } = setup();
    const video = new FakeTrack(registry, 'live/demo', 'video');
    video.frames(181, 30); // keyframes every second; frame 180 opens segment 3
    await appended(bridge, 'live/demo', 'video', 181);

    const { raw, manifest } = await playlist(bridge, '/hls/live/demo/playlist.m3u8');
    expect(
      raw.startsWith(
        [
          '#EXTM3U',
          '#EXT-X-VERSION:9',
          '#EXT-X-TARGETDURATION:2',
          '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,HOLD-BACK=6.000,CAN-SKIP-UNTIL=12.000',
          '#EXT-X-PART-INF:PART-TARGET=0.200',
          '#EXT-X-MEDIA-SEQUENCE:0',
          `#EXT-X-MAP:URI="${initUri()}"`,
          `#EXT-X-PROGRAM-DATE-TIME:${new Date(EPOCH_MS).toISOString()}`,
          '#EXT-X-PART:DURATION=0.200,URI="part-0-0.m4s",INDEPENDENT=YES',
          '#EXT-X-PART:DURATION=0.200,URI="part-0-1.m4s"',
        ].join('\n'),
      ),
      raw,
    ).toBe(true);
    expect(raw).toContain('#EXTINF:2.000,\nseg-0.m4s\n');
    expect(raw).not.toContain('#EXT-X-ENDLIST');
    expect(raw).not.toContain('#EXT-X-DISCONTINUITY');
    expect(raw).toContain('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-3-0.m4s"');
    expect(lines(raw, '#EXT-X-PROGRAM-DATE-TIME:')).toEqual(
      [0, 2000, 4000].map((ms) => `#EXT-X-PROGRAM-DATE-TIME:${new Date(EPOCH_MS + ms).toISOString()}`),
    );

    expect(manifest.targetDuration).toBe(2);
    expect(manifest.mediaSequence).toBe(0);
    expect(manifest.segments.map((s) => [s.uri, s.duration])).toEqual([
      ['seg-0.m4s', 2],
      ['seg-1.m4s', 2],
      ['seg-2.m4s', 2],
    ]);
    for (const [msn, seg] of manifest.segments.entries()) {
      expect(seg.map?.uri).toBe(initUri());
      const parts = seg.parts ?? [];
      expect(parts).toHaveLength(10);
      for (const [i, part] of parts.entries()) {
        expect(part.uri).toBe(`part-${msn}-${i}.m4s`);
        expect(part.duration).toBeLessThanOrEqual(0.2);
        // Parts 0 and 5 start at frames 0 and 30 of the segment: the keyframes.
        expect(part.independent === true, `part ${msn}.${i}`).toBe(i === 0 || i === 5);
      }
    }

    // Part bytes are the fragments' payloads in order; segment bytes are the parts in order.
    const seg1 = await get(bridge, '/hls/live/demo/seg-1.m4s');
    expect(seg1.status).toBe(200);
    expect(frameIndices(seg1.body as Uint8Array)).toEqual(Array.from({ length: 60 }, (_, i) => 60 + i));
    const partBodies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const part = await get(bridge, `/hls/live/demo/part-1-${i}.m4s`);
      expect(part.status).toBe(200);
      partBodies.push(...frameIndices(part.body as Uint8Array));
    }
    expect(partBodies).toEqual(frameIndices(seg1.body as Uint8Array));
  });

  it('lets a segment run to the next keyframe when the GOP does not divide the target; INDEPENDENT marks only keyframe-led parts', async () => {
    const { registry, bridge } = setup();
    const video = new FakeTrack(registry, 'live/gop45', 'video');
    video.frames(181, 45); // keyframes at 0, 1.5, 3.0, 4.5, 6.0 s
    await appended(bridge, 'live/gop45', 'video', 181);
    const { manifest } = await playlist(bridge, '/hls/live/gop45/playlist.m3u8');
    expect(manifest.segments.map((s) => s.duration)).toEqual([3, 3]);
    const parts = manifest.segments[0]?.parts ?? [];
    expect(parts).toHaveLength(15);
    // Frame 45 (a keyframe) falls inside part 7 (frames 42-47): that part does not start with it.
    expect(parts.map((p) => p.independent === true)).toEqual(parts.map((_, i) => i === 0));
  });

  it('cuts audio at the first audio frame at or after each video boundary, with the same media sequence numbers', async () => {
    const { registry, bridge } = setup();
    const video = new FakeTrack(registry, 'live/av', 'video');
    const audio = new FakeTrack(registry, 'live/av', 'audio');
    for (let i = 0; i < 181; i++) {
      video.frames(1, 60);
      audio.until(video.timeS);
      await appended(bridge, 'live/av', 'audio', audio.frame);
      await appended(bridge, 'live/av', 'video', video.frame);
    }
    const v = (await playlist(bridge, '/hls/live/av/playlist.m3u8')).manifest;
    const { raw, manifest: a } = await playlist(bridge, '/hls/live/av/audio.m3u8');
    expect(v.segments.map((s) => s.uri)).toEqual(['seg-0.m4s', 'seg-1.m4s', 'seg-2.m4s']);
    expect(a.segments.map((s) => s.uri)).toEqual(['audio-seg-0.m4s', 'audio-seg-1.m4s', 'audio-seg-2.m4s']);
    // Audio frames of 1024/48000 s: the first at or after 2.0 s is frame 94 (2.00533 s).
    expect(a.segments[0]?.duration).toBeCloseTo((94 * 1024) / 48000, 5);
    expect(a.segments[0]?.map?.uri).toBe(initUri(AUDIO_DESCRIPTION));
    expect(raw).toContain('#EXT-X-PART:DURATION=0.192,URI="audio-part-0-0.m4s",INDEPENDENT=YES');
    expect(raw).not.toContain('#EXT-X-RENDITION-REPORT');
    const seg = await get(bridge, '/hls/live/av/audio-seg-0.m4s');
    expect(seg.status).toBe(200);
    expect((seg.body as Uint8Array).byteLength).toBe(94 * 40);
    expect(seg.headers['Content-Type']).toBe('audio/mp4');
  });

  it('holds an audio cut that runs ahead of video until the video boundary is known', async () => {
    const { registry, bridge } = setup();
    const video = new FakeTrack(registry, 'live/ahead', 'video');
    const audio = new FakeTrack(registry, 'live/ahead', 'audio');
    audio.until(2.5);
    await appended(bridge, 'live/ahead', 'audio', audio.frame);
    video.frames(62, 60);
    await appended(bridge, 'live/ahead', 'video', 62);
    let a = (await playlist(bridge, '/hls/live/ahead/audio.m3u8')).manifest;
    expect(a.segments).toHaveLength(0);
    audio.emit(true);
    await appended(bridge, 'live/ahead', 'audio', audio.frame);
    a = (await playlist(bridge, '/hls/live/ahead/audio.m3u8')).manifest;
    expect(a.segments.map((s) => s.uri)).toEqual(['audio-seg-0.m4s']);
    expect(a.segments[0]?.duration).toBeCloseTo(((audio.frame - 1) * 1024) / 48000, 5);
  });

  it('turns a new init into a discontinuity with a new EXT-X-MAP while media sequence numbers keep counting', async () => {
    const { registry, bridge } = setup({ dvrWindowMs: 8000 });
    const video = new FakeTrack(registry, 'live/restart', 'video');
    video.frames(90, 30);
    await appended(bridge, 'live/restart', 'video', 90);
    const firstInit = await get(bridge, '/hls/live/restart/init.mp4');
    video.restart(videoTrack(1280, 720), 0); // a publisher restart: timestamps start over
    video.frames(61, 30);
    await appended(bridge, 'live/restart', 'video', 151);

    const { raw, manifest } = await playlist(bridge, '/hls/live/restart/playlist.m3u8');
    expect(manifest.segments.map((s) => [s.uri, s.duration, s.discontinuity === true, s.map?.uri])).toEqual([
      ['seg-0.m4s', 2, false, initUri()],
      ['seg-1.m4s', 1, false, initUri()],
      ['seg-2.m4s', 2, true, initUri(videoTrack(1280, 720))],
    ]);
    expect(raw).toContain(
      `seg-1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="${initUri(videoTrack(1280, 720))}"\n#EXT-X-PROGRAM-DATE-TIME:`,
    );
    expect(raw).not.toContain('#EXT-X-DISCONTINUITY-SEQUENCE');

    // init.mp4 is the current init (revalidated); every version stays addressable and immutable.
    const current = await get(bridge, '/hls/live/restart/init.mp4');
    expect(text(current)).toContain('"height":720');
    expect(current.headers['Cache-Control']).toBe('no-cache');
    const v1 = await get(bridge, `/hls/live/restart/${initUri()}`);
    expect(v1.body).toEqual(firstInit.body);
    expect(v1.headers['Cache-Control']).toBe('public, max-age=31536000, immutable');
    expect(text(await get(bridge, `/hls/live/restart/${initUri(videoTrack(1280, 720))}`))).toContain('"width":1280');

    // Once the discontinuity's segment is the oldest listed, the tag stays and the sequence is 0;
    // once it slides out, EXT-X-DISCONTINUITY-SEQUENCE counts it.
    video.frames(360, 30);
    await appended(bridge, 'live/restart', 'video', 511);
    const later = await playlist(bridge, '/hls/live/restart/playlist.m3u8');
    expect(later.manifest.mediaSequence).toBeGreaterThan(2);
    expect(later.raw).toContain('#EXT-X-DISCONTINUITY-SEQUENCE:1\n');
    expect(later.raw).not.toContain('#EXT-X-DISCONTINUITY\n');
    expect(later.manifest.discontinuitySequence).toBe(1);
    expect(await get(bridge, `/hls/live/restart/${initUri()}`)).toMatchObject({ status: 404 });
    const msns = later.manifest.segments.map((s) => Number(s.uri.match(/\d+/)?.[0]));
    expect(msns).toEqual(msns.map((_, i) => later.manifest.mediaSequence! + i));
  });

  it('finishes the last segment and adds EXT-X-ENDLIST when the broadcast ends, then ignores blocking directives', async () => {
    const { registry, bridge } = setup();
    const video = new FakeTrack(registry, 'live/end', 'video');
    video.frames(100, 30);
    await appended(bridge, 'live/end', 'video', 100);
    registry.remove('live/end', '0.mp4');
    await ended(bridge, 'live/end');
    const { raw, manifest } = await playlist(bridge, '/hls/live/end/playlist.m3u8');
    expect(manifest.endList).toBe(true);
    expect(manifest.segments.map((s) => s.uri)).toEqual(['seg-0.m4s', 'seg-1.m4s']);
    expect(manifest.segments[1]?.duration).toBeCloseTo(100 / 30 - 2, 4);
    expect(raw).not.toContain('PRELOAD-HINT');
    expect(raw.endsWith('#EXT-X-ENDLIST\n')).toBe(true);
    const blocked = await get(bridge, '/hls/live/end/playlist.m3u8', '_HLS_msn=40&_HLS_part=3');
    expect(blocked.status).toBe(200);
    expect(text(blocked)).toContain('#EXT-X-ENDLIST');
  });

  it('serves an ended broadcast for the linger period, continues its numbering after a discontinuity when republished, and after it is freed', async () => {
    const { registry, bridge } = setup({ lingerMs: 50 });
    let video = new FakeTrack(registry, 'live/again', 'video');
    video.frames(61, 30);
    await appended(bridge, 'live/again', 'video', 61);
    registry.remove('live/again', '0.mp4');
    await ended(bridge, 'live/again');

    // Republished within the linger: the same playlist goes on.
    video = new FakeTrack(registry, 'live/again', 'video');
    video.frames(61, 30);
    await waitFor(async () => text(await get(bridge, '/hls/live/again/playlist.m3u8')).includes('seg-2.m4s'), 'seg 2');
    const { raw, manifest } = await playlist(bridge, '/hls/live/again/playlist.m3u8');
    expect(manifest.endList).toBeUndefined();
    expect(manifest.segments.map((s) => [s.uri, s.discontinuity === true])).toEqual([
      ['seg-0.m4s', false],
      ['seg-1.m4s', false],
      ['seg-2.m4s', true],
    ]);
    expect(raw).toContain(`#EXT-X-MAP:URI="${initUri()}"`); // same init bytes: same URI

    registry.remove('live/again', '0.mp4');
    await waitFor(async () => (await get(bridge, '/hls/live/again/playlist.m3u8')).status === 404, 'freed');
    expect(bridge.broadcasts().map((b) => b.name)).not.toContain('live/again');

    // Published again after being freed: no URL is re-used with other bytes.
    video = new FakeTrack(registry, 'live/again', 'video', { init: videoTrack(640, 360) });
    video.frames(61, 30);
    await waitFor(async () => text(await get(bridge, '/hls/live/again/playlist.m3u8')).includes('#EXTINF'), 'seg');
    const fresh = await playlist(bridge, '/hls/live/again/playlist.m3u8');
    expect(fresh.manifest.mediaSequence).toBe(4);
    expect(fresh.manifest.segments[0]?.map?.uri).toBe(initUri(videoTrack(640, 360)));
    expect(fresh.raw).toContain('#EXT-X-DISCONTINUITY-SEQUENCE:2');
  });

  it('names each init by its bytes: another bridge that saw other inits first names the same init alike, and an init that comes back keeps its URI', async () => {
    const small = videoTrack(640, 360);
    // Bridge A sees the default init, then the 640x360 one, then the default again.
    const a = setup();
    const va = new FakeTrack(a.registry, 'live/ids', 'video');
    va.frames(60, 30);
    await appended(a.bridge, 'live/ids', 'video', 60);
    va.restart(small, 0);
    va.frames(60, 30);
    await appended(a.bridge, 'live/ids', 'video', 120);
    va.restart(videoTrack(1920, 1080), 0);
    va.frames(61, 30); // the keyframe at frame 180 completes the third segment
    await appended(a.bridge, 'live/ids', 'video', 181);
    // Bridge B (an edge that joined after A's first init) sees the 640x360 init first.
    const b = setup();
    const vb = new FakeTrack(b.registry, 'live/ids', 'video', { init: small });
    vb.frames(61, 30);
    await appended(b.bridge, 'live/ids', 'video', 61);
    const maps = async (bridge: HlsBridge) =>
      (await playlist(bridge, '/hls/live/ids/playlist.m3u8')).manifest.segments.map((s) => s.map?.uri);
    const fromA = await maps(a.bridge);
    const fromB = await maps(b.bridge);
    expect(new Set(fromA)).toEqual(new Set([initUri(), initUri(small)]));
    expect(fromB).toEqual([initUri(small)]);
    expect(initUri(small)).not.toBe(initUri());
    // The same bytes behind the same URI on both bridges.
    const smallA = await get(a.bridge, `/hls/live/ids/${initUri(small)}`);
    expect(smallA.body).toEqual(fakeInit(small));
    expect((await get(b.bridge, `/hls/live/ids/${initUri(small)}`)).body).toEqual(smallA.body);
    // The default init came back on A: listed (and served) under its first URI.
    expect(fromA.at(-1)).toBe(initUri());
    expect((await get(a.bridge, `/hls/live/ids/${initUri()}`)).body).toEqual(fakeInit(videoTrack(1920, 1080)));
  });

  it('slides the window: old segments leave the playlist and are freed, parts are listed only for the last three target durations', async () => {
    const { registry, bridge } = setup({ dvrWindowMs: 8000 });
    const video = new FakeTrack(registry, 'live/window', 'video');
    video.frames(30 * 20 + 1, 60); // 20 s: ten complete segments
    await appended(bridge, 'live/window', 'video', 601);
    const { raw, manifest } = await playlist(bridge, '/hls/live/window/playlist.m3u8');
    // An 8 s window (= 4 target durations) ending at 20 s lists segments 6..9.
    expect(manifest.mediaSequence).toBe(6);
    expect(manifest.segments.map((s) => s.uri)).toEqual(['seg-6.m4s', 'seg-7.m4s', 'seg-8.m4s', 'seg-9.m4s']);
    expect(manifest.segments.map((s) => (s.parts ?? []).length)).toEqual([0, 10, 10, 10]);
    expect(raw).not.toContain('part-6-');
    // Parts that left the playlist stay downloadable while their segment is kept.
    expect((await get(bridge, '/hls/live/window/part-6-0.m4s')).status).toBe(200);
    // Two target durations after leaving the playlist, segments are freed.
    expect((await get(bridge, '/hls/live/window/seg-4.m4s')).status).toBe(200);
    expect((await get(bridge, '/hls/live/window/seg-3.m4s')).status).toBe(404);
    expect((await get(bridge, '/hls/live/window/part-0-0.m4s')).status).toBe(404);
    const summary = bridge.broadcasts().find((b) => b.name === 'live/window')!;
    expect(summary.tracks[0]).toMatchObject({ segments: 4, mediaSequence: 6, lastMsn: 9, lastPart: 9 });
  });

  it('never lists again what left the window when a longer segment raises the target duration (the media sequence never goes back)', async () => {
    const { registry, bridge } = setup({ dvrWindowMs: 8000 });
    const video = new FakeTrack(registry, 'live/grow', 'video');
    video.frames(30 * 20 + 1, 60); // 20 s: segments 0-9, segment 10 open
    await appended(bridge, 'live/grow', 'video', 601);
    expect((await playlist(bridge, '/hls/live/grow/playlist.m3u8')).manifest.mediaSequence).toBe(6);
    // Keyframes every 3 s from here: segment 10 lasts 4 s (frames 600-720), the target becomes 4 s and
    // the window (4 target durations) 16 s, which would reach back to segments 4 and 5, still kept.
    video.frames(121, 90);
    await appended(bridge, 'live/grow', 'video', 722);
    const { raw, manifest } = await playlist(bridge, '/hls/live/grow/playlist.m3u8');
    expect(manifest.targetDuration).toBe(4);
    expect(manifest.mediaSequence, raw).toBe(6);
    expect((await get(bridge, '/hls/live/grow/seg-5.m4s')).status).toBe(200);
  });

  it('answers _HLS_skip=YES with a delta update that replaces segments older than CAN-SKIP-UNTIL with EXT-X-SKIP', async () => {
    const { registry, bridge } = setup({ dvrWindowMs: 30_000 });
    const video = new FakeTrack(registry, 'live/delta', 'video');
    video.frames(601, 60);
    await appended(bridge, 'live/delta', 'video', 601);
    const full = await playlist(bridge, '/hls/live/delta/playlist.m3u8');
    const delta = await playlist(bridge, '/hls/live/delta/playlist.m3u8', '_HLS_skip=YES');
    expect(full.manifest.segments).toHaveLength(10);
    // CAN-SKIP-UNTIL is 12 s: the segments ending at 2, 4, 6 and 8 s are at least 12 s from the end (20 s).
    expect(delta.raw).toContain(
      `#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXT-X-MAP:URI="${initUri()}"\n`,
    );
    expect(delta.manifest.skip?.skippedSegments).toBe(4);
    expect(delta.manifest.segments.map((s) => s.uri)).toEqual(full.manifest.segments.slice(4).map((s) => s.uri));
    const v2 = await get(bridge, '/hls/live/delta/playlist.m3u8', '_HLS_skip=v2');
    expect(text(v2)).toBe(delta.raw);
    expect((await get(bridge, '/hls/live/delta/playlist.m3u8', '_HLS_skip=NO')).status).toBe(400);
  });

  it('picks up broadcasts that existed before start(), and after a subscriber lag gap goes on with a new segment after EXT-X-DISCONTINUITY', async () => {
    const registry = new FragmentBroadcasterRegistry({ broadcaster: { capacity: 40 } });
    const video = new FakeTrack(registry, 'live/early', 'video');
    const bridge = new HlsBridge({ registry, describeInit: describeFake });
    bridges.push(bridge);
    bridge.start();
    for (let i = 1; i <= 3; i++) {
      video.frames(15, 30);
      await appended(bridge, 'live/early', 'video', 15 * i);
    }
    video.frames(100, 30); // frames 45..144 at once: the 40-fragment queue drops whole GOPs, resumes at 120
    await waitFor(() => bridge.broadcasts()[0]?.tracks[0]?.lagGaps === 1, 'a lag gap');
    await appended(bridge, 'live/early', 'video', 45 + 25);
    const { manifest, raw } = await playlist(bridge, '/hls/live/early/playlist.m3u8');
    // Frames 0..44 make segment 0 (cut short at the gap); 2.5 s of media are missing, so the
    // timeline starts again at frame 120, the keyframe after the gap.
    expect(manifest.segments).toHaveLength(1);
    expect(manifest.segments[0]?.duration).toBeCloseTo(1.5, 5);
    expect(raw).toMatch(/seg-0\.m4s\n#EXT-X-DISCONTINUITY\n/);
    const parts = manifest.preloadSegment?.parts ?? [];
    expect(parts.map((x) => x.independent === true)).toEqual([true, false, false, false]);
    const resumed = await get(bridge, '/hls/live/early/part-1-0.m4s');
    expect(
      new DataView((resumed.body as Uint8Array).buffer, (resumed.body as Uint8Array).byteOffset).getUint32(0),
    ).toBe(120);
  });

  it('sends CORS on every response, no-cache on playlists, immutable caching on segments and parts, and JSON errors', async () => {
    const { registry, bridge } = setup();
    const video = new FakeTrack(registry, 'live/headers', 'video');
    const audio = new FakeTrack(registry, 'live/headers', 'audio');
    for (let i = 0; i < 70; i++) {
      video.frames(1, 60);
      audio.until(video.timeS);
    }
    await appended(bridge, 'live/headers', 'video', 70);
    await appended(bridge, 'live/headers', 'audio', audio.frame);
    const cases: Array<[string, number, string, string]> = [
      ['master.m3u8', 200, 'application/vnd.apple.mpegurl', 'no-cache'],
      ['playlist.m3u8', 200, 'application/vnd.apple.mpegurl', 'no-cache'],
      ['audio.m3u8', 200, 'application/vnd.apple.mpegurl', 'no-cache'],
      ['init.mp4', 200, 'video/mp4', 'no-cache'],
      [initUri(), 200, 'video/mp4', 'public, max-age=31536000, immutable'],
      ['audio-init.mp4', 200, 'audio/mp4', 'no-cache'],
      [initUri(AUDIO_DESCRIPTION), 200, 'audio/mp4', 'public, max-age=31536000, immutable'],
      ['seg-0.m4s', 200, 'video/mp4', 'public, max-age=31536000, immutable'],
      ['part-0-3.m4s', 200, 'video/mp4', 'public, max-age=31536000, immutable'],
      ['audio-seg-0.m4s', 200, 'audio/mp4', 'public, max-age=31536000, immutable'],
      ['audio-part-1-0.m4s', 200, 'audio/mp4', 'public, max-age=31536000, immutable'],
      ['seg-7.m4s', 404, 'application/json; charset=utf-8', 'no-store'],
      ['seg-00.m4s', 404, 'application/json; charset=utf-8', 'no-store'],
      ['nope.txt', 404, 'application/json; charset=utf-8', 'no-store'],
    ];
    for (const [file, status, type, cache] of cases) {
      const response = await get(bridge, `/hls/live/headers/${file}`);
      expect([file, response.status, response.headers['Content-Type'], response.headers['Cache-Control']]).toEqual([
        file,
        status,
        type,
        cache,
      ]);
      expect(response.headers['Access-Control-Allow-Origin'], file).toBe('*');
    }
    const missing = await get(bridge, '/hls/live/nobody/playlist.m3u8');
    expect(missing.status).toBe(404);
    expect(JSON.parse(text(missing))).toEqual({
      error: { code: 'hls.not_found', message: "no broadcast 'live/nobody'" },
    });
    expect((await get(bridge, '/hls/live/headers/%E0%A4%A/playlist.m3u8')).status).toBe(404);
    expect((await get(bridge, '/hls/live/../headers/playlist.m3u8')).status).toBe(404);
    // The /hls/ prefix is optional and names are percent-decoded.
    expect((await get(bridge, '/live%2Fheaders/playlist.m3u8')).status).toBe(404);
    expect((await get(bridge, '/live/headers/playlist.m3u8')).status).toBe(200);
  });
});
