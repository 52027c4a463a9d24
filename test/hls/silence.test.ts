/**
 * Audio that misses media is filled with silence on its video's boundaries, not listed as GAP:
 * every audio segment holds media from its listed start to its listed end (read back with ffprobe),
 * so a player that retimes segments by their media (hls.js) finds them where the playlist says.
 */

import { readFile } from 'node:fs/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildAudioInitSegment, buildMediaSegment } from '../../src/container/cmaf-writer.ts';
import { concatBytes } from '../../src/core/bytes.ts';
import { createFragment, FragmentFlags } from '../../src/fragment/fragment.ts';
import type { FragmentBroadcaster } from '../../src/fragment/index.ts';
import type { HlsBridge } from '../../src/hls/index.ts';
import { decodeErrors, ffmpeg, probePackets, withFile } from '../support/ffprobe.ts';
import { appended, closeBridges, FakeTrack, get, lines, playlist, startBridge } from './harness.ts';

afterEach(closeBridges);

const RATE = 48_000;
const FRAME = 1024;
/** AAC-LC, 48 kHz, stereo. */
const ASC = Uint8Array.of(0x11, 0x90);
const INIT = buildAudioInitSegment({
  timescale: RATE,
  sampleRate: RATE,
  channelCount: 2,
  codec: 'aac',
  description: ASC,
});
/** Raw AAC-LC frames of a 440 Hz tone (48 kHz stereo), made by ffmpeg. */
let toneFrames: Uint8Array[] = [];

beforeAll(async () => {
  const adts = await withFile(new Uint8Array(0), async (file) => {
    await ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'sine=f=440:r=48000',
      '-ac',
      '2',
      '-t',
      '1',
      '-c:a',
      'aac',
      '-f',
      'adts',
      `${file}.aac`,
    ]);
    return new Uint8Array(await readFile(`${file}.aac`));
  });
  for (let at = 0; at + 7 <= adts.length; ) {
    const length = ((adts[at + 3]! & 3) << 11) | (adts[at + 4]! << 3) | (adts[at + 5]! >> 5);
    const header = (adts[at + 1]! & 1) === 1 ? 7 : 9;
    toneFrames.push(adts.subarray(at + header, at + length));
    at += length;
  }
  toneFrames = toneFrames.slice(2, -2);
});

/** Emits real `moof`+`mdat` audio frames `from` to `to` (frame indices) on `track`. */
function audioFrames(track: FragmentBroadcaster, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const dts = i * FRAME;
    track.emit(
      createFragment({
        trackId: '1.mp4',
        groupId: 0,
        objectId: i,
        priority: 0,
        dts,
        pts: dts,
        duration: FRAME,
        flags: FragmentFlags.AUDIO,
        payload: buildMediaSegment({
          sequenceNumber: i + 1,
          baseMediaDecodeTime: dts,
          samples: [{ data: toneFrames[i % toneFrames.length]!, duration: FRAME, keyframe: true }],
        }),
      }),
    );
  }
}

/** The bytes a GET of `path` answers (a 200 with a body). */
async function bytes(bridge: HlsBridge, path: string): Promise<Uint8Array> {
  const res = await get(bridge, path);
  if (res.status !== 200 || typeof res.body === 'string') throw new Error(`GET ${path}: ${res.status}`);
  return res.body;
}

/** The decoded samples of an init and media (16-bit, interleaved). */
async function pcm(bytes: Uint8Array): Promise<Int16Array> {
  return withFile(bytes, async (file) => {
    await ffmpeg(['-i', file, '-f', 's16le', `${file}.s16`]);
    const out = await readFile(`${file}.s16`);
    return new Int16Array(out.buffer, out.byteOffset, out.byteLength / 2);
  });
}

