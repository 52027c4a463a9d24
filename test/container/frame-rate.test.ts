import { describe, expect, it } from 'vitest';
import { FRAME_RATE_SAMPLES, FrameRateMeter } from '../../src/container/frame-rate.ts';
import { buildVideoInitSegment, describeInit, type ParsedTrack } from '../../src/container/index.ts';
import type { SampleInfo } from '../../src/container/parser-events.ts';
import { AUDIO_TRACK, FragmentBroadcasterRegistry, VIDEO_TRACK } from '../../src/fragment/index.ts';
import { IngestManager } from '../../src/ingest/index.ts';
import { fixturesPresent, readFixture } from '../../testkit/fixtures.ts';
import { findType, topLevelBoxes } from '../../testkit/fmp4.ts';

function videoTrack(frameRate?: number): ParsedTrack {
  return {
    kind: 'video',
    mp4TrackId: 1,
    codec: 'avc1.64001f',
    supported: true,
    sampleEntry: 'avc1',
    timescale: 90_000,
    ...(frameRate === undefined ? {} : { frameRate }),
    defaults: { sampleDescriptionIndex: 1, duration: 0, size: 0, flags: 0 },
    trackId: VIDEO_TRACK,
    initSegment: new Uint8Array(0),
  };
}

function samples(...durations: number[]): SampleInfo[] {
  return durations.map((duration) => ({ dts: 0, pts: 0, duration, keyframe: false, offset: 0, size: 1 }));
}

describe('FrameRateMeter', () => {
  it('sets the timescale over the median of the first 3 durations, so a longer first sample does not count', () => {
    const track = videoTrack();
    const meter = new FrameRateMeter(track);
    meter.add(samples(9000, 3000));
    expect(track.frameRate).toBeUndefined();
    meter.add(samples(3000));
    expect(FRAME_RATE_SAMPLES).toBe(3);
    expect(track.frameRate).toBe(30);
    meter.add(samples(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000));
    expect(track.frameRate).toBe(30); // measured once
  });

  it('rounds like a stated rate (NTSC 29.97) and leaves a rate the init states alone', () => {
    const ntsc = videoTrack();
    new FrameRateMeter(ntsc).add(samples(...Array.from({ length: 8 }, () => 3003)));
    expect(ntsc.frameRate).toBe(29.97);
    const stated = videoTrack(25);
    new FrameRateMeter(stated).add(samples(...Array.from({ length: 8 }, () => 3000)));
    expect(stated.frameRate).toBe(25);
  });

  it('settles on fewer samples only when asked (a stream that ended), and a zero median gives no rate', () => {
    const short = videoTrack();
    const meter = new FrameRateMeter(short);
    meter.add(samples(3600));
    meter.settle(2);
    expect(short.frameRate).toBeUndefined();
    meter.add(samples(3600));
    meter.settle(2);
    expect(short.frameRate).toBe(25);
    const zeros = videoTrack();
    new FrameRateMeter(zeros).add(samples(0, 0, 0, 0, 0, 3000, 3000, 3000));
    expect(zeros.frameRate).toBeUndefined();
  });

  it('a copy goes on from what the original saw, independently of it', () => {
    const track = videoTrack();
    const original = new FrameRateMeter(track);
    original.add(samples(3000));
    const copy = original.copy();
    original.add(samples(1, 1));
    expect(track.frameRate).toBe(90_000);
    track.frameRate = undefined;
    copy.add(samples(3000, 3000));
    expect(track.frameRate).toBe(30);
  });
});

describe.skipIf(!fixturesPresent())('frame rate in FragmentMeta', () => {
  function ingest(graceMs = 5_000) {
    const registry = new FragmentBroadcasterRegistry();
    const manager = new IngestManager({ registry, graceMs });
    return { registry, manager, connection: manager.open('rate', 'internal') };
  }

  it("an ingest track's meta carries the rate the parser measures, on the same meta object and version", () => {
    const { registry, manager, connection } = ingest();
    const bytes = readFixture('720p30-nob-aac.mp4');
    const firstMoof = topLevelBoxes(bytes).find((b) => b.type === 'moof')!;
    connection.push(bytes.subarray(0, firstMoof.offset));
    const video = registry.get('rate', VIDEO_TRACK)!;
    const meta = video.meta;
    const version = video.metaVersion;
    expect(meta.initSegment).toBeDefined();
    expect(meta.frameRate).toBeUndefined(); // ffmpeg's empty_moov states none
    const subscription = video.subscribe();
    connection.push(bytes.subarray(firstMoof.offset));
    expect(video.meta).toBe(meta);
    expect(video.metaVersion).toBe(version);
    expect(meta.frameRate).toBe(30);
    expect(subscription.meta.frameRate).toBe(30);
    expect(registry.get('rate', AUDIO_TRACK)!.meta.frameRate).toBeUndefined();
    manager.close();
  });

  it('a stream that ends before 3 video samples gets its rate from those it sent', () => {
    const { registry, manager, connection } = ingest(0);
    const bytes = readFixture('720p30-frag-every-frame.mp4');
    const moofs = topLevelBoxes(bytes).filter((b) => b.type === 'moof');
    // The moof after the second one-sample video fragment (track 1): the stream is cut there.
    const videoMoofs = moofs.filter((m) => {
      const tfhd = findType(bytes, 'tfhd', m.offset);
      return new DataView(bytes.buffer, bytes.byteOffset).getUint32(tfhd + 8) === 1;
    });
    const cut = moofs.find((m) => m.offset > videoMoofs[1]!.offset)!;
    connection.push(bytes.subarray(0, cut.offset));
    const video = registry.get('rate', VIDEO_TRACK)!;
    expect(video.emittedCount).toBeLessThan(FRAME_RATE_SAMPLES);
    expect(video.meta.frameRate).toBeUndefined();
    connection.finish();
    expect(video.meta.frameRate).toBe(30);
    manager.close();
  });

  it('a rate the init states is in the meta from the init on', () => {
    const { registry, manager, connection } = ingest();
    const [source] = describeInit(readFixture('720p30-nob-aac.mp4'));
    connection.push(
      buildVideoInitSegment({
        timescale: 90_000,
        width: 1280,
        height: 720,
        avcC: source!.description!,
        defaultSampleDuration: 3600,
      }),
    );
    expect(registry.get('rate', VIDEO_TRACK)!.meta.frameRate).toBe(25);
    manager.close();
  });
});
