/**
 * The silent audio frames decode to digital silence, with the expected number of samples, with
 * ffmpeg's decoders (its native AAC and Opus ones, and libopus); codecs and layouts without one get none.
 */

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildAudioInitSegment, buildMediaSegment } from '../../src/container/cmaf-writer.ts';
import { describeInit } from '../../src/container/init-info.ts';
import { silentAudioFrame } from '../../src/container/silence.ts';
import { concatBytes } from '../../src/core/bytes.ts';
import { withFile } from '../support/ffprobe.ts';

const exec = promisify(execFile);

const SAMPLE_RATE_INDEX: Record<number, number> = { 44100: 4, 48000: 3 };

/** AudioSpecificConfig: object type, sampling frequency index, channel configuration. */
function asc(objectType: number, rate: number, channels: number): Uint8Array {
  const index = SAMPLE_RATE_INDEX[rate]!;
  return Uint8Array.of((objectType << 3) | (index >> 1), ((index & 1) << 7) | (channels << 3));
}

/** An `OpusHead` (mapping family 0, or 1 with one stream per channel). */
function opusHead(channels: number, family = 0): Uint8Array {
  const head = new Uint8Array(family === 0 ? 19 : 21 + channels);
  head.set(new TextEncoder().encode('OpusHead'));
  const view = new DataView(head.buffer);
  head[8] = 1;
  head[9] = channels;
  view.setUint16(10, 312, true);
  view.setUint32(12, 48_000, true);
  head[18] = family;
  if (family !== 0) {
    head[19] = channels;
    head[20] = 0;
    for (let i = 0; i < channels; i++) head[21 + i] = i;
  }
  return head;
}

/** An init and a segment of `count` silent frames from that init's description; undefined without a silent frame. */
function silentFile(init: Uint8Array, count: number): { file: Uint8Array; frameTicks: number } | undefined {
  const track = describeInit(init)[0]!;
  const frame = silentAudioFrame(track);
  if (frame === undefined) return undefined;
  const samples = Array.from({ length: count }, () => ({ data: frame.bytes, duration: frame.ticks, keyframe: true }));
  return {
    file: concatBytes([init, buildMediaSegment({ sequenceNumber: 1, baseMediaDecodeTime: 0, samples })]),
    frameTicks: frame.ticks,
  };
}

/** Decodes to 16-bit PCM at the stream's own rate and layout; returns the samples and ffmpeg's error lines. */
async function decode(file: Uint8Array, decoder?: string): Promise<{ pcm: Int16Array; errors: string[] }> {
  return withFile(file, async (path) => {
    const args = [
      '-nostdin',
      '-v',
      'error',
      ...(decoder === undefined ? [] : ['-c:a', decoder]),
      '-i',
      path,
      '-f',
      's16le',
      '-',
    ];
    const { stdout, stderr } = await exec('ffmpeg', args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    const pcm = new Int16Array(stdout.buffer, stdout.byteOffset, Math.floor(stdout.byteLength / 2));
    return {
      pcm,
      errors: stderr
        .toString()
        .split('\n')
        .filter((l) => l.trim() !== ''),
    };
  });
}

describe('silent audio frames', () => {
  for (const rate of [44_100, 48_000]) {
    for (const channels of [1, 2]) {
      it(`AAC-LC ${channels === 1 ? 'mono' : 'stereo'} at ${rate} Hz: 1024 zero samples per frame`, async () => {
        const init = buildAudioInitSegment({
          timescale: rate,
          sampleRate: rate,
          channelCount: channels,
          codec: 'aac',
          description: asc(2, rate, channels),
        });
        const made = silentFile(init, 40)!;
        expect(made.frameTicks).toBe(1024);
        const { pcm, errors } = await decode(made.file);
        expect(errors).toEqual([]);
        // ffmpeg drops nothing here (no edit list): every frame's 1024 samples per channel.
        expect(pcm.length).toBe(40 * 1024 * channels);
        expect(pcm.every((s) => s === 0)).toBe(true);
      });
    }
  }

  for (const channels of [1, 2]) {
    for (const decoder of ['opus', 'libopus']) {
      it(`Opus ${channels === 1 ? 'mono' : 'stereo'} (${decoder}): 20 ms of zeros per frame`, async () => {
        const init = buildAudioInitSegment({
          timescale: 48_000,
          sampleRate: 48_000,
          channelCount: channels,
          codec: 'opus',
          description: opusHead(channels),
        });
        const made = silentFile(init, 50)!;
        expect(made.frameTicks).toBe(960);
        const { pcm, errors } = await decode(made.file, decoder);
        expect(errors).toEqual([]);
        // 50 frames less the pre-skip (312 samples) that the decoder trims.
        expect(pcm.length).toBe((50 * 960 - 312) * channels);
        expect(pcm.every((s) => s === 0)).toBe(true);
      });
    }
  }

  it('a frame lasts its samples in the track timescale, whatever that is', () => {
    const init = buildAudioInitSegment({
      timescale: 90_000,
      sampleRate: 48_000,
      channelCount: 2,
      codec: 'aac',
      description: asc(2, 48_000, 2),
    });
    expect(silentAudioFrame(describeInit(init)[0]!)?.ticks).toBe(1920);
  });

  it('none for HE-AAC, for more than two channels and for multistream Opus', () => {
    const heAac = buildAudioInitSegment({
      timescale: 48_000,
      sampleRate: 48_000,
      channelCount: 2,
      codec: 'aac',
      description: asc(5, 48_000, 2),
    });
    const surround = buildAudioInitSegment({
      timescale: 48_000,
      sampleRate: 48_000,
      channelCount: 6,
      codec: 'aac',
      description: asc(2, 48_000, 6),
    });
    const multistream = buildAudioInitSegment({
      timescale: 48_000,
      sampleRate: 48_000,
      channelCount: 2,
      codec: 'opus',
      description: opusHead(2, 1),
    });
    for (const init of [heAac, surround, multistream]) expect(silentAudioFrame(describeInit(init)[0]!)).toBeUndefined();
  });
});
