import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/core/bytes.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { HlsBridge } from '../../src/hls/index.ts';
import { IngestManager } from '../../src/ingest/index.ts';
import { fixtureInfo, fixturesPresent, readFixture } from '../../testkit/fixtures.ts';
import { decodeErrors, probePackets } from '../support/ffprobe.ts';
import { ended, get, lines, parse, text } from './harness.ts';

const CLIP = '720p30-frag-every-frame.mp4';

/** Publishes a clip through the real ingest: one entry per parsed track, then its fragments, then the end. */
function publish(registry: FragmentBroadcasterRegistry, name: string, bytes: Uint8Array): void {
  const manager = new IngestManager({ registry, graceMs: 0 });
  const connection = manager.open(name, 'internal');
  for (let offset = 0; offset < bytes.byteLength; offset += 4096)
    connection.push(bytes.subarray(offset, offset + 4096));
  connection.finish();
}

describe.skipIf(!fixturesPresent())('HLS packaging of a real ffmpeg fMP4 stream', () => {
  it('reads CODECS, RESOLUTION and FRAME-RATE from the real init, and its segments decode cleanly with ffmpeg', async () => {
    const info = fixtureInfo(CLIP);
    const registry = new FragmentBroadcasterRegistry();
    const bridge = new HlsBridge({ registry, lingerMs: 60_000 }); // the container's describeInit
    bridge.start();
    try {
      publish(registry, 'live/real', readFixture(CLIP));
      await ended(bridge, 'live/real');

      const master = text(await get(bridge, '/hls/live/real/master.m3u8'));
      expect(lines(master, '#EXT-X-STREAM-INF:')[0]).toMatch(
        new RegExp(
          `CODECS="avc1\\.64001f,mp4a\\.40\\.2",RESOLUTION=${info.video.width}x${info.video.height},FRAME-RATE=30\\.000,AUDIO="audio"$`,
        ),
      );

      const video = parse(text(await get(bridge, '/hls/live/real/playlist.m3u8')));
      const audio = parse(text(await get(bridge, '/hls/live/real/audio.m3u8')));
      expect(video.endList).toBe(true);
      // Keyframes at 0, 1.02 and 2.02 s: the first segment is cut at the one at or after 2 s.
      expect(video.segments.map((s) => s.uri)).toEqual(['seg-0.m4s', 'seg-1.m4s']);
      expect(audio.segments.map((s) => s.uri)).toEqual(['audio-seg-0.m4s', 'audio-seg-1.m4s']);
      for (const seg of video.segments) {
        for (const part of seg.parts ?? []) expect(part.duration).toBeLessThanOrEqual(0.2 + 1e-6);
      }

      const body = async (path: string): Promise<Uint8Array> => (await get(bridge, path)).body as Uint8Array;
      const init = await body(`/hls/live/real/${video.segments[0]?.map?.uri}`);
      const segments = [await body('/hls/live/real/seg-0.m4s'), await body('/hls/live/real/seg-1.m4s')];
      const parts = await Promise.all((video.segments[0]?.parts ?? []).map((p) => body(`/hls/live/real/${p.uri}`)));
      expect(concatBytes(parts)).toEqual(segments[0]);

      const stream = concatBytes([init, ...segments]);
      expect(await decodeErrors(stream)).toEqual([]);
      const packets = await probePackets(stream);
      expect(packets).toHaveLength(info.video.frameCount);
      // Segment 1 starts with the keyframe at frame 60.
      expect(packets.flatMap((p, i) => (p.keyframe ? [i] : []))).toEqual(info.video.keyframeIndices);
      expect(packets.findIndex((p) => p.keyframe && p.pts > 0 && p.pts >= 2 * info.video.timescale)).toBe(60);

      const audioStream = concatBytes([
        await body(`/hls/live/real/${audio.segments[0]?.map?.uri}`),
        await body('/hls/live/real/audio-seg-0.m4s'),
        await body('/hls/live/real/audio-seg-1.m4s'),
      ]);
      expect(await decodeErrors(audioStream)).toEqual([]);
    } finally {
      bridge.close();
    }
  });
});
