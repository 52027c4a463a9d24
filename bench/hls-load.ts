/**
 * LL-HLS under load: the real HTTP server (Node, in this process) serves a synthetic live
 * broadcast (30 fps, one fragment per frame, 2 s segments, 200 ms parts); a separate client
 * process (hls-load-client.ts) holds N = 100 and N = 1,000 blocking playlist requests for the next
 * part, round after round. Wake-up = answer arrival minus the moment the fragment that completed
 * the part was emitted. Then plain playlist and segment requests per second.
 *   node --expose-gc --import tsx bench/hls-load.ts [--smoke] [--held 1000] [--client raw,request]
 *     [--rps-seconds 5] [--rungs 3] [--cpu-prof-dir <dir>]
 * `--held` picks the held-request counts (comma-separated; default 100,1000); `--client` the
 * clients that hold them (default raw,request; also fetch); `--rps-seconds 0` skips the
 * requests-per-second phase; `--rungs 3` adds stand-in rungs (rendition reports in the source
 * playlist). `--cpu-prof-dir` writes V8 CPU profiles of this (the server) process for each run's
 * rounds, `hls-held-<n>-<client>.cpuprofile`, and of the client process in
 * `hls-client-<n>-<client>/` (its main thread's file ends `.0.001.cpuprofile`; the other is tsx's
 * loader thread); read them with bench/profile-summary.ts. Any of these options leaves
 * bench/RESULTS.md alone.
 */

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { buildVideoInitSegment } from '../src/container/index.ts';
import { consoleLogger } from '../src/core/log.ts';
import { createFragment, FragmentFlags } from '../src/fragment/index.ts';
import { nodeHost } from '../src/runtime/node.ts';
import { parseServe } from '../src/server/config.ts';
import { createService } from '../src/server/service.ts';
import { arg, fmtSummary, machine, machineBusy, percentile, ROOT, SMOKE, table, today, writeSection } from './lib.ts';

const heldCounts = arg('held')?.split(',').map(Number) ?? (SMOKE ? [20] : [100, 1000]);
if (heldCounts.some((n) => !(Number.isInteger(n) && n > 0)))
  throw new TypeError('--held: expected counts like 100,1000');
const profileDir = arg('cpu-prof-dir');
const clientKinds = (arg('client') ?? (SMOKE ? 'raw' : 'raw,request')).split(',');
const rpsSeconds = Number(arg('rps-seconds') ?? (SMOKE ? 1 : 5));
const rungCount = Number(arg('rungs') ?? 0);
if (clientKinds.some((k) => !['raw', 'request', 'fetch'].includes(k))) {
  throw new TypeError('--client: expected raw, request or fetch (comma-separated)');
}
const partial =
  ['held', 'client', 'rps-seconds', 'rungs'].some((name) => arg(name) !== undefined) || profileDir !== undefined;

/** Profiles this process with the inspector between `start()` and `stop(file)`. */
class Profiler {
  readonly #session = new Session();

  constructor() {
    this.#session.connect();
  }

  #post(method: string, params?: object): Promise<unknown> {
    return new Promise((resolve, reject) =>
      this.#session.post(method, params, (error, result) => (error === null ? resolve(result) : reject(error))),
    );
  }

  async start(): Promise<void> {
    await this.#post('Profiler.enable');
    await this.#post('Profiler.setSamplingInterval', { interval: 1000 });
    await this.#post('Profiler.start');
  }

  async stop(file: string): Promise<void> {
    const { profile } = (await this.#post('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
    console.log(`wrote ${file}`);
  }
}
const profiler = profileDir === undefined ? undefined : new Profiler();
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });

// Other work on the machine, measured before this benchmark starts its own.
const busyBefore = await machineBusy();
const config = parseServe(['--test-pattern', 'off', '--transcode-rendition', 'none', '--port', '0'], {}, () => '');
const service = createService({ config, logger: consoleLogger('warn') });
const listener = await nodeHost.serve(service.app as never, { port: 0, host: '127.0.0.1', maxMessageBytes: 1 << 20 });
const base = `http://127.0.0.1:${listener.port}/hls/bench/load`;

// A synthetic live source: a real 1280x720 H.264 init segment (its avcC from an x264 encode) and
// fragments of zeros are enough for the packager, which never decodes them.
const now = () => performance.timeOrigin + performance.now();
const AVCC_720P = '0142c01fffe100176742c01fda014016ec0440000003004000000f03c60ca801000468ce0fc8';
const meta = {
  codec: 'avc1.42c01f',
  timescale: 90_000,
  initSegment: buildVideoInitSegment({
    timescale: 90_000,
    width: 1280,
    height: 720,
    avcC: Uint8Array.from(Buffer.from(AVCC_720P, 'hex')),
  }),
};
const bc = service.registry.getOrCreate('bench/load', '0.mp4', meta);
// Optional stand-in rungs: the source playlist then carries their rendition reports, as in production.
const rungs = Array.from({ length: rungCount }, (_, i) =>
  service.registry.getOrCreate(`bench/load/r${i}`, '0.mp4', meta, {
    origin: { kind: 'rendition', source: 'bench/load', rendition: `r${i}`, transcoder: 'bench' },
  }),
);
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
    const fragment = createFragment({
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
    });
    bc.emit(fragment);
    for (const rung of rungs) rung.emit(fragment);
    frame += 1;
  }
})();
// Let a few segments build up.
await new Promise((r) => setTimeout(r, 4500));

