/**
 * LL-HLS under load: the real HTTP server (Node, in this process) serves a synthetic live
 * broadcast (30 fps, one fragment per frame, 2 s segments, 200 ms parts); a separate client
 * process (hls-load-client.ts) holds N = 100 and N = 1,000 blocking playlist requests for the next
 * part, round after round. Wake-up = answer arrival minus the moment the fragment that completed
 * the part was emitted. Then plain playlist and segment requests per second.
 *   node --expose-gc --import tsx bench/hls-load.ts [--smoke]
 */

import { spawn } from 'node:child_process';
import { consoleLogger } from '../src/core/log.ts';
import { createFragment, FragmentFlags } from '../src/fragment/index.ts';
import { nodeHost } from '../src/runtime/node.ts';
import { parseServe } from '../src/server/config.ts';
import { createService } from '../src/server/service.ts';
import { fmtSummary, machine, percentile, ROOT, SMOKE, table, today, writeSection } from './lib.ts';

const config = parseServe(['--test-pattern', 'off', '--transcode-rendition', 'none', '--port', '0'], {}, () => '');
const service = createService({ config, logger: consoleLogger('warn') });
const listener = await nodeHost.serve(service.app as never, { port: 0, host: '127.0.0.1', maxMessageBytes: 1 << 20 });
const base = `http://127.0.0.1:${listener.port}/hls/bench/load`;

// A synthetic live source: tiny valid-looking fragments are enough for the packager.
const now = () => performance.timeOrigin + performance.now();
const bc = service.registry.getOrCreate('bench/load', '0.mp4', {
  codec: 'avc1.64001f',
  timescale: 90_000,
  initSegment: new Uint8Array([0, 0, 0, 8, 0x66, 0x72, 0x65, 0x65]),
});
const emits: number[] = [];
let frame = 0;
const fps = 30;
const t0 = performance.now();
let running = true;
const producer = (async () => {
  while (running) {
    const wait = t0 + (frame * 1000) / fps - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const key = frame % 60 === 0;
    emits.push(now());
    bc.emit(
      createFragment({
        trackId: '0.mp4',
        groupId: Math.floor(frame / 60),
        objectId: frame % 60,
        priority: key ? 0 : 1,
        dts: frame * 3000,
        pts: frame * 3000,
        duration: 3000,
        flags: key ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
        payload: new Uint8Array(6000),
        ingestTimeMs: Date.now(),
      }),
    );
    frame += 1;
  }
})();
// Let a few segments build up.
await new Promise((r) => setTimeout(r, 4500));

type ClientResult = {
  batches: Array<{ arrivals: number[]; failures: number }>;
  playlistRps: number;
  segmentRps: number;
};
function client(n: number, rounds: number, rpsSeconds: number): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/hls-load-client.ts', base, String(n), String(rounds), String(rpsSeconds)],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`client exited ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!) as ClientResult);
    });
  });
}

/** The emit that completed the part answered in a batch is the last emit before its first answer. */
function wakeups(batch: { arrivals: number[] }): number[] {
  if (batch.arrivals.length === 0) return [];
  const first = Math.min(...batch.arrivals);
  let closing = emits[0]!;
  for (const e of emits) if (e <= first) closing = e;
  return batch.arrivals.map((a) => a - closing);
}

const rows: string[][] = [];
let p99At1000 = Number.NaN;
let rps: { playlist: number; segment: number } | undefined;
for (const n of SMOKE ? [20] : [100, 1000]) {
  const result = await client(n, SMOKE ? 3 : 20, SMOKE ? 1 : 5);
  const all = result.batches.slice(1).flatMap(wakeups);
  const failures = result.batches.reduce((a, b) => a + b.failures, 0);
  const perBatchP99 = result.batches.slice(1).map((b) => percentile(wakeups(b), 99));
  rows.push([
    String(n),
    String(result.batches.length - 1),
    percentile(all, 50).toFixed(1),
    percentile(all, 99).toFixed(1),
    fmtSummary(perBatchP99),
    String(failures),
  ]);
  if (n === 1000) p99At1000 = percentile(all, 99);
  rps = { playlist: result.playlistRps, segment: result.segmentRps };
}
running = false;
await producer;
await service.close();
await listener.close();

const text = `Command: \`npm run bench:hls\`. Machine: ${machine()}. Date: ${today()}.
Server: Node HTTP (@hono/node-server), in one process with a synthetic 30 fps live broadcast (2 s segments, 200 ms parts); the load client is a separate process on the same 2 vCPUs (undici, one connection per held request).

Blocking playlist requests (\`_HLS_msn\` / \`_HLS_part\` for the next part), wake-up in ms from the emit that completed the part to the answer arriving at the client:

${table(['held requests', 'rounds', 'p50', 'p99', 'per-round p99 median (min-max)', 'failed'], rows)}

Target: 1,000 held requests, p99 wake-up <= 20 ms: **${Number.isNaN(p99At1000) ? 'n/a' : `${p99At1000.toFixed(1)} ms`}**${Number.isNaN(p99At1000) ? '' : p99At1000 <= 20 ? ' (met)' : ' (missed: the 1,000 answers are written by one event loop; see the note below)'}.
Plain requests per second (32 keep-alive connections): playlist ${rps?.playlist.toFixed(0)}/s, segment ${rps?.segment.toFixed(0)}/s.
The bridge renders a playlist once per published part and shares it among all held requests; the time above is dominated by writing N HTTP responses and by the client process on the same two cores.`;
console.log(text);
writeSection('LL-HLS under load', text);
process.exit(0);
