import { afterEach, describe, expect, it } from 'vitest';
import { type BroadcastOrigin, FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { HlsBridge, type HlsBridgeOptions } from '../../src/hls/index.ts';
import { waitFor } from '../support/wait.ts';
import {
  appended,
  describeFake,
  FakeTrack,
  get,
  initUri,
  lines,
  parse,
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

function rungOrigin(rendition: string): BroadcastOrigin {
  return { kind: 'rendition', source: 'live/demo', rendition, transcoder: 'test' };
}

const RUNGS = {
  // Created in this order on purpose: the master sorts by measured bandwidth.
  '240p': { size: [426, 240], bytes: 30, codec: 'avc1.42c015' },
  '720p': { size: [1280, 720], bytes: 120, codec: 'avc1.64001f' },
  '480p': { size: [854, 480], bytes: 60, codec: 'avc1.4d401e' },
} as const;

/** A 1080p source with audio, plus rungs that emit the same frames (same timestamps). */
function stage(registry: FragmentBroadcasterRegistry, rungs: ReadonlyArray<keyof typeof RUNGS>) {
  const source = new FakeTrack(registry, 'live/demo', 'video', { init: videoTrack(1920, 1080, 'avc1.640028') });
  const audio = new FakeTrack(registry, 'live/demo', 'audio');
  const outputs = new Map<string, FakeTrack>();
  const startFrames = new Map<string, number>();
  const addRung = (name: keyof typeof RUNGS): FakeTrack => {
    const spec = RUNGS[name];
    const rung = new FakeTrack(registry, `live/demo/${name}`, 'video', {
      origin: rungOrigin(name),
      init: videoTrack(spec.size[0], spec.size[1], spec.codec),
      bytes: spec.bytes,
    });
    rung.frame = source.frame;
    startFrames.set(name, source.frame);
    outputs.set(name, rung);
    return rung;
  };
  for (const name of rungs) addRung(name);
  /** Emits `count` frames on the source and every rung (keyframe every second). */
  const frames = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const keyframe = source.frame % 30 === 0;
      source.emit(keyframe);
      for (const rung of outputs.values()) if (rung.frame < source.frame) rung.emit(keyframe);
      audio.until(source.timeS);
    }
  };
  /** Fragments a rung has emitted. */
  const emitted = (name: string): number => (outputs.get(name)?.frame ?? 0) - (startFrames.get(name) ?? 0);
  return { source, audio, outputs, addRung, frames, emitted };
}

async function settle(bridge: HlsBridge, s: ReturnType<typeof stage>): Promise<void> {
  await appended(bridge, 'live/demo', 'video', s.source.frame);
  await appended(bridge, 'live/demo', 'audio', s.audio.frame);
  for (const name of s.outputs.keys()) await appended(bridge, `live/demo/${name}`, 'video', s.emitted(name));
}

