import { describe, expect, it } from 'vitest';
import {
  buildAudioInitSegment,
  buildMediaSegment,
  buildVideoInitSegment,
  type DecodableSample,
  describeInit,
  NON_SYNC_SAMPLE_FLAGS,
  opusHeadFromDOps,
  readBoxes,
  readSamples,
  SYNC_SAMPLE_FLAGS,
} from '../../src/container/index.ts';
import { AUDIO_TRACK, VIDEO_TRACK } from '../../src/fragment/fragment.ts';
import { fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { concat, digest, type ParseResult, parseAll, trackFragments } from '../../testkit/fmp4.ts';
import { decodeErrors, probeFrames, probePackets } from '../support/ffprobe.ts';

function samplesOf(r: ParseResult, trackId: string): DecodableSample[] {
  return trackFragments(r, trackId).flatMap((f) => readSamples(f.fragment.payload));
}

function timing(samples: readonly DecodableSample[]) {
  return samples.map((s) => ({
    dts: s.dts,
    pts: s.pts,
    duration: s.duration,
    keyframe: s.keyframe,
    data: digest(s.data),
  }));
}

/** One media segment per `perSegment` samples, sequence numbers from 1. */
function segments(samples: readonly DecodableSample[], perSegment: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < samples.length; i += perSegment) {
    const group = samples.slice(i, i + perSegment);
    out.push(
      buildMediaSegment({
        sequenceNumber: out.length + 1,
        baseMediaDecodeTime: group[0]!.dts,
        samples: group.map((s) => ({
          data: s.data,
          duration: s.duration,
          compositionOffset: s.pts - s.dts,
          keyframe: s.keyframe,
        })),
      }),
    );
  }
  return out;
}

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);

