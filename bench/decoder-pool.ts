/**
 * What a backlog of decoded frames leaves behind: one 720p decoder of the WebCodecs addon decodes
 * 300 frames between readings of RSS, with `hold` of its frames held at once (as clones, or as
 * copies in ArrayBuffers) in the second step, then released; then the decoder is closed and a new
 * one decodes. Prints a Markdown table (bench/RESULTS.md, "Memory under overload"):
 *   MALLOC_MMAP_THRESHOLD_=131072 node --expose-gc --import tsx bench/decoder-pool.ts [--hold 60]
 */

import { H264Decoder, napiProvider, type VideoFramePort } from '../src/webcodecs/index.ts';
import { loopStream, makeH264Stream } from '../test/support/h264.ts';
import { arg } from './lib.ts';

type GcFn = (options?: { type?: 'major' | 'minor' }) => void;
const gc = (globalThis as { gc?: GcFn }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const hold = Number(arg('hold') ?? 60);
const STEP_FRAMES = 300;

const { codecs } = await napiProvider();
const stream = await makeH264Stream({ width: 1280, height: 720, frames: 60, gop: 30, bframes: 0 });
const samples = loopStream(stream, 20);

/** Full collections with turns of the event loop between them: the addon frees a frame's pixels in its wrapper's finalizer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
const rssMb = (): number => Math.round(process.memoryUsage().rss / 2 ** 20);

/** One run: the RSS after each step, holding frames as `kind`. */
async function run(kind: 'clones' | 'copies', count: number): Promise<number[]> {
  const held: Array<VideoFramePort | Uint8Array> = [];
  let holding = false;
  const make = (): H264Decoder =>
    new H264Decoder(codecs, {
      codec: stream.codec,
      description: stream.description,
      gc: () => gc!({ type: 'minor' }),
      onFrame: async (frame) => {
        if (!holding) return;
        if (kind === 'clones') {
          held.push(frame.clone());
        } else {
          const copy = new Uint8Array(frame.allocationSize());
          await frame.copyTo(copy);
          held.push(copy);
        }
      },
      onError: (error) => {
        throw error;
      },
    });
  let decoder: H264Decoder | undefined = make();
  let next = 0;
  const decode = async (frames: number): Promise<void> => {
    for (let i = 0; i < frames; i++) await decoder!.decode(samples[next++ % samples.length]!);
    await decoder!.flush();
  };
  const readings: number[] = [];
  await decode(STEP_FRAMES);
  await settle();
  readings.push(rssMb());
  holding = true;
  await decode(count);
  holding = false;
  readings.push(rssMb());
  for (const item of held.splice(0)) if (!(item instanceof Uint8Array)) item.close();
  await settle();
  await decode(STEP_FRAMES);
  await settle();
  readings.push(rssMb());
  decoder.close();
  decoder = undefined;
  await settle();
  readings.push(rssMb());
  decoder = make();
  next = 0;
  await decode(STEP_FRAMES);
  await settle();
  readings.push(rssMb());
  decoder.close();
  return readings;
}

const columns: Array<[string, number[]]> = [
  [`${hold} clones held`, await run('clones', hold)],
  ['2 clones held', await run('clones', 2)],
  [`${hold} copies held`, await run('copies', hold)],
];
const steps = [
  `decoding, one frame out at a time (${STEP_FRAMES} frames)`,
  'holding the frames',
  `released, collected, ${STEP_FRAMES} frames decoded more`,
  'decoder closed and collected',
  `a new decoder after ${STEP_FRAMES} frames`,
];
console.log(`RSS MB, one 1280x720 decoder (each column a process state of its own run, in order):\n`);
console.log(`| step | ${columns.map(([name]) => name).join(' | ')} |`);
console.log(`| --- | ${columns.map(() => '---').join(' | ')} |`);
steps.forEach((step, i) => {
  console.log(`| ${step} | ${columns.map(([, readings]) => readings[i]).join(' | ')} |`);
});
