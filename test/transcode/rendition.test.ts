import { describe, expect, it } from 'vitest';
import { RenditionError } from '../../src/core/errors.ts';
import {
  createRendition,
  defaultLadder,
  ladderFromToml,
  ladderToToml,
  PassthroughTranscoder,
  PassthroughTranscoderFactory,
  PRESET_240P,
  PRESET_480P,
  PRESET_720P,
  renditionFromJson,
  renditionFromToml,
  renditionToJson,
  renditionToToml,
  resolveLadderArgs,
  validateRendition,
} from '../../src/transcode/index.ts';
import { frag } from '../support/fragments.ts';

describe('RenditionSpec', () => {
  it('presets match the plan defaults', () => {
    expect(PRESET_720P).toEqual({
      name: '720p',
      width: 1280,
      height: 720,
      videoBitrateKbps: 2500,
      audioBitrateKbps: 128,
    });
    expect(PRESET_480P).toEqual({
      name: '480p',
      width: 854,
      height: 480,
      videoBitrateKbps: 1200,
      audioBitrateKbps: 96,
    });
    expect(PRESET_240P).toEqual({ name: '240p', width: 426, height: 240, videoBitrateKbps: 400, audioBitrateKbps: 64 });
  });

  it('the default ladder is 720p, 480p, 240p, highest bitrate first', () => {
    const ladder = defaultLadder();
    expect(ladder.map((r) => r.name)).toEqual(['720p', '480p', '240p']);
    for (let i = 1; i < ladder.length; i++) {
      expect(ladder[i - 1]!.videoBitrateKbps).toBeGreaterThan(ladder[i]!.videoBitrateKbps);
    }
  });

  it('round-trips through JSON, and reads LVQR snake_case JSON', () => {
    const r = createRendition('custom', 1920, 1080, 5000, 192);
    expect(renditionFromJson(renditionToJson(r))).toEqual(r);
    expect(
      renditionFromJson(
        '{"name":"custom","width":1920,"height":1080,"video_bitrate_kbps":5000,"audio_bitrate_kbps":192}',
      ),
    ).toEqual(r);
  });

  it('reads a rendition TOML file with LVQR five keys and writes it back', () => {
    const text = 'name = "1080p"\nwidth = 1920\nheight = 1080\nvideo_bitrate_kbps = 5000\naudio_bitrate_kbps = 192\n';
    const r = renditionFromToml(text);
    expect(r).toEqual({ name: '1080p', width: 1920, height: 1080, videoBitrateKbps: 5000, audioBitrateKbps: 192 });
    expect(renditionFromToml(renditionToToml(r))).toEqual(r);
  });

  it('reads a ladder file with several renditions and orders it highest first', () => {
    const ladder = ladderFromToml(`
[[rendition]]
name = "low"
width = 640
height = 360
video_bitrate_kbps = 800
audio_bitrate_kbps = 64

[[rendition]]
name = "high"
width = 1920
height = 1080
video_bitrate_kbps = 6000
audio_bitrate_kbps = 160
`);
    expect(ladder.map((r) => r.name)).toEqual(['high', 'low']);
    expect(ladderFromToml(ladderToToml(ladder))).toEqual(ladder);
  });

  it.each([
    [{ ...PRESET_720P, name: 'Bad Name' }, /name must match/],
    [{ ...PRESET_720P, name: '-x' }, /name must match/],
    [{ ...PRESET_720P, width: 1279 }, /width must be even/],
    [{ ...PRESET_720P, height: 0 }, /height must be a positive integer/],
    [{ ...PRESET_720P, height: -2 }, /height must be a positive integer/],
    [{ ...PRESET_720P, videoBitrateKbps: 0 }, /videoBitrateKbps must be a positive integer/],
    [{ ...PRESET_720P, audioBitrateKbps: 1.5 }, /audioBitrateKbps must be a positive integer/],
    [{ ...PRESET_720P, width: '1280' }, /width must be a positive integer, got "1280"/],
  ])('rejects %o with a clear error', (spec, message) => {
    expect(() => validateRendition(spec)).toThrow(RenditionError);
    expect(() => validateRendition(spec)).toThrow(message);
  });

  it('rejects duplicate names, unknown keys, bad TOML and a ladder without renditions', () => {
    expect(() => resolveLadderArgs(['720p,720p'], () => '')).toThrow(/duplicate rendition name "720p"/);
    expect(() =>
      renditionFromToml('name = "x"\nwidth = 2\nheight = 2\nvideo_bitrate_kbps = 1\naudio_bitrate_kbps = 1\nfps = 3'),
    ).toThrow(/unknown key "fps"/);
    expect(() => renditionFromToml('name = ')).toThrow(/invalid TOML/);
    expect(() => ladderFromToml('x = 1')).toThrow(/\[\[rendition\]\]/);
  });

  it('resolves --transcode-rendition values: presets, comma lists and .toml files', () => {
    const files: Record<string, string> = {
      'hd.toml': 'name = "1080p"\nwidth = 1920\nheight = 1080\nvideo_bitrate_kbps = 5000\naudio_bitrate_kbps = 192\n',
    };
    const read = (p: string) => {
      const text = files[p];
      if (text === undefined) throw new Error('ENOENT');
      return text;
    };
    expect(resolveLadderArgs(['240p,720p', 'hd.toml'], read).map((r) => r.name)).toEqual(['1080p', '720p', '240p']);
    expect(() => resolveLadderArgs(['1440p'], read)).toThrow(/unknown preset "1440p"/);
    expect(() => resolveLadderArgs(['missing.toml'], read)).toThrow(/cannot read missing.toml/);
  });
});

describe('PassthroughTranscoderFactory', () => {
  const ctx = (track: string) => ({
    broadcast: 'live/demo',
    track,
    meta: { codec: 'avc1.640028', timescale: 90_000, initSegment: undefined },
    rendition: PRESET_720P,
    signal: new AbortController().signal,
  });

  it('builds for the video track and skips every other track', () => {
    const f = new PassthroughTranscoderFactory(PRESET_720P);
    expect(f.build(ctx('0.mp4'))).toBeInstanceOf(PassthroughTranscoder);
    for (const t of ['1.mp4', 'captions', 'catalog', '0-alt.mp4']) expect(f.build(ctx(t))).toBeUndefined();
  });

  it('has a stable name and exposes its rendition', () => {
    const f = new PassthroughTranscoderFactory(PRESET_240P);
    expect(f.name).toBe('passthrough');
    expect(f.rendition.width).toBe(426);
  });

  it('counts each fragment', () => {
    const t = new PassthroughTranscoder();
    for (let i = 0; i < 5; i++) t.onFragment(frag(i));
    expect(t.fragmentsSeen).toBe(5);
    expect(t.stats()).toEqual({ fragmentsSeen: 5, bytesSeen: 80 });
  });
});
