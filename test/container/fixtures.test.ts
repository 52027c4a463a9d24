import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FIXTURES_DIR, fixtureNames, fixturePath, fixturesFile } from '../../testkit/fixtures.ts';
import { probePackets, probeStreams } from '../support/ffprobe.ts';

const run = promisify(execFile);

describe('media fixtures', () => {
  it('make-fixtures.sh runs exactly the commands recorded in fixtures.json, in its order', async () => {
    const { stdout } = await run('bash', [path.join(FIXTURES_DIR, 'make-fixtures.sh'), '--print']);
    const printed = stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t'));
    expect(printed.map(([name]) => name)).toEqual(fixtureNames());
    for (const [name, ...argv] of printed) {
      for (const arg of argv) expect(arg).toMatch(/^[\w.,:=+/-]+$/); // the recorded string is a valid shell command
      expect(argv.join(' ')).toBe(fixturesFile().clips.find((c) => c.name === name)!.command);
      expect(argv.at(-1)).toBe(name);
    }
  });

  it.each(fixturesFile().clips.map((c) => [c.name, c] as const))(
    '%s matches its recorded expected values',
    async (name, info) => {
      const [streams, packets] = await Promise.all([
        probeStreams(fixturePath(name)),
        probePackets(fixturePath(name), 'v'),
      ]);
      const video = streams.find((s) => s.codecType === 'video')!;
      const audio = streams.find((s) => s.codecType === 'audio')!;
      const [num, den] = video.rFrameRate.split('/').map(Number);
      expect({
        codec: video.codecName,
        profile: video.profile,
        level: video.level,
        width: video.width,
        height: video.height,
        fps: num! / den!,
        timescale: video.timescale,
        frameCount: packets.length,
        keyframeIndices: packets.flatMap((p, i) => (p.keyframe ? [i] : [])),
        keyframePts: packets.filter((p) => p.keyframe).map((p) => p.pts),
        bFrames: packets.some((p) => p.pts !== p.dts),
      }).toEqual(info.video);
      expect({ codec: audio.codecName, sampleRate: audio.sampleRate, channels: audio.channels }).toEqual(info.audio);
    },
  );
});
