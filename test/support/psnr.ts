/** Picture fidelity judged by ffmpeg: per-frame PSNR of a rung against its source scaled to the rung's size. */

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type MediaInput, withFile } from './ffprobe.ts';

const run = promisify(execFile);

/** PSNR of one frame, dB (luma and the three-plane average); `Infinity` for identical pictures. */
export type FramePsnr = { y: number; average: number };

function decibels(value: string | undefined): number {
  if (value === undefined) throw new Error('psnr stats line without a value');
  return value === 'inf' ? Number.POSITIVE_INFINITY : Number(value);
}

/**
 * Per-frame PSNR of `distorted` (a rung) against `reference` (the source file) scaled to
 * `width`x`height` with ffmpeg's bicubic scaler. Frames are paired in order after both streams are
 * started at zero, so `distorted` must carry every source frame (one per source frame).
 */
export async function psnrPerFrame(
  distorted: MediaInput,
  reference: string,
  width: number,
  height: number,
): Promise<FramePsnr[]> {
  return withFile(distorted, async (file) => {
    const graph =
      `[1:v]scale=${width}:${height}:flags=bicubic,setpts=PTS-STARTPTS[ref];` +
      '[0:v]setpts=PTS-STARTPTS[dist];[dist][ref]psnr=stats_file=-';
    const { stdout } = await run(
      'ffmpeg',
      ['-nostdin', '-v', 'error', '-i', file, '-i', reference, '-lavfi', graph, '-f', 'null', '-'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return stdout
      .split('\n')
      .filter((line) => line.startsWith('n:'))
      .map((line) => {
        const fields = new Map(line.split(' ').map((kv) => kv.split(':') as [string, string]));
        return { y: decibels(fields.get('psnr_y')), average: decibels(fields.get('psnr_avg')) };
      });
  });
}
