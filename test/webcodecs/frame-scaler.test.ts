/**
 * The frame scaler on real frames of the WebCodecs addon, through its worker thread, judged by
 * ffmpeg: each rung picture against ffmpeg's Lanczos scale of the same source picture must score
 * at least what ffmpeg's own bicubic scaler scores (and well above its bilinear one, the encoders'
 * own). Then its faults, with a scripted thread: a failed run fails its pictures and the scaler,
 * pictures closed before their turn are not scaled, frames it was not made for are refused.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerThread } from '../../src/runtime/worker-thread.ts';
import { napiProvider, type VideoFramePort, type WebCodecs } from '../../src/webcodecs/index.ts';
import {
  FrameScaler,
  PendingPicture,
  type ScalerThread,
  type Size,
  scalerThread,
} from '../../src/webcodecs/scaler/index.ts';

const run = promisify(execFile);
const SOURCE: Size = { width: 1920, height: 1080 };
const RUNGS: Size[] = [
  { width: 1280, height: 720 },
  { width: 854, height: 480 },
  { width: 426, height: 240 },
];
const FRAMES = 6;

let codecs: WebCodecs;
let dir: string;
let raw: Uint8Array;
const frameBytes = (SOURCE.width * SOURCE.height * 3) / 2;

beforeAll(async () => {
  codecs = (await napiProvider()).codecs;
  dir = mkdtempSync(join(tmpdir(), 'lvqr-scaler-'));
  // Sharp synthetic content under noise, as the benchmark source.
  await run('ffmpeg', [
    ...['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=30,noise=alls=18:allf=t+u'],
    ...['-frames:v', String(FRAMES), '-pix_fmt', 'yuv420p', '-f', 'rawvideo', join(dir, 'source.yuv')],
  ]);
  raw = readFileSync(join(dir, 'source.yuv'));
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** The packed I420 planes of `frame`. */
async function planes(frame: VideoFramePort): Promise<Uint8Array> {
  const out = new Uint8Array((frame.codedWidth * frame.codedHeight * 3) / 2);
  await frame.copyTo(out);
  return out;
}

/** Average luma PSNR of raw I420 `file` (WxH) against the source scaled by ffmpeg with Lanczos. */
async function psnrY(file: string | undefined, size: Size, flags?: string): Promise<number> {
  const source = ['-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', '1920x1080', '-i', join(dir, 'source.yuv')];
  const reference = `scale=${size.width}:${size.height}:flags=lanczos,format=yuv420p,extractplanes=y`;
  const args =
    file === undefined
      ? [
          ...source,
          '-lavfi',
          `[0:v]split[a][b];[a]${reference}[ref];[b]scale=${size.width}:${size.height}:flags=${flags},format=yuv420p,extractplanes=y[d];[d][ref]psnr`,
        ]
      : [
          ...source,
          ...['-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${size.width}x${size.height}`, '-i', file],
          '-lavfi',
          `[0:v]${reference}[ref];[1:v]format=yuv420p,extractplanes=y[d];[d][ref]psnr`,
        ];
  const { stderr } = await run('ffmpeg', ['-nostdin', '-hide_banner', ...args, '-f', 'null', '-']);
  const value = /PSNR y:([\d.]+)/.exec(stderr)?.[1] ?? /average:([\d.]+)/.exec(stderr)?.[1];
  if (value === undefined) throw new Error(`no PSNR from ffmpeg: ${stderr.slice(-500)}`);
  return Number(value);
}

describe('frame scaler on real frames', () => {
  it('scales every frame to every rung in its worker, in order, at least as well as ffmpeg bicubic', async () => {
    const thread = scalerThread(startWorkerThread);
    expect(thread, 'this runtime runs the kernels').not.toBeNull();
    const failures: Error[] = [];
    const scaler = new FrameScaler({
      codecs,
      thread: thread!,
      source: SOURCE,
      sizes: RUNGS,
      onFailure: (e) => failures.push(e),
    });
    expect(scaler.plan.inputs.map((i) => i.kernel)).toEqual(['bicubic', 'lanczos3', 'lanczos3']);
    const outputs: Uint8Array[][] = RUNGS.map(() => []);
    const made: Array<Array<PendingPicture | VideoFramePort>> = [];
    for (let i = 0; i < FRAMES; i++) {
      const frame = new codecs.VideoFrame(raw.subarray(i * frameBytes, (i + 1) * frameBytes), {
        format: 'I420',
        codedWidth: SOURCE.width,
        codedHeight: SOURCE.height,
        timestamp: i * 33_333,
        duration: 33_333,
      });
      // The source's own size comes back as a clone.
      const pictures = scaler.scale(frame, [...RUNGS, SOURCE]);
      frame.close();
      expect(pictures).toBeDefined();
      made.push(pictures!);
    }
    expect(thread!.mode).toBe('worker');
    for (const [i, pictures] of made.entries()) {
      for (const [r, picture] of pictures.entries()) {
        expect(picture.timestamp).toBe(i * 33_333);
        const frame = picture instanceof PendingPicture ? await picture.picture() : picture;
        const size = RUNGS[r] ?? SOURCE;
        expect([frame.codedWidth, frame.codedHeight, frame.duration]).toEqual([size.width, size.height, 33_333]);
        if (r < RUNGS.length) outputs[r]!.push(await planes(frame));
        picture.close();
      }
    }
    scaler.close();
    expect(failures).toEqual([]);
    for (const [r, size] of RUNGS.entries()) {
      const file = join(dir, `${size.height}.yuv`);
      writeFileSync(file, Buffer.concat(outputs[r]!));
      const ours = await psnrY(file, size);
      const bicubic = await psnrY(undefined, size, 'bicubic');
      const bilinear = await psnrY(undefined, size, 'bilinear');
      console.log(
        `[scaler] ${size.height}p PSNR-Y vs Lanczos: ours ${ours}, ffmpeg bicubic ${bicubic}, bilinear ${bilinear}`,
      );
      expect(ours, `${size.height}p`).toBeGreaterThanOrEqual(bicubic);
      expect(ours, `${size.height}p`).toBeGreaterThan(bilinear + 3);
    }
  });
});

/** A scripted thread: each run waits for the test to answer it. */
function scriptedThread(): {
  thread: ScalerThread;
  runs: Array<{ slot: number; outputs: number[]; answer: (error?: Error) => void }>;
  closed: number[];
} {
  const runs: Array<{ slot: number; outputs: number[]; answer: (error?: Error) => void }> = [];
  const closed: number[] = [];
  const thread = {
    mode: 'worker',
    open: () => 7,
    run: (_id: number, slot: number, outputs: number[]) =>
      new Promise<void>((resolve, reject) => {
        runs.push({ slot, outputs, answer: (error) => (error === undefined ? resolve() : reject(error)) });
      }),
    close: (id: number) => closed.push(id),
  } as unknown as ScalerThread;
  return { thread, runs, closed };
}

function blankFrame(size: Size, timestamp: number): VideoFramePort {
  return new codecs.VideoFrame(new Uint8Array((size.width * size.height * 3) / 2), {
    format: 'I420',
    codedWidth: size.width,
    codedHeight: size.height,
    timestamp,
  });
}

const until = async (check: () => boolean): Promise<void> => {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setImmediate(resolve));
  }
};