describe('CMAF writer', () => {
  it('re-muxing a B-frame clip one frame per fragment decodes cleanly with the same frames and keyframes', async () => {
    const name = '720p30-bframes-aac.mp4';
    const parsed = parseAll(readFixture(name));
    const track = parsed.inits[0]!.find((t) => t.trackId === VIDEO_TRACK)!;
    const samples = samplesOf(parsed, VIDEO_TRACK);
    const init = buildVideoInitSegment({
      timescale: track.timescale,
      width: track.width!,
      height: track.height!,
      avcC: track.description!,
      defaultSampleDuration: 512,
    });
    const media = segments(samples, 1);
    const file = concat([init, ...media]);
    const [errors, frames, sourceFrames, packets] = await Promise.all([
      decodeErrors(file),
      probeFrames(file),
      probeFrames(fixturePath(name)),
      probePackets(file, 'v'),
    ]);
    expect(errors).toEqual([]);
    expect(frames).toHaveLength(90);
    expect(frames.map((f) => f.pts)).toEqual(sourceFrames.map((f) => f.pts));
    expect(frames.map((f) => f.keyFrame)).toEqual(sourceFrames.map((f) => f.keyFrame));
    expect(packets.filter((p) => p.keyframe).map((p) => p.pts)).toEqual(
      samples.filter((s) => s.keyframe).map((s) => s.pts),
    );
    expect(packets.filter((p) => p.keyframe)).toHaveLength(3);
    expect(timing(readSamples(concat(media)))).toEqual(timing(samples));
  });

  it('describeInit reads back the codec, size, timescale and frame rate of a video init', () => {
    const parsed = parseAll(readFixture('portrait-720x1280.mp4'));
    const track = parsed.inits[0]![0]!;
    const init = buildVideoInitSegment({
      timescale: 90000,
      width: 720,
      height: 1280,
      avcC: track.description!,
      defaultSampleDuration: 3000,
    });
    const [info] = describeInit(init);
    expect(info).toMatchObject({
      kind: 'video',
      mp4TrackId: 1,
      codec: track.codec,
      supported: true,
      sampleEntry: 'avc1',
      timescale: 90000,
      width: 720,
      height: 1280,
      frameRate: 30,
    });
    expect(info!.description).toEqual(track.description);
    const avc3 = buildVideoInitSegment({
      timescale: 90000,
      width: 720,
      height: 1280,
      avcC: track.description!,
      codec: 'avc3',
    });
    expect(describeInit(avc3)[0]!.codec).toBe(track.codec.replace('avc1', 'avc3'));
  });

  it('the init is ftyp (iso6, cmfc) + moov with one track_ID 1 trak, empty sample tables and a trex', () => {
    const track = parseAll(readFixture('360p30.mp4')).inits[0]![0]!;
    const init = buildVideoInitSegment({ timescale: 15360, width: 640, height: 360, avcC: track.description! });
    const [ftyp, moov] = readBoxes(init);
    expect(new TextDecoder().decode(ftyp!.body)).toBe('iso6\0\0\0\0iso6cmfcmp41');
    const children = readBoxes(moov!.body);
    expect(children.map((b) => b.type)).toEqual(['mvhd', 'trak', 'mvex']);
    const trak = readBoxes(children[1]!.body);
    expect(u32(trak[0]!.body, 12)).toBe(1); // tkhd track_ID
    const trex = readBoxes(children[2]!.body)[0]!;
    expect(trex.type).toBe('trex');
    expect(u32(trex.body, 4)).toBe(1);
  });

  it('a media segment is moof(mfhd, traf(tfhd default-base-is-moof, tfdt v1, trun v1)) + mdat', () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4, 5);
    const segment = buildMediaSegment({
      sequenceNumber: 7,
      baseMediaDecodeTime: 2 ** 40,
      samples: [
        { data: a, duration: 512, keyframe: true, compositionOffset: 1024 },
        { data: b, duration: 512, keyframe: false, compositionOffset: -512 },
      ],
    });
    const [moof, mdat] = readBoxes(segment);
    expect(mdat!.body).toEqual(Uint8Array.of(1, 2, 3, 4, 5));
    const [mfhd, traf] = readBoxes(moof!.body);
    expect(u32(mfhd!.body, 4)).toBe(7);
    const [tfhd, tfdt, trun] = readBoxes(traf!.body);
    expect([tfhd!.type, tfdt!.type, trun!.type]).toEqual(['tfhd', 'tfdt', 'trun']);
    expect(u32(tfhd!.body, 0)).toBe(0x0002_0000);
    expect(u32(tfhd!.body, 4)).toBe(1);
    expect(tfdt!.body[0]).toBe(1);
    expect(u32(trun!.body, 0)).toBe(0x0100_0f01); // version 1; data offset, duration, size, flags, cto
    expect(u32(trun!.body, 8)).toBe(moof!.bytes.length + 8);
    expect(u32(trun!.body, 12 + 8)).toBe(SYNC_SAMPLE_FLAGS);
    expect(u32(trun!.body, 28 + 8)).toBe(NON_SYNC_SAMPLE_FLAGS);
    const read = readSamples(segment);
    expect(read.map((s) => [s.dts, s.pts, s.keyframe, s.data.length])).toEqual([
      [2 ** 40, 2 ** 40 + 1024, true, 3],
      [2 ** 40 + 512, 2 ** 40, false, 2],
    ]);
    const noCto = buildMediaSegment({
      sequenceNumber: 1,
      baseMediaDecodeTime: 0,
      samples: [{ data: a, duration: 1, keyframe: true }],
    });
    const noCtoTrun = readBoxes(readBoxes(readBoxes(readBoxes(noCto)[0]!.body)[1]!.body)[2]!.bytes)[0]!;
    expect(u32(noCtoTrun.body, 0) & 0x800).toBe(0);
  });

  it('AAC: re-muxed audio (10 samples per fragment) decodes cleanly with the source packet times', async () => {
    const name = '720p30-nob-aac.mp4';
    const parsed = parseAll(readFixture(name));
    const track = parsed.inits[0]!.find((t) => t.trackId === AUDIO_TRACK)!;
    const samples = samplesOf(parsed, AUDIO_TRACK);
    const init = buildAudioInitSegment({
      timescale: 48000,
      sampleRate: 48000,
      channelCount: 2,
      codec: 'aac',
      description: track.description!,
      bitrateBps: 128_000,
    });
    expect(describeInit(init)[0]).toMatchObject({
      kind: 'audio',
      codec: 'mp4a.40.2',
      sampleRate: 48000,
      channelCount: 2,
    });
    const file = concat([init, ...segments(samples, 10)]);
    const [errors, packets, source] = await Promise.all([
      decodeErrors(file),
      probePackets(file, 'a'),
      probePackets(fixturePath(name), 'a'),
    ]);
    expect(errors).toEqual([]);
    expect(packets.map((p) => p.pts)).toEqual(source.map((p) => p.pts));
  });

  it('Opus: an init from an OpusHead (as WebCodecs gives) decodes cleanly and reads back as opus with its dOps', async () => {
    const parsed = parseAll(readFixture('vp9-opus-240p.mp4'));
    const track = parsed.inits[0]!.find((t) => t.trackId === AUDIO_TRACK)!;
    const init = buildAudioInitSegment({
      timescale: 48000,
      sampleRate: 48000,
      channelCount: 2,
      codec: 'opus',
      description: opusHeadFromDOps(track.description!),
    });
    const [info] = describeInit(init);
    expect(info).toMatchObject({ codec: 'opus', sampleRate: 48000, channelCount: 2 });
    expect(info!.description).toEqual(track.description);
    const file = concat([init, ...segments(samplesOf(parsed, AUDIO_TRACK), 5)]);
    expect(await decodeErrors(file)).toEqual([]);
  });

  it('rejects bad arguments with TypeErrors that name the argument', () => {
    const avcC = parseAll(readFixture('360p30.mp4')).inits[0]![0]!.description!;
    expect(() => buildMediaSegment({ sequenceNumber: 1, baseMediaDecodeTime: 0, samples: [] })).toThrowError(
      /samples: expected a non-empty array/,
    );
    expect(() =>
      buildMediaSegment({
        sequenceNumber: 1,
        baseMediaDecodeTime: -1,
        samples: [{ data: avcC, duration: 1, keyframe: true }],
      }),
    ).toThrowError(TypeError);
    expect(() =>
      buildVideoInitSegment({ timescale: 90000, width: 640, height: 360, avcC: Uint8Array.of(9) }),
    ).toThrowError(/avcC: expected an AVCDecoderConfigurationRecord/);
    expect(() => buildVideoInitSegment({ timescale: 0, width: 640, height: 360, avcC })).toThrowError(/timescale/);
    expect(() =>
      buildAudioInitSegment({
        timescale: 48000,
        sampleRate: 48000,
        channelCount: 2,
        codec: 'aac',
        description: new Uint8Array(0),
      }),
    ).toThrowError(TypeError);
  });
});