describe('HLS audio silence fill', () => {
  it('audio that skips 3-7.1 s is filled with silence on its video’s boundaries: no GAP, every segment’s media spans its EXTINF', async () => {
    const { registry, bridge } = startBridge();
    const video = new FakeTrack(registry, 'live/demo', 'video');
    const audio = registry.getOrCreate('live/demo', '1.mp4', {
      codec: 'mp4a.40.2',
      timescale: RATE,
      initSegment: undefined,
    });
    audio.setInitSegment(INIT, 'mp4a.40.2', RATE);
    video.frames(360, 60); // 12 s, a keyframe (and a segment) every 2 s
    await appended(bridge, 'live/demo', 'video', 360);
    audioFrames(audio, 0, 141); // 0 - 3.008 s
    audioFrames(audio, 333, 558); // 7.104 - 11.904 s
    await appended(bridge, 'live/demo', 'audio', 141 + 225);

    const raw = (await playlist(bridge, '/hls/live/demo/audio.m3u8')).raw;
    expect(raw).not.toContain('GAP');
    const videoRaw = (await playlist(bridge, '/hls/live/demo/playlist.m3u8')).raw;
    const extinf = (text: string) => lines(text, '#EXTINF:').map((l) => Number.parseFloat(l.slice(8)));
    const segUris = lines(raw, 'audio-seg-');
    expect(segUris.slice(0, 4)).toEqual([0, 1, 2, 3].map((msn) => `audio-seg-${msn}.m4s`));
    // Segments 2 and 3 start on the video's boundaries (4 s and 6 s) and last as long as its segments.
    expect(extinf(raw)[2]).toBeCloseTo(extinf(videoRaw)[2]!, 3);
    const initUri = /#EXT-X-MAP:URI="([^"]+)"/.exec(raw)![1]!;
    const init = await bytes(bridge, `/hls/live/demo/${initUri}`);
    const starts = [0, 2, 4, 6];
    for (const msn of [1, 2, 3]) {
      const media = concatBytes([init, await bytes(bridge, `/hls/live/demo/audio-seg-${msn}.m4s`)]);
      const packets = await probePackets(media, 'a');
      const next = await probePackets(
        concatBytes([init, await bytes(bridge, `/hls/live/demo/audio-seg-${msn + 1}.m4s`)]),
        'a',
      );
      // No hole: consecutive frames at most a frame apart, up to the next segment's first frame.
      const dts = [...packets, next[0]!].map((p) => p.dts);
      for (let i = 1; i < dts.length; i++)
        expect(dts[i]! - dts[i - 1]!, `seg-${msn} frame ${i}`).toBeLessThanOrEqual(FRAME);
      for (let i = 1; i < dts.length; i++) expect(dts[i]! - dts[i - 1]!, `seg-${msn} frame ${i}`).toBeGreaterThan(0);
      // The segment's media starts on (at most a frame after) its boundary and lasts its EXTINF.
      const first = dts[0]! / RATE;
      expect(first - starts[msn]!, `seg-${msn} start`).toBeGreaterThanOrEqual(-1e-6);
      expect(first - starts[msn]!, `seg-${msn} start`).toBeLessThan(FRAME / RATE);
      expect(dts.at(-1)! / RATE - first, `seg-${msn} media = EXTINF`).toBeCloseTo(extinf(raw)[msn]!, 3);
      expect(await decodeErrors(media)).toEqual([]);
    }
    // Segment 2 is all silence; segment 1 is the tone up to 3.008 s, silence after (past the
    // decoder's overlap of one frame).
    const seg2 = await pcm(concatBytes([init, await bytes(bridge, '/hls/live/demo/audio-seg-2.m4s')]));
    // (ffmpeg decodes the last frame, cut short in the segment, whole.)
    expect(seg2.length - 2 * 2 * RATE).toBeGreaterThanOrEqual(0);
    expect(seg2.length - 2 * 2 * RATE).toBeLessThan(2 * FRAME);
    expect(seg2.every((v) => v === 0)).toBe(true);
    const seg1 = await pcm(concatBytes([init, await bytes(bridge, '/hls/live/demo/audio-seg-1.m4s')]));
    const at = (timeS: number) => 2 * Math.round((timeS - (94 * FRAME) / RATE) * RATE);
    expect(seg1.subarray(0, at(2.9)).some((v) => v !== 0)).toBe(true);
    expect(seg1.subarray(at(3.008 + (2 * FRAME) / RATE)).every((v) => v === 0)).toBe(true);
    expect(seg1.length - at(4)).toBeGreaterThanOrEqual(0);
    expect(seg1.length - at(4)).toBeLessThan(2 * FRAME);
  });
});
