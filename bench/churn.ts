/**
 * Session churn: what a publisher session leaves behind once it ends. The service runs in this
 * process (HTTP, ingest, the default ladder with the audio ladder, LL-HLS); the first 3 s of the
 * paced 720p30 source (video and AAC) are POSTed as the same broadcast again and again, each POST
 * a new publisher session (as a publisher that reconnects does), the next one once the last one's
 * ladder and tracks are gone. Every 10 sessions: full collections and `malloc_trim`, then RSS, the
 * JavaScript heap, ArrayBuffers, glibc's main arena (`[heap]`) and other anonymous memory. The DVR
 * window is 6 s, so the window holds at most the last two sessions' media.
 *   node --expose-gc --import tsx bench/churn.ts [--sessions 200] [--smoke]
 */

import { readFileSync } from 'node:fs';
import { concatBytes } from '../src/core/bytes.ts';
import { consoleLogger } from '../src/core/log.ts';
import { loadMallocTrim } from '../src/runtime/malloc-trim.ts';
import { nodeHost } from '../src/runtime/node.ts';
import { planPieces } from '../src/runtime/publish.ts';
import { parseServe } from '../src/server/config.ts';
import { startService } from '../src/server/main.ts';
import { arg, ensureSources, machine, SMOKE, sourcePath, table, today, writeSection } from './lib.ts';

const SESSIONS = SMOKE ? 5 : Number(arg('sessions') ?? 200);
const CLIP_S = 3;
/** Sessions before the first sample that counts: pools, code and the DVR window settle. */
const WARMUP = SMOKE ? 1 : 20;
const BROADCAST = 'churn/b';

ensureSources();
const planned = planPieces(new Uint8Array(readFileSync(sourcePath('source-720p30-ll.mp4'))));
// Copied into a buffer of its own (a fetch body).
const clip = new Uint8Array(
  concatBytes(planned.pieces.filter((p, i) => i === 0 || p.timeS < CLIP_S).map((p) => p.bytes)),
);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc (npm run bench:churn does)');
const trim = loadMallocTrim().trim;

const config = parseServe(
  [
    ...['--port', '0', '--host', '127.0.0.1', '--test-pattern', 'off'],
    ...['--ingest-grace', '0', '--hls-dvr-window', '6', '--malloc-trim', '0'],
  ],
  {},
  () => '',
);
const started = await startService(nodeHost, config, consoleLogger('error'));
const { service } = started;
const base = `http://127.0.0.1:${started.listener.port}`;

/** Resident MB of glibc's main arena and of other anonymous mappings (/proc/self/smaps). */
function mappings(): { arenaMb: number; anonMb: number } {
  let arenaKb = 0;
  let anonKb = 0;
  let name = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping !== null) {
      name = mapping[1] ?? '';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss === null) continue;
    if (name === '[heap]') arenaKb += Number(rss[1]);
    else if (name === '') anonKb += Number(rss[1]);
  }
  return { arenaMb: arenaKb / 1024, anonMb: anonKb / 1024 };
}

type Sample = { session: number; rssMb: number; heapMb: number; buffersMb: number; arenaMb: number; anonMb: number };

async function sample(session: number): Promise<Sample> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await trim?.();
  const m = process.memoryUsage();
  const mb = (bytes: number) => bytes / 2 ** 20;
  return { session, rssMb: mb(m.rss), heapMb: mb(m.heapUsed), buffersMb: mb(m.arrayBuffers), ...mappings() };
}

const samples: Sample[] = [];
const startedAt = performance.now();
try {
  for (let session = 1; session <= SESSIONS; session++) {
    const answer = await fetch(`${base}/ingest/${BROADCAST}`, { method: 'POST', body: clip });
    if (answer.status !== 200) throw new Error(`ingest answered ${answer.status}: ${await answer.text()}`);
    // The session is over once its ladder has ended and its tracks have left the registry.
    const deadline = Date.now() + 60_000;
    while (
      service.runner.stats().some((t) => t.endedAtMs === undefined) ||
      service.registry.get(BROADCAST, '0.mp4') !== undefined
    ) {
      if (Date.now() > deadline) throw new Error(`session ${session} did not end within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (session === WARMUP || session % 10 === 0 || session === SESSIONS) samples.push(await sample(session));
  }
} finally {
  await started.stop();
}
const wallS = (performance.now() - startedAt) / 1000;

const counted = samples.filter((s) => s.session >= WARMUP);
const first = counted[0]!;
const last = counted.at(-1)!;
const sessions = Math.max(1, last.session - first.session);
/** Least-squares growth per session, KB. */
function slopeKb(pick: (s: Sample) => number): number {
  const n = counted.length;
  const mx = counted.reduce((a, s) => a + s.session, 0) / n;
  const my = counted.reduce((a, s) => a + pick(s), 0) / n;
  const sxx = counted.reduce((a, s) => a + (s.session - mx) ** 2, 0);
  const sxy = counted.reduce((a, s) => a + (s.session - mx) * (pick(s) - my), 0);
  return sxx === 0 ? 0 : (sxy / sxx) * 1024;
}
const f = (x: number) => x.toFixed(1);
const body = `Command: \`npm run bench:churn\` (${SESSIONS} sessions). Machine: ${machine()}. Date: ${today()}.
Service in the benchmark's process (HTTP, ingest, default ladder 720p/480p/240p, audio ladder, LL-HLS with a 6 s DVR window, ingest grace 0); each session POSTs the first ${CLIP_S} s of bench/out/source-720p30-ll.mp4 (1280x720 30 fps and AAC, ${(clip.byteLength / 2 ** 20).toFixed(2)} MB) as \`${BROADCAST}\`, the next once the last one's ladder and tracks are gone (${(wallS / SESSIONS).toFixed(2)} s per session). Each sample after full collections and \`malloc_trim\`; MB:

${table(
  ['after session', 'RSS', 'JS heap used', 'ArrayBuffers', 'main arena ([heap])', 'other anonymous'],
  samples.map((s) => [s.session, f(s.rssMb), f(s.heapMb), f(s.buffersMb), f(s.arenaMb), f(s.anonMb)]),
)}

Growth per session from session ${first.session} to ${last.session} (least squares over the samples), KB: RSS ${slopeKb((s) => s.rssMb).toFixed(0)}, JS heap ${slopeKb((s) => s.heapMb).toFixed(1)}, ArrayBuffers ${slopeKb((s) => s.buffersMb).toFixed(1)}, main arena ${slopeKb((s) => s.arenaMb).toFixed(1)}. RSS ${f(first.rssMb)} -> ${f(last.rssMb)} MB over ${sessions} sessions (${(((last.rssMb - first.rssMb) / first.rssMb) * 100).toFixed(1)} %; other anonymous memory, where decoded frames and thread stacks live, moves by tens of MB between samples with what is in flight).`;
console.log(body);
writeSection('Session churn', body);
process.exit(0);