// This process's CPU time, sampled, to charge the server with its share of the held rounds alone.
const cpuSamples: Array<{ at: number; cpuS: number }> = [];
const sampleCpu = () => {
  const u = process.cpuUsage();
  cpuSamples.push({ at: now(), cpuS: (u.user + u.system) / 1e6 });
};
const cpuTimer = setInterval(sampleCpu, 50);
/** CPU seconds this process used between two instants (nearest samples). */
function cpuBetween(from: number, to: number): number {
  const at = (t: number) => cpuSamples.reduce((best, s) => (Math.abs(s.at - t) < Math.abs(best.at - t) ? s : best));
  return at(to).cpuS - at(from).cpuS;
}

type ClientResult = {
  batches: Array<{ arrivals: number[]; failures: number }>;
  heldStart: number;
  heldEnd: number;
  heldCpuS: number;
  /** Null when the phase was skipped. */
  playlistRps: number | null;
  segmentRps: number | null;
};
function client(n: number, kind: string, rounds: number, rpsSeconds: number): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...(profileDir === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, `hls-client-${n}-${kind}`)}`]),
        '--import',
        'tsx',
        'bench/hls-load-client.ts',
        base,
        String(n),
        String(rounds),
        String(rpsSeconds),
        kind,
      ],
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
let usPerRequestAt1000 = Number.NaN;
let rps: { playlist: number | null; segment: number | null } | undefined;
/** Rounds left out at the start of each run: the connections are new and the code is not yet optimised. */
const WARMUP = 3;
const plan = clientKinds.flatMap((kind) => heldCounts.map((n) => ({ n, kind })));
for (const [i, { n, kind }] of plan.entries()) {
  await profiler?.start();
  // A profile covers the held rounds only; the requests-per-second phase runs once, at the end.
  const last = i === plan.length - 1;
  const result = await client(n, kind, WARMUP + (SMOKE ? 2 : 19), profiler !== undefined || !last ? 0 : rpsSeconds);
  await profiler?.stop(join(profileDir!, `hls-held-${n}-${kind}.cpuprofile`));
  const measured = result.batches.slice(WARMUP);
  const all = measured.flatMap(wakeups);
  const failures = result.batches.reduce((a, b) => a + b.failures, 0);
  const perBatchP99 = measured.map((b) => percentile(wakeups(b), 99));
  const warmupP99 = result.batches.slice(0, WARMUP).map((b) => percentile(wakeups(b), 99).toFixed(0));
  sampleCpu();
  const heldS = (result.heldEnd - result.heldStart) / 1000;
  const serverCpuS = cpuBetween(result.heldStart, result.heldEnd);
  const answers = result.batches.reduce((a, b) => a + b.arrivals.length, 0);
  rows.push([
    String(n),
    kind,
    String(measured.length),
    percentile(all, 50).toFixed(1),
    percentile(all, 99).toFixed(1),
    fmtSummary(perBatchP99),
    warmupP99.join(', '),
    String(failures),
    ((serverCpuS * 1e6) / answers).toFixed(0),
    `${((100 * serverCpuS) / heldS).toFixed(0)} / ${((100 * result.heldCpuS) / heldS).toFixed(0)}`,
  ]);
  if (n === 1000 && Number.isNaN(p99At1000)) {
    p99At1000 = percentile(all, 99);
    usPerRequestAt1000 = (serverCpuS * 1e6) / answers;
  }
  if (last) rps = { playlist: result.playlistRps, segment: result.segmentRps };
}
clearInterval(cpuTimer);
running = false;
await producer;
await service.close();
await listener.close();
const busyAfter = await machineBusy();

const text = `Command: \`npm run bench:hls\`. Machine: ${machine()}. Date: ${today()}. Other work: ${busyBefore} in the second before the run, ${busyAfter} in the second after.
Server: Node HTTP (@hono/node-server), in one process with a synthetic 30 fps live broadcast (2 s segments, 200 ms parts); the load client is a separate process on the same 2 vCPUs with one keep-alive connection per held request: \`raw\` reads the answers with a minimal HTTP/1.1 parser on plain sockets (little client CPU per answer, so the figure is mostly the server's), \`request\` with undici's \`request()\` (an HTTP library's cost per answer, on the same cores). The first ${WARMUP} rounds of each run (new connections, code not yet optimised) are shown apart and left out of the percentiles.

Blocking playlist requests (\`_HLS_msn\` / \`_HLS_part\` for the next part), wake-up in ms from the emit that completed the part to the answer arriving at the client; server CPU per held request (accepting it and writing its answer) and CPU of each process over the held rounds, in % of one core:

${table(['held requests', 'client', 'rounds', 'p50', 'p99', 'per-round p99 median (min-max)', 'warm-up rounds p99', 'failed', 'server CPU µs per request', 'CPU % server / client'], rows)}

Target: 1,000 held requests, p99 wake-up <= 20 ms (${clientKinds[0]} client): **${Number.isNaN(p99At1000) ? 'n/a' : `${p99At1000.toFixed(1)} ms`}**${Number.isNaN(p99At1000) ? '' : p99At1000 <= 20 ? ' (met)' : ' (missed: see "Where targets are missed")'}.
Plain requests per second (32 keep-alive connections): playlist ${rps?.playlist?.toFixed(0) ?? 'n/a'}/s, segment ${rps?.segment?.toFixed(0) ?? 'n/a'}/s.
Every request one published part wakes gets the same rendered and encoded playlist answer${Number.isNaN(usPerRequestAt1000) ? '' : `; with 1,000 held, each request costs the server ~${usPerRequestAt1000.toFixed(0)} µs of CPU in all (accepting, holding and answering it), on the same two cores as the client`}.`;
console.log(text);
if (!partial) writeSection('LL-HLS under load', text);
process.exit(0);
