/**
 * Runs our decode-once ladder on a source file as fast as it can go (no pacing, nothing dropped)
 * and writes each rung to `<outDir>/<rung>.mp4` (init + fragments). Prints one JSON line of
 * figures. Like ffmpeg, it reads the source as the ladder consumes it (at most `AHEAD_S` of media
 * ahead of the slowest rung) and writes each rung's fragments as they come, so its memory is the
 * ladder's, not a copy of the input and outputs. Used by ladder-throughput.ts under /usr/bin/time; also usable alone:
 *   node --expose-gc --import tsx bench/run-ladder.ts <source.mp4> <outDir> [renditions] [--thread-cpu] [--chromium] [--frame-scaler] [--threads]
 * `--threads` runs the codecs in a codec thread (the threads backend, `--transcode-backend threads`).
 * `--chromium` runs the ladder's codecs in a headless Chromium (the chromium backend), launched
 * before the clock starts (a service keeps it running), and adds its processes' CPU seconds and
 * peak RSS (`chromium`). `--thread-cpu` adds the CPU seconds of every thread, grouped by what started it (the decoder,
 * each rung's encoder, Node itself): a V8 profile (`node --cpu-prof`) sees only the JS thread.
 */

import { closeSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.ts';
import { FragmentBroadcasterRegistry } from '../src/fragment/index.ts';
import { IngestManager } from '../src/ingest/index.ts';
import { ChromiumBrowser } from '../src/runtime/chromium.ts';
import { CodecThreads } from '../src/runtime/codec-threads.ts';
import { startWorkerThread } from '../src/runtime/worker-thread.ts';
import { ChromiumCodecs } from '../src/transcode/chromium/index.ts';
import type { VideoCodecs } from '../src/transcode/codecs.ts';
import { defaultLadder, resolveLadderArgs, TranscodeRunner } from '../src/transcode/index.ts';
import { SoftwareLadder, SoftwareTranscoderFactory } from '../src/transcode/ladder/index.ts';
import { bindWebCodecs } from '../src/transcode/webcodecs-binding.ts';
import { napiProvider } from '../src/webcodecs/index.ts';
import { GroupUsage, ThreadCpu } from './lib.ts';

const [source, outDir, renditions] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const threadCpu = process.argv.includes('--thread-cpu') ? new ThreadCpu() : undefined;
if (source === undefined || outDir === undefined) {
  console.error('usage: run-ladder.ts <source.mp4> <outDir> [720p,480p,240p]');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const ladderSpec = renditions === undefined ? defaultLadder() : resolveLadderArgs([renditions], () => '');

let browser: ChromiumBrowser | undefined;
let codecs: VideoCodecs;
let codecThreads: CodecThreads | undefined;
if (process.argv.includes('--chromium')) {
  const chromium = new ChromiumCodecs({ backend: 'chromium-software', hardwareAcceleration: 'no-preference' });
  browser = new ChromiumBrowser({
    executable: process.env['LVQR_CHROMIUM'],
    hardware: false,
    codecs: chromium,
    logger: silentLogger,
  });
  await browser.start();
  codecs = chromium;
} else if (process.argv.includes('--threads')) {
  codecThreads = new CodecThreads({ backend: 'software', hardwareAcceleration: 'no-preference', logger: silentLogger });
  // Its spare thread is started before the clock, as a service starts it.
  await codecThreads.start();
  codecs = codecThreads.codecs;
} else {
  // --frame-scaler: the frame scaler (`--transcode-scaler quality`) instead of each encoder scaling.
  codecs = bindWebCodecs((await napiProvider()).codecs, {
    backend: 'software',
    scaler: process.argv.includes('--frame-scaler') ? 'quality' : 'encoder',
    startWorker: startWorkerThread,
  });
}
const browserUsage = browser === undefined ? undefined : new GroupUsage(browser.pid!);
const ownCpu = process.cpuUsage();
const started = performance.now();
const registry = new FragmentBroadcasterRegistry({ broadcaster: { capacity: 1_000_000, maxBytes: 2 ** 32 } });
const gc = (globalThis as { gc?: (o?: unknown) => void }).gc;
const ladder = new SoftwareLadder({
  registry,
  codecs: threadCpu === undefined ? codecs : labelThreads(codecs, threadCpu),
  gc: gc === undefined ? undefined : () => gc({ type: 'minor' }),
  overflow: 'wait',
});
const handle = new TranscodeRunner()
  .withLadder(ladderSpec, (spec) => new SoftwareTranscoderFactory(spec, ladder))
  .install(registry);

/** Media the source may be ahead of the slowest rung, seconds (a GOP or two). */
const AHEAD_S = 4;
/** Each rung's output file, its frame count and media end (s), and when its reader is done. */
const outputs = new Map<
  string,
  { fd: number; file: string; bytes: number; frames: number; endS: number; done: Promise<void> }
>();
let rungsProgressed: () => void = () => {};
registry.onEntryCreated((_broadcast, track, bc) => {
  if (bc.origin.kind !== 'rendition' || track !== '0.mp4') return;
  const sub = bc.subscribe({ capacity: 1_000_000, maxBytes: 2 ** 32 });
  const file = join(outDir, `${bc.origin.rendition}.mp4`);
  const entry = { fd: openSync(file, 'w'), file, bytes: 0, frames: 0, endS: 0, done: Promise.resolve() };
  const write = (bytes: Uint8Array): void => {
    writeSync(entry.fd, bytes);
    entry.bytes += bytes.byteLength;
  };
  entry.done = (async () => {
    let init = false;
    for (;;) {
      const f = await sub.next();
      if (f === undefined) break;
      if (!init) {
        init = true;
        write(sub.meta.initSegment!);
      }
      write(f.payload);
      entry.frames += 1;
      entry.endS = (f.dts + f.duration) / (sub.meta.timescale ?? 90_000);
      rungsProgressed();
    }
    closeSync(entry.fd);
  })();
  outputs.set(bc.origin.rendition, entry);
});

const ingest = new IngestManager({ registry, graceMs: 0, idleTimeoutMs: 0 });
const connection = ingest.open('bench/source', 'internal');
// The source's media end so far (s), from a tap on its video track.
let sourceEndS = 0;
registry.onEntryCreated((broadcast, track, bc) => {
  if (broadcast !== 'bench/source' || track !== '0.mp4') return;
  const tap = bc.subscribe({ capacity: 1_000_000, maxBytes: 2 ** 32 });
  void (async () => {
    for (let f = await tap.next(); f !== undefined; f = await tap.next())
      sourceEndS = Math.max(sourceEndS, (f.dts + f.duration) / (tap.meta.timescale ?? 90_000));
  })();
});
const input = openSync(source, 'r');
const chunk = new Uint8Array(256 * 1024);
const slowestRungS = (): number =>
  outputs.size < ladderSpec.length ? 0 : Math.min(...[...outputs.values()].map((o) => o.endS));
for (;;) {
  const read = readSync(input, chunk, 0, chunk.byteLength, null);
  if (read === 0) break;
  // A copy: the ingest keeps the bytes it is handed.
  connection.push(chunk.slice(0, read));
  // Let the tap see what was pushed, then wait while the source is far enough ahead of the rungs.
  await new Promise((resolve) => setImmediate(resolve));
  while (sourceEndS - slowestRungS() > AHEAD_S) {
    await new Promise<void>((resolve) => {
      rungsProgressed = resolve;
    });
  }
}
closeSync(input);
const sourceFrames = registry.get('bench/source', '0.mp4')?.emittedCount ?? 0;
connection.end('eof');
// Wait for every rung task to finish (each flushes and ends its output), then for the readers.
while (handle.stats().length === 0 || handle.stats().some((t) => t.endedAtMs === undefined)) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await Promise.all([...outputs.values()].map((o) => o.done));
const stats = handle.stats();
await handle.close();
const threads = threadCpu?.stop();
const wallS = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(ownCpu);
const result: Record<string, unknown> = {
  sourceFragments: sourceFrames,
  wallS,
  /** This process alone, from the clock's start. */
  cpuS: (cpu.user + cpu.system) / 1e6,
  maxRssMb: process.resourceUsage().maxRSS / 1024,
  rungs: {},
};
if (browserUsage !== undefined) result['chromium'] = browserUsage.stop();
await browser?.stop();
await codecThreads?.close();
for (const [name, o] of outputs) {
  const task = stats.find((s) => s.rendition === name);
  (result['rungs'] as Record<string, unknown>)[name] = {
    file: o.file,
    frames: o.frames,
    bytes: o.bytes,
    dropped: task?.transcoderStats?.['droppedFrames'],
  };
}
if (threads !== undefined) result['threadCpuS'] = threads;
console.log(JSON.stringify(result));
process.exit(0);

/** `codecs` with the threads each decoder and encoder starts labelled in `cpu`. */
function labelThreads(codecs: VideoCodecs, cpu: ThreadCpu): VideoCodecs {
  return {
    backend: codecs.backend,
    createDecoder(config, onFrame, onError) {
      const decoder = cpu.label('decoder', () => codecs.createDecoder(config, onFrame, onError));
      let first = true;
      return {
        // The addon may start its decoding threads with the first sample.
        decode: (sample) => {
          if (!first) return decoder.decode(sample);
          first = false;
          return cpu.labelAsync('decoder', () => decoder.decode(sample));
        },
        flush: () => decoder.flush(),
        close: () => decoder.close(),
      };
    },
    createEncoder(config, onChunk, onError) {
      return cpu.label(`encoder ${config.width}x${config.height} (scale + x264)`, () =>
        codecs.createEncoder(config, onChunk, onError),
      );
    },
  };
}
