/**
 * The ladder with the frame scaler (the default) against the encoders' own bilinear scaling, on a
 * real 720p publisher: the same rungs and frame counts either way, `/api/v1/transcode`'s source
 * status names the scaler in use, and ffmpeg finds the frame scaler's 480p and 240p rungs closer
 * to a Lanczos scale of the source than the encoders' (judged after encoding, at the rungs' own
 * bitrates, as a viewer gets them).
 */

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startWorkerThread } from '../../src/runtime/worker-thread.ts';
import { bindWebCodecs } from '../../src/transcode/webcodecs-binding.ts';
import { napiProvider } from '../../src/webcodecs/index.ts';
import { fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { withFile } from '../support/ffprobe.ts';
import { createHarness, publish, sessionFile } from '../support/ladder.ts';

const run = promisify(execFile);
const CLIP = '720p30-nob-aac.mp4';
const RUNGS = [
  { name: '480p', width: 854, height: 480, videoBitrateKbps: 1200, audioBitrateKbps: 96 },
  { name: '240p', width: 426, height: 240, videoBitrateKbps: 400, audioBitrateKbps: 64 },
];

/** Average luma PSNR of `rung` against the fixture scaled to its size with Lanczos. */
async function psnrY(rung: Uint8Array, width: number, height: number): Promise<number> {
  return withFile(rung, async (file) => {
    const graph =
      `[1:v]scale=${width}:${height}:flags=lanczos,format=yuv420p,setpts=PTS-STARTPTS[ref];` +
      '[0:v]format=yuv420p,setpts=PTS-STARTPTS[dist];[dist][ref]psnr';
    const { stderr } = await run('ffmpeg', [
      ...['-nostdin', '-hide_banner', '-i', file, '-i', fixturePath(CLIP), '-an', '-lavfi', graph, '-f', 'null', '-'],
    ]);
    const value = /PSNR y:([\d.]+)/.exec(stderr)?.[1];
    if (value === undefined) throw new Error(`no PSNR from ffmpeg: ${stderr.slice(-400)}`);
    return Number(value);
  });
}

async function ladderWith(scaler: 'quality' | 'encoder'): Promise<{
  status: string | undefined;
  rungs: Map<string, { frames: number; psnr: number }>;
}> {
  const codecs = bindWebCodecs((await napiProvider()).codecs, {
    backend: 'software',
    scaler,
    startWorker: startWorkerThread,
  });
  const harness = await createHarness({ codecs, renditions: RUNGS });
  try {
    const broadcast = `live/scaler-${scaler}`;
    await publish(harness.ingest, broadcast, [{ bytes: readFixture(CLIP), durationS: 0 }]);
    await harness.settled(broadcast);
    const rungs = new Map<string, { frames: number; psnr: number }>();
    for (const r of RUNGS) {
      const output = harness.outputs.get(`${broadcast}/${r.name}`);
      expect(output?.sessions.length, `${scaler} ${r.name}`).toBe(1);
      const session = output!.sessions[0]!;
      rungs.set(r.name, {
        frames: session.fragments.length,
        psnr: await psnrY(sessionFile(session), r.width, r.height),
      });
    }
    return { status: harness.lastStatus.get(broadcast)?.scaler, rungs };
  } finally {
    await harness.close();
  }
}

describe('ladder scaling', () => {
  it('the frame scaler makes sharper rungs than the encoders scaling for themselves, frame for frame', async () => {
    const quality = await ladderWith('quality');
    const encoder = await ladderWith('encoder');
    expect(quality.status).toBe('quality');
    expect(encoder.status).toBe('encoder');
    for (const r of RUNGS) {
      const q = quality.rungs.get(r.name)!;
      const e = encoder.rungs.get(r.name)!;
      console.log(
        `[scaler] ${r.name}: frame scaler ${q.psnr} dB (${q.frames} frames), encoders ${e.psnr} dB (${e.frames} frames)`,
      );
      // One CMAF fragment per frame: every source frame in both.
      expect(q.frames).toBe(90);
      expect(e.frames).toBe(90);
      expect(q.psnr, r.name).toBeGreaterThan(e.psnr + 0.3);
    }
  });
});