describe('HLS master playlist', () => {
  it('lists the source first, then rungs by measured bandwidth, each with real CODECS, RESOLUTION, FRAME-RATE and AUDIO="audio"', async () => {
    const { registry, bridge } = setup();
    const s = stage(registry, ['240p', '720p', '480p']);
    s.frames(121);
    await settle(bridge, s);
    const { raw, manifest } = await playlist(bridge, '/hls/live/demo/master.m3u8');
    expect(lines(raw, '#EXT-X-MEDIA:')).toEqual([
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="main",DEFAULT=YES,AUTOSELECT=YES,URI="audio.m3u8"',
    ]);
    expect(raw.startsWith('#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n')).toBe(true);
    expect(manifest.playlists?.map((p) => p.uri)).toEqual([
      'playlist.m3u8',
      '720p/playlist.m3u8',
      '480p/playlist.m3u8',
      '240p/playlist.m3u8',
    ]);
    // 200 bytes x 30 fps video + 40 bytes x 46.875 fps audio, in bits/s (every segment is the same).
    const audioBps = 40 * (48000 / 1024) * 8;
    const inf = lines(raw, '#EXT-X-STREAM-INF:');
    expect(inf[0]).toBe(
      `#EXT-X-STREAM-INF:BANDWIDTH=${48000 + Math.ceil(audioBps)},AVERAGE-BANDWIDTH=${48000 + Math.ceil(audioBps)},CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=30.000,AUDIO="audio"`,
    );
    expect(inf[1]).toContain('CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="audio"');
    expect(inf[2]).toContain('CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=854x480');
    expect(inf[3]).toContain('CODECS="avc1.42c015,mp4a.40.2",RESOLUTION=426x240');
    const bandwidths = manifest.playlists!.map((p) => p.attributes['BANDWIDTH'] as number);
    expect(bandwidths.slice(1)).toEqual([...bandwidths.slice(1)].sort((a, b) => b - a));
    expect(bandwidths[1]).toBeCloseTo(120 * 30 * 8 + audioBps, -1);
    for (const p of manifest.playlists!) expect(p.attributes['AUDIO']).toBe('audio');
    expect(manifest.mediaGroups?.AUDIO?.['audio']?.['main']?.uri).toBe('audio.m3u8');
  });

  it('points each rung to the AAC rendition of its audio bitrate, lists every video variant again with the Opus group after all AAC ones, and counts the referenced audio in BANDWIDTH', async () => {
    const aacOf: Record<string, string> = { '720p': 'audio-aac-128k', '240p': 'audio-aac-64k' };
    const { registry, bridge } = setup({
      rungAudio: (source, rendition) => (source === 'live/demo' ? aacOf[rendition] : undefined),
    });
    const s = stage(registry, ['720p', '240p']);
    const renditions = [
      ['audio-aac-128k', 'mp4a.40.2', 80],
      ['audio-aac-64k', 'mp4a.40.2', 40],
      ['audio-opus-64k', 'opus', 30],
    ] as const;
    const tracks = renditions.map(
      ([name, codec, bytes]) =>
        [
          name,
          new FakeTrack(registry, `live/demo/${name}`, 'audio', {
            origin: rungOrigin(name),
            init: { kind: 'audio', codec },
            bytes,
          }),
        ] as const,
    );
    s.frames(61);
    await settle(bridge, s);
    // No audio rendition has a segment yet: every variant keeps the source's audio.
    let raw = text(await get(bridge, '/hls/live/demo/master.m3u8'));
    expect(lines(raw, '#EXT-X-MEDIA:')).toHaveLength(1);
    expect(lines(raw, '#EXT-X-STREAM-INF:').map((l) => /AUDIO="([^"]+)"/.exec(l)?.[1])).toEqual([
      'audio',
      'audio',
      'audio',
    ]);

    for (const [name, track] of tracks) {
      track.until(s.source.timeS);
      await appended(bridge, `live/demo/${name}`, 'audio', track.frame);
    }
    raw = text(await get(bridge, '/hls/live/demo/master.m3u8'));
    expect(lines(raw, '#EXT-X-MEDIA:')).toEqual([
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="main",DEFAULT=YES,AUTOSELECT=YES,URI="audio.m3u8"',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-aac-128k",NAME="audio-aac-128k",DEFAULT=YES,AUTOSELECT=YES,URI="audio-aac-128k/audio.m3u8"',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-aac-64k",NAME="audio-aac-64k",DEFAULT=YES,AUTOSELECT=YES,URI="audio-aac-64k/audio.m3u8"',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-opus-64k",NAME="audio-opus-64k",DEFAULT=YES,AUTOSELECT=YES,URI="audio-opus-64k/audio.m3u8"',
    ]);
    const manifest = parse(raw);
    const audioBps = (bytes: number) => bytes * (48000 / 1024) * 8;
    const videoBps = (bytes: number) => bytes * 30 * 8;
    expect(
      manifest.playlists!.map((p) => [p.uri, p.attributes['AUDIO'], p.attributes['CODECS'], p.attributes['BANDWIDTH']]),
    ).toEqual([
      ['playlist.m3u8', 'audio', 'avc1.640028,mp4a.40.2', Math.ceil(videoBps(200) + audioBps(40))],
      ['720p/playlist.m3u8', 'audio-aac-128k', 'avc1.64001f,mp4a.40.2', Math.ceil(videoBps(120) + audioBps(80))],
      ['240p/playlist.m3u8', 'audio-aac-64k', 'avc1.42c015,mp4a.40.2', Math.ceil(videoBps(30) + audioBps(40))],
      ['playlist.m3u8', 'audio-opus-64k', 'avc1.640028,opus', Math.ceil(videoBps(200) + audioBps(30))],
      ['720p/playlist.m3u8', 'audio-opus-64k', 'avc1.64001f,opus', Math.ceil(videoBps(120) + audioBps(30))],
      ['240p/playlist.m3u8', 'audio-opus-64k', 'avc1.42c015,opus', Math.ceil(videoBps(30) + audioBps(30))],
    ]);
    // The audio renditions are LL-HLS playlists numbered like the source video, with parts.
    const video = (await playlist(bridge, '/hls/live/demo/playlist.m3u8')).manifest;
    for (const [name] of renditions) {
      const audio = await playlist(bridge, `/hls/live/demo/${name}/audio.m3u8`);
      expect(
        audio.manifest.segments.map((x) => x.uri),
        name,
      ).toEqual(['audio-seg-0.m4s']);
      expect(audio.manifest.mediaSequence).toBe(video.mediaSequence);
      expect(lines(audio.raw, '#EXT-X-PART:').length, name).toBeGreaterThan(0);
    }
    expect(bridge.broadcasts().find((b) => b.name === 'live/demo/audio-opus-64k')?.inMaster).toBe(true);
  });

  it('answers 404 until the first complete segment (hls.js fails on parts alone), estimating bandwidth from the parts meanwhile, then takes the declared source bandwidth', async () => {
    const { registry, bridge } = setup({ sourceBandwidthKbps: 6000 });
    const s = stage(registry, []);
    s.frames(12); // two parts, no complete segment
    await settle(bridge, s);
    const early = await get(bridge, '/hls/live/demo/master.m3u8');
    expect(early.status).toBe(404);
    expect(JSON.parse(text(early))).toMatchObject({ error: { code: 'hls.not_found' } });
    expect(bridge.broadcasts().find((b) => b.name === 'live/demo')?.tracks[0]).toMatchObject({
      bitrateEstimated: true,
      bitrateBps: 48000,
      segments: 0,
    });
    s.frames(49); // frame 60: the keyframe that completes segment 0
    await settle(bridge, s);
    const raw = text(await get(bridge, '/hls/live/demo/master.m3u8'));
    expect(lines(raw, '#EXT-X-STREAM-INF:')[0]).toMatch(/^#EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=\d+,/);
    expect(bridge.broadcasts().find((b) => b.name === 'live/demo')?.tracks[0]).toMatchObject({
      bitrateEstimated: false,
      segments: 1,
    });
  });

  it('shows a rung only once it has a complete segment, and hides it when it is paused, ends or is removed', async () => {
    const hidden = new Set<string>();
    const { registry, bridge } = setup({ isRungHidden: (source, rendition) => hidden.has(`${source}|${rendition}`) });
    const master = async (): Promise<string[]> =>
      parse(text(await get(bridge, '/hls/live/demo/master.m3u8'))).playlists!.map((p) => p.uri);
    expect((await get(bridge, '/hls/live/demo/master.m3u8')).status).toBe(404);
    const s = stage(registry, []);
    s.frames(150); // source segments 0 and 1 complete
    await settle(bridge, s);
    expect(await master()).toEqual(['playlist.m3u8']);
    s.addRung('720p'); // starts on the keyframe at frame 150, in source segment 2
    s.frames(15);
    await settle(bridge, s);
    expect(await master()).toEqual(['playlist.m3u8']); // the rung's first segment is still open
    s.frames(16); // frame 180: the keyframe that completes segment 2
    await settle(bridge, s);
    expect(await master()).toEqual(['playlist.m3u8', '720p/playlist.m3u8']);
    hidden.add('live/demo|720p');
    expect(await master()).toEqual(['playlist.m3u8']);
    expect((await get(bridge, '/hls/live/demo/720p/playlist.m3u8')).status).toBe(200); // still served
    hidden.clear();
    expect(await master()).toEqual(['playlist.m3u8', '720p/playlist.m3u8']);
    registry.remove('live/demo/720p', '0.mp4');
    await waitFor(() => bridge.broadcasts().find((b) => b.name === 'live/demo/720p')?.ended, 'rung ended');
    expect(await master()).toEqual(['playlist.m3u8']);
    expect(text(await get(bridge, '/hls/live/demo/720p/playlist.m3u8'))).toContain('#EXT-X-ENDLIST');
  });

  it('keeps every rung that ended with its source in the master of the ended broadcast, but not one that ended before', async () => {
    const { registry, bridge } = setup();
    const s = stage(registry, ['720p', '480p', '240p']);
    s.frames(61);
    await settle(bridge, s);
    const master = async (): Promise<string[]> =>
      parse(text(await get(bridge, '/hls/live/demo/master.m3u8'))).playlists!.map((p) => p.uri);
    expect(await master()).toHaveLength(4);
    // 240p ends while the source goes on (a format change left it out): it leaves the master.
    registry.remove('live/demo/240p', '0.mp4');
    s.outputs.delete('240p');
    s.frames(60);
    await settle(bridge, s);
    expect(await master()).toEqual(['playlist.m3u8', '720p/playlist.m3u8', '480p/playlist.m3u8']);
    // The source ends, its rungs end with it: the ended broadcast keeps its ladder.
    for (const name of ['live/demo', 'live/demo/720p', 'live/demo/480p']) registry.remove(name, '0.mp4');
    registry.remove('live/demo', '1.mp4');
    await waitFor(
      () =>
        ['live/demo', 'live/demo/720p', 'live/demo/480p'].every(
          (n) => bridge.broadcasts().find((b) => b.name === n)?.ended,
        ),
      'everything ended',
    );
    expect(await master()).toEqual(['playlist.m3u8', '720p/playlist.m3u8', '480p/playlist.m3u8']);
    expect(text(await get(bridge, '/hls/live/demo/480p/playlist.m3u8'))).toContain('#EXT-X-ENDLIST');
  });

  it('drops a withdrawn rung (a bypassed one) at once: its playlist is gone and no master lists it, live or ended', async () => {
    const { registry, bridge } = setup();
    const s = stage(registry, ['720p', '240p']);
    s.frames(45); // parts only: segment 0 completes at the keyframe of frame 60
    await settle(bridge, s);
    expect((await get(bridge, '/hls/live/demo/720p/playlist.m3u8')).status).toBe(200);
    // The producer withdraws its output (what a rung the bypass rule leaves to its source does).
    s.outputs.get('720p')!.broadcaster.withdraw();
    registry.remove('live/demo/720p', '0.mp4');
    s.outputs.delete('720p');
    expect(bridge.broadcasts().map((b) => b.name)).not.toContain('live/demo/720p');
    expect((await get(bridge, '/hls/live/demo/720p/playlist.m3u8')).status).toBe(404);
    // The source and its other rung end within that first segment: each closes it at its end, and
    // the ended broadcast keeps the rung that ended with its source, never the withdrawn one.
    for (const name of ['live/demo', 'live/demo/240p']) registry.remove(name, '0.mp4');
    registry.remove('live/demo', '1.mp4');
    await waitFor(
      () => ['live/demo', 'live/demo/240p'].every((n) => bridge.broadcasts().find((b) => b.name === n)?.ended),
      'everything ended',
    );
    const master = parse(text(await get(bridge, '/hls/live/demo/master.m3u8')));
    expect(master.playlists!.map((p) => p.uri)).toEqual(['playlist.m3u8', '240p/playlist.m3u8']);
    expect(bridge.broadcasts().map((b) => b.name)).toEqual(['live/demo', 'live/demo/240p']);
  });

  it('numbers a late rung like its source: the same MSN, PROGRAM-DATE-TIME and boundaries for the same media', async () => {
    const { registry, bridge } = setup();
    const s = stage(registry, []);
    s.frames(150); // segments 0, 1 complete; segment 2 open since 4.0 s
    await settle(bridge, s);
    const rung = s.addRung('720p'); // starts at 5.0 s, on the source keyframe at frame 150 (mid-segment)
    s.frames(171); // to 10.7 s
    await settle(bridge, s);
    const src = (await playlist(bridge, '/hls/live/demo/playlist.m3u8')).manifest;
    const out = (await playlist(bridge, '/hls/live/demo/720p/playlist.m3u8')).manifest;
    expect(rung.frame).toBe(s.source.frame);
    expect(out.mediaSequence).toBe(2);
    // Rung segment 2 is the tail of source segment 2 (5-6 s); from segment 3 on they are identical.
    expect(out.segments.map((x) => [x.uri, x.duration])).toEqual([
      ['seg-2.m4s', 1],
      ['seg-3.m4s', 2],
      ['seg-4.m4s', 2],
    ]);
    const pdt = (m: typeof src, uri: string) => m.segments.find((x) => x.uri === uri)?.dateTimeString;
    for (const uri of ['seg-3.m4s', 'seg-4.m4s']) expect(pdt(out, uri)).toBe(pdt(src, uri));
    expect(src.segments.slice(-2).map((x) => x.duration)).toEqual([2, 2]);
  });

  it('reports every sibling playlist (source and listed rungs) with relative URIs and their last part', async () => {
    const { registry, bridge } = setup();
    const s = stage(registry, ['720p', '480p']);
    s.frames(70);
    await settle(bridge, s);
    s.outputs.get('480p')!.frames(3, 30); // the 480p rung runs three frames ahead: one more part
    await appended(bridge, 'live/demo/480p', 'video', 73);
    const source = await playlist(bridge, '/hls/live/demo/playlist.m3u8');
    expect(lines(source.raw, '#EXT-X-RENDITION-REPORT:')).toEqual([
      '#EXT-X-RENDITION-REPORT:URI="720p/playlist.m3u8",LAST-MSN=1,LAST-PART=0',
      '#EXT-X-RENDITION-REPORT:URI="480p/playlist.m3u8",LAST-MSN=1,LAST-PART=1',
    ]);
    expect(source.manifest.renditionReports).toEqual([
      { uri: '720p/playlist.m3u8', lastMsn: 1, lastPart: 0 },
      { uri: '480p/playlist.m3u8', lastMsn: 1, lastPart: 1 },
    ]);
    const rung = await playlist(bridge, '/hls/live/demo/720p/playlist.m3u8');
    expect(lines(rung.raw, '#EXT-X-RENDITION-REPORT:')).toEqual([
      '#EXT-X-RENDITION-REPORT:URI="../playlist.m3u8",LAST-MSN=1,LAST-PART=0',
      '#EXT-X-RENDITION-REPORT:URI="../480p/playlist.m3u8",LAST-MSN=1,LAST-PART=1',
    ]);
    // Every playlist of the master advertises the same target duration and server control.
    const control = (raw: string) => lines(raw, '#EXT-X-SERVER-CONTROL').concat(lines(raw, '#EXT-X-TARGETDURATION'));
    const audio = await playlist(bridge, '/hls/live/demo/audio.m3u8');
    expect(control(rung.raw)).toEqual(control(source.raw));
    expect(control(audio.raw)).toEqual(control(source.raw));
  });

  it('describes an audio-only source as one audio variant, and falls back to the track codec when the init cannot be read', async () => {
    const { registry, bridge } = setup({
      describeInit: () => {
        throw new Error('unreadable');
      },
    });
    const audio = new FakeTrack(registry, 'radio/one', 'audio');
    audio.until(2.2);
    await appended(bridge, 'radio/one', 'audio', audio.frame);
    const raw = text(await get(bridge, '/hls/radio/one/master.m3u8'));
    expect(raw).not.toContain('#EXT-X-MEDIA');
    expect(lines(raw, '#EXT-X-STREAM-INF:')).toEqual([
      `#EXT-X-STREAM-INF:BANDWIDTH=15000,AVERAGE-BANDWIDTH=15000,CODECS="mp4a.40.2"`,
    ]);
    expect(raw.trimEnd().endsWith('\naudio.m3u8')).toBe(true);
    expect((await get(bridge, '/hls/radio/one/playlist.m3u8')).status).toBe(404);

    const video = new FakeTrack(registry, 'live/x', 'video', { init: videoTrack(640, 360, 'avc1.42c01e') });
    video.frames(61, 30); // frame 60 completes the first segment
    await appended(bridge, 'live/x', 'video', 61);
    // The meta's codec string, no RESOLUTION / FRAME-RATE (the init was not readable).
    expect(lines(text(await get(bridge, '/hls/live/x/master.m3u8')), '#EXT-X-STREAM-INF:')[0]).toMatch(
      /^#EXT-X-STREAM-INF:BANDWIDTH=\d+,AVERAGE-BANDWIDTH=\d+,CODECS="avc1.42c01e"$/,
    );
  });

  it('summarises every broadcast for /api/v1/broadcasts', async () => {
    const { registry, bridge } = setup();
    const s = stage(registry, ['480p']);
    s.frames(70);
    await settle(bridge, s);
    const all = bridge.broadcasts();
    expect(all.map((b) => [b.name, b.origin, b.source, b.rendition, b.ended, b.inMaster])).toEqual([
      ['live/demo', 'ingest', undefined, undefined, false, true],
      ['live/demo/480p', 'rendition', 'live/demo', '480p', false, true],
    ]);
    const [video, audio] = all[0]!.tracks;
    expect(video).toMatchObject({
      track: '0.mp4',
      kind: 'video',
      codec: 'avc1.640028',
      width: 1920,
      height: 1080,
      frameRate: 30,
      bitrateBps: 48000,
      peakBitrateBps: 48000,
      bitrateEstimated: false,
      segments: 1,
      mediaSequence: 0,
      lastMsn: 1,
      lastPart: 0,
      discontinuitySequence: 0,
      initVersion: Number(/init-(\d+)\.mp4/.exec(initUri(videoTrack(1920, 1080, 'avc1.640028')))?.[1]),
      ended: false,
      fragments: 70,
    });
    expect(audio).toMatchObject({ track: '1.mp4', kind: 'audio', codec: 'mp4a.40.2', segments: 1 });
    expect(all[0]).toMatchObject({ targetDurationS: 2, partTargetS: 0.2 });
    expect(JSON.parse(JSON.stringify(all))).toHaveLength(2);
  });
});
