/**
 * Runs the audio ladder alone on a source file's AAC track as fast as it can go: decode once, AAC-LC
 * at each distinct audio bitrate of the default ladder (128/96/64 kb/s) and Opus at 64 kb/s. Prints
 * one JSON line: the source's audio seconds, the CPU seconds the process spent from the first byte
 * ingested to the last rendition ended (all threads, `process.cpuUsage`; the file's demuxing
 * included), and the packets of each rendition. Used by ladder-throughput.ts; also usable alone:
 *   node --expose-gc --import tsx bench/run-audio-ladder.ts <source.mp4>
 */

import { readFileSync } from 'node:fs';
import { FragmentBroadcasterRegistry } from '../src/fragment/index.ts';
import { IngestManager } from '../src/ingest/index.ts';
import { AudioLadder, AudioRenditionFactory, audioRenditionTargets } from '../src/transcode/audio/index.ts';
import { bindAudioWebCodecs } from '../src/transcode/audio-webcodecs-binding.ts';
import { defaultLadder, TranscodeRunner } from '../src/transcode/index.ts';
import { napiProvider } from '../src/webcodecs/index.ts';

const [source] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (source === undefined) {
  console.error('usage: run-audio-ladder.ts <source.mp4>');
  process.exit(2);
}
const codecs = bindAudioWebCodecs((await napiProvider()).codecs);
if (codecs === undefined) throw new Error('the WebCodecs addon has no audio classes');
const registry = new FragmentBroadcasterRegistry({ broadcaster: { capacity: 1_000_000, maxBytes: 2 ** 32 } });
const ladder = new AudioLadder({ registry, codecs });
const runner = new TranscodeRunner();
for (const target of audioRenditionTargets(defaultLadder(), 64))
  runner.withFactory(new AudioRenditionFactory(target, ladder));
const handle = runner.install(registry);

// The source's audio seconds, counted from its own track.
let audioTicks = 0;
let timescale = 48_000;
registry.onEntryCreated((broadcast, track, bc) => {
  if (broadcast !== 'bench/audio' || track !== '1.mp4') return;
  timescale = bc.meta.timescale;
  const sub = bc.subscribe({ capacity: 1_000_000, maxBytes: 2 ** 32 });
  void (async () => {
    for (let f = await sub.next(); f !== undefined; f = await sub.next()) audioTicks += f.duration;
  })();
});

const bytes = new Uint8Array(readFileSync(source));
const started = performance.now();
const cpu = process.cpuUsage();
const ingest = new IngestManager({ registry, graceMs: 0, idleTimeoutMs: 0 });
const connection = ingest.open('bench/audio', 'internal');
for (let offset = 0; offset < bytes.length; offset += 256 * 1024) {
  connection.push(bytes.subarray(offset, Math.min(bytes.length, offset + 256 * 1024)));
}
connection.end('eof');
while (handle.stats().length === 0 || handle.stats().some((t) => t.endedAtMs === undefined)) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const used = process.cpuUsage(cpu);
const wallS = (performance.now() - started) / 1000;
const stats = handle.stats();
await handle.close();
console.log(
  JSON.stringify({
    sourceS: audioTicks / timescale,
    cpuS: (used.user + used.system) / 1e6,
    wallS,
    renditions: Object.fromEntries(stats.map((s) => [s.rendition, s.transcoderStats?.['framesOut']])),
  }),
);
process.exit(0);
