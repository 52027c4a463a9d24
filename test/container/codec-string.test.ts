import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  aacCodecString,
  avcCodecString,
  avcCodecStringFromSps,
  describeInit,
  dOpsFromOpusHead,
  hevcCodecString,
  opusHeadFromDOps,
  parseAudioSpecificConfig,
  parseAvcC,
  parseDOps,
  parseHvcC,
  parseSps,
} from '../../src/container/index.ts';
import { ContainerError } from '../../src/core/errors.ts';
import { fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { ffmpeg, hasEncoder, probeStreams } from '../support/ffprobe.ts';

const H264_CLIPS = [
  '720p30-nob-aac.mp4',
  '720p30-bframes-aac.mp4',
  'portrait-720x1280.mp4',
  '720p25.mp4',
  '360p30.mp4',
];
const PROFILE_IDC: Record<string, number> = {
  'Constrained Baseline': 66,
  Baseline: 66,
  Main: 77,
  High: 100,
  'High 4:4:4 Predictive': 244,
};

function hvcC(byte1: number, compat: number, constraints: number[], level: number): Uint8Array {
  const out = new Uint8Array(23);
  const v = new DataView(out.buffer);
  out[0] = 1;
  out[1] = byte1;
  v.setUint32(2, compat);
  out.set(constraints, 6);
  out[12] = level;
  out.set([0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x00], 13);
  return out;
}

describe('codec strings', () => {
  it.each(H264_CLIPS)('%s: the avc1 string has the profile and level ffprobe reports', async (name) => {
    const [video] = describeInit(readFixture(name));
    const stream = (await probeStreams(fixturePath(name))).find((s) => s.codecType === 'video')!;
    const config = parseAvcC(video!.description!);
    expect(video!.codec).toBe(avcCodecString(video!.description!));
    expect(video!.codec).toMatch(/^avc1\.[0-9a-f]{6}$/);
    expect(config.profileIdc).toBe(PROFILE_IDC[stream.profile!]);
    expect(config.levelIdc).toBe(stream.level);
    if (stream.profile === 'Constrained Baseline') expect(config.profileCompatibility & 0x40).toBe(0x40); // constraint_set1
    expect(avcCodecStringFromSps(config.sps[0]!)).toBe(video!.codec);
    expect(config.nalLengthSize).toBe(4);
    expect(config.pps).toHaveLength(1);
  });

  it.each(H264_CLIPS)('%s: the SPS gives the picture size ffprobe reports (with frame cropping)', async (name) => {
    const [video] = describeInit(readFixture(name));
    const stream = (await probeStreams(fixturePath(name))).find((s) => s.codecType === 'video')!;
    const sps = parseSps(parseAvcC(video!.description!).sps[0]!);
    expect([sps.width, sps.height]).toEqual([stream.width, stream.height]);
    expect([video!.width, video!.height]).toEqual([stream.width, stream.height]);
  });

  it('mp4a.40.2 for the AAC-LC fixtures, and opus for the Opus one', () => {
    const [, aac] = describeInit(readFixture('720p30-nob-aac.mp4'));
    expect(aac!.codec).toBe('mp4a.40.2');
    expect(aacCodecString(aac!.description!)).toBe('mp4a.40.2');
    const [, opus] = describeInit(readFixture('vp9-opus-240p.mp4'));
    expect(opus).toMatchObject({ codec: 'opus', supported: true, channelCount: 2, sampleRate: 48000 });
  });

  it('reads AudioSpecificConfig object types, including SBR and the 5-bit escape above 30', () => {
    expect(parseAudioSpecificConfig(Uint8Array.of(0x12, 0x10))).toEqual({
      objectType: 2,
      sampleRate: 44100,
      channelConfiguration: 2,
    });
    expect(parseAudioSpecificConfig(Uint8Array.of(0x2b, 0x11, 0x88))).toEqual({
      objectType: 5,
      sampleRate: 48000, // explicit SBR: the extension rate
      channelConfiguration: 2,
    });
    expect(aacCodecString(Uint8Array.of(0x2b, 0x11, 0x88))).toBe('mp4a.40.5');
    expect(aacCodecString(Uint8Array.of(0xf9, 0x46, 0x40))).toBe('mp4a.40.42'); // escape 31 + 10
    expect(() => aacCodecString(Uint8Array.of(0x12))).toThrowError(ContainerError);
  });

  it('builds hvc1/hev1 strings per ISO 14496-15 Annex E from hvcC bytes', () => {
    expect(hevcCodecString(hvcC(0x01, 0x6000_0000, [0x90, 0, 0, 0, 0, 0], 93))).toBe('hvc1.1.6.L93.90');
    expect(hevcCodecString(hvcC(0x22, 0x2000_0000, [0xb0, 0, 0, 0, 0, 0], 120))).toBe('hvc1.2.4.H120.B0');
    expect(hevcCodecString(hvcC(0x41, 0x6000_0000, [0x90, 0, 0, 0, 0, 0], 93), 'hev1')).toBe('hev1.A1.6.L93.90');
    expect(hevcCodecString(hvcC(0x01, 0x6000_0000, [0x90, 0, 0, 0x01, 0, 0], 93))).toBe('hvc1.1.6.L93.90.00.00.01');
    expect(hevcCodecString(hvcC(0x01, 0x6000_0000, [0, 0, 0, 0, 0, 0], 93))).toBe('hvc1.1.6.L93');
    expect(parseHvcC(hvcC(0x01, 0x6000_0000, [0x90, 0, 0, 0, 0, 0], 93)).nalLengthSize).toBe(4);
  });

  it('the HEVC fixture gets hvc1.<profile>.<compat>.L<level> with ffprobe profile and level', async () => {
    const [video] = describeInit(readFixture('hevc-360p30.mp4'));
    const stream = (await probeStreams(fixturePath('hevc-360p30.mp4'))).find((s) => s.codecType === 'video')!;
    expect(stream.profile).toBe('Main');
    expect(video!.codec).toBe(`hvc1.1.6.L${stream.level}.90`); // x265: progressive + frame-only constraint flags
    expect([video!.width, video!.height]).toEqual([640, 360]);
  });

  it('converts Opus dOps to OpusHead and back', () => {
    const [, opus] = describeInit(readFixture('vp9-opus-240p.mp4'));
    const dOps = opus!.description!;
    const head = opusHeadFromDOps(dOps);
    expect(new TextDecoder().decode(head.subarray(0, 8))).toBe('OpusHead');
    expect(head[8]).toBe(1);
    expect(head[9]).toBe(2);
    const config = parseDOps(dOps);
    expect(new DataView(head.buffer).getUint16(10, true)).toBe(config.preSkip);
    expect(dOpsFromOpusHead(head)).toEqual(dOps);
  });

  describe('SPS parsing of less common encodings', () => {
    let dir = '';
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'lvqr-sps-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it.each([
      ['High with scaling matrices, cropped 176x100', 'yuv420p', '176x100', 100],
      ['High 4:4:4 with scaling matrices and odd size 175x99', 'yuv444p', '175x99', 244],
    ])('%s', async (_, pixFmt, size, profileIdc) => {
      const file = path.join(dir, `${pixFmt}.mp4`);
      const [w, h] = size.split('x');
      const source = `testsrc2=size=176x100:rate=10,format=${pixFmt},crop=${w}:${h}:0:0`;
      await ffmpeg([
        ...['-f', 'lavfi', '-i', source, '-frames:v', '2', '-c:v', 'libx264'],
        ...['-x264-params', 'cqm=jvt', '-pix_fmt', pixFmt, '-threads', '1'],
        ...['-movflags', 'frag_keyframe+empty_moov', '-f', 'mp4', file],
      ]);
      const [video] = describeInit(new Uint8Array(await readFile(file)));
      const sps = parseSps(parseAvcC(video!.description!).sps[0]!);
      const stream = (await probeStreams(file))[0]!;
      expect(sps.profileIdc).toBe(profileIdc);
      expect(sps.chromaFormatIdc).toBe(pixFmt === 'yuv444p' ? 3 : 1);
      expect(`${sps.width}x${sps.height}`).toBe(size);
      expect([sps.width, sps.height]).toEqual([stream.width, stream.height]);
    });

    it('libx265 is present, so the HEVC fixture exercises a real encoder', async () => {
      expect(await hasEncoder('libx265')).toBe(true);
    });
  });

  it('malformed configuration records throw ContainerError', () => {
    expect(() => parseAvcC(Uint8Array.of(1, 0x64))).toThrowError(ContainerError);
    expect(() => parseSps(Uint8Array.of(0x67, 0x64, 0x00))).toThrowError(ContainerError);
    expect(() => parseSps(Uint8Array.of(0x68, 0x64, 0x00, 0x1f))).toThrowError(/not an SPS/);
    expect(() => parseHvcC(Uint8Array.of(1, 2, 3))).toThrowError(ContainerError);
    expect(() => parseDOps(Uint8Array.of(0, 2))).toThrowError(ContainerError);
  });
});
