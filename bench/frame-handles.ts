/**
 * What a queue of decoded frames leaves in the decoder's picture pool, with and without renewing
 * the handles of the frames it holds. One 720p decoder of the WebCodecs addon decodes 600 frames
 * with a young-generation collection every 5 (as the ladder runs), while the newest `hold` frames
 * are kept as clones in a queue (a rung falling `hold` frames behind), then 300 frames holding 2,
 * then a full collection. Each case runs in a process of its own; prints a Markdown table
 * (bench/RESULTS.md, "Memory under overload"):
 *   MALLOC_MMAP_THRESHOLD_=131072 node --expose-gc --import tsx bench/frame-handles.ts
 */

import { spawnSync } from 'node:child_process';
import { H264Decoder, napiProvider, type VideoFramePort } from '../src/webcodecs/index.ts';
import { loopStream, makeH264Stream } from '../test/support/h264.ts';
import { arg } from './lib.ts';

type GcFn = (options?: { type?: 'major' | 'minor' }) => void;
const HOLDS = [2, 4, 6, 8, 24];
const GC_EVERY = 5;

const child = arg('case');
if (child === undefined) {
  const rows: string[] = [];
  for (const hold of HOLDS) {
    const cells: string[] = [];
    for (const renew of [false, true]) {
      const out = spawnSync(
        process.execPath,
        ['--expose-gc', '--import', 'tsx', 'bench/frame-handles.ts', '--case', `${hold}:${renew ? 'renew' : 'keep'}`],
        { encoding: 'utf8' },
      );
      const line = out.stdout.trim().split('\n').at(-1) ?? '';
      if (out.status !== 0 || !line.startsWith('{')) throw new Error(`case ${hold}: ${out.stderr.slice(-2000)}`);
      const r = JSON.parse(line) as { holding: number; after: number; full: number };
      cells.push(`${r.holding} / ${r.after} / ${r.full}`);
    }
    rows.push(`| ${hold} | ${cells.join(' | ')} |`);
  }
  console.log(
    `RSS MB of one process, one 1280x720 decoder (collection every ${GC_EVERY} frames): while holding / after 300 frames holding 2 / after a full collection\n`,
  );
  console.log('| frames held | handles kept | handles renewed before each collection |');
  console.log('| --- | --- | --- |');
  for (const row of rows) console.log(row);
  process.exit(0);
}

const gc = (globalThis as { gc?: GcFn }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const [holdText, mode] = child.split(':');
const renew = mode === 'renew';
let hold = Number(holdText);
const { codecs } = await napiProvider();
const stream = await makeH264Stream({ width: 1280, height: 720, frames: 60, gop: 30, bframes: 0 });
const samples = loopStream(stream, 40);
const rssMb = (): number => Math.round(process.memoryUsage().rss / 2 ** 20);
const queue: VideoFramePort[] = [];
let decoded = 0;
const decoder = new H264Decoder(codecs, {
  codec: stream.codec,
  description: stream.description,
  onFrame: async (frame) => {
    queue.push(frame.clone());
    while (queue.length > hold) queue.shift()!.close();
    decoded += 1;
    if (decoded % GC_EVERY === 0) {
      if (renew) {
        for (let i = 0; i < queue.length; i++) {
          const fresh = queue[i]!.clone();
          queue[i]!.close();
          queue[i] = fresh;
        }
      }
      gc({ type: 'minor' });
    }
    // A turn of the event loop per frame, as the service's drain loops take.
    await new Promise((resolve) => setImmediate(resolve));
  },
  onError: (error) => {
    throw error;
  },
});
let next = 0;
const decode = async (frames: number): Promise<void> => {
  for (let i = 0; i < frames; i++) await decoder.decode(samples[next++ % samples.length]!);
  await decoder.flush();
};
await decode(600);
const holding = rssMb();
hold = 2;
await decode(300);
const after = rssMb();
for (let i = 0; i < 3; i++) {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 200));
}
console.log(JSON.stringify({ holding, after, full: rssMb() }));
decoder.close();