describe('frame scaler faults', () => {
  const small: Size = { width: 64, height: 36 };
  const outs: Size[] = [
    { width: 32, height: 18 },
    { width: 16, height: 8 },
  ];

  it('a failed run fails its pictures and the scaler, once; later frames are refused (callers fall back)', async () => {
    const { thread, runs, closed } = scriptedThread();
    const failures: Error[] = [];
    const scaler = new FrameScaler({ codecs, thread, source: small, sizes: outs, onFailure: (e) => failures.push(e) });
    const frame = blankFrame(small, 0);
    const first = scaler.scale(frame, outs)!;
    const second = scaler.scale(frame, outs)!;
    await until(() => runs.length === 2);
    runs[0]!.answer(new Error('kernel trap'));
    await expect((first[0] as PendingPicture).picture()).rejects.toThrow(/kernel trap/);
    await expect((first[1] as PendingPicture).picture()).rejects.toThrow(/kernel trap/);
    runs[1]!.answer();
    // The second run had been posted already and succeeded: its pictures are good.
    expect((await (second[0] as PendingPicture).picture()).codedWidth).toBe(32);
    expect(failures.map((e) => e.message)).toEqual(['kernel trap']);
    expect(scaler.failed).toBe(true);
    expect(scaler.scale(frame, outs)).toBeUndefined();
    frame.close();
    for (const p of [...first, ...second]) p.close();
    scaler.close();
    expect(closed).toEqual([7]);
  });

  it('pictures closed before their turn are not scaled; a run scales only the outputs still wanted', async () => {
    const { thread, runs } = scriptedThread();
    const scaler = new FrameScaler({ codecs, thread, source: small, sizes: outs, slots: 1 });
    const frame = blankFrame(small, 0);
    const a = scaler.scale(frame, outs)!;
    const b = scaler.scale(frame, outs)!;
    const c = scaler.scale(frame, outs)!;
    frame.close();
    // b is dropped whole (a rung queue overflow), c keeps only its small output.
    for (const p of b) p.close();
    c[0]!.close();
    await until(() => runs.length === 1);
    expect(runs[0]!.outputs).toEqual([0, 1]);
    runs[0]!.answer();
    await until(() => runs.length === 2);
    // The 16x8 output is scaled from the 32x16 one, which runs first even though no one wants it.
    expect(runs[1]!.outputs).toEqual([0, 1]);
    runs[1]!.answer();
    const picture = await (c[1] as PendingPicture).picture();
    expect([picture.codedWidth, picture.codedHeight]).toEqual([16, 8]);
    for (const p of [...a, ...c]) p.close();
    scaler.close();
  });

  it('refuses frames of another size or format, and sizes it was not made for', () => {
    const { thread } = scriptedThread();
    const scaler = new FrameScaler({ codecs, thread, source: small, sizes: outs });
    const other = blankFrame({ width: 96, height: 54 }, 0);
    expect(scaler.scale(other, outs)).toBeUndefined();
    other.close();
    const frame = blankFrame(small, 0);
    expect(scaler.scale(frame, [{ width: 20, height: 10 }])).toBeUndefined();
    const rgba = new codecs.VideoFrame(new Uint8Array(64 * 36 * 4), {
      format: 'RGBA',
      codedWidth: 64,
      codedHeight: 36,
      timestamp: 0,
    });
    expect(scaler.scale(rgba, outs)).toBeUndefined();
    rgba.close();
    frame.close();
    scaler.close();
  });
});
