/**
 * The cluster next to the single process, in one run; every node is the real CLI in its own
 * process on this machine, joined by a nats-server started here.
 * 1. Latency. The same paced 720p30 source (one fragment per frame, sent in real time) is POSTed
 *    to a single process (`--role all`), then to ingest node A of a cluster (A ingest, B transcode,
 *    C edge). Each rendition's media playlist is followed from outside with LL-HLS blocking
 *    requests (on the single process; on edge C). Each answer lists one more part; its latency is
 *    the answer's arrival minus the moment the publisher sent that part's last frame. p50 / p99 /
 *    max per rendition, and what the cluster adds.
 * 2. CPU per role per source second over the same measured seconds: each node process and
 *    nats-server, next to the single process.
 * 3. Held requests. An ingest node publishing the same video without audio (each frame then goes
 *    exactly when it ends) and 1, 2, 3 edge processes (no transcode node: the edges get the
 *    cores); one load-client process per edge (bench/hls-load-client.ts, raw sockets) holds
 *    N / edges blocking requests for the next part of the source, round after round. Wake-up: each
 *    answer's arrival minus the moment the publisher sent the last frame of the part it waited
 *    for, less the floor (the median of the same for one lone request on the idle first edge).
 *    Reported: p50 / p99 per N, and which N the edges answer at p99 <= 20 ms.
 *   node --import tsx bench/cluster.ts [--seconds 30] [--held 100,250,500,1000] [--smoke]
 * `--held` leaves bench/RESULTS.md alone.
 */

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, renameSync } from 'node:fs';
import { startNats } from '../testkit/nats.ts';
import { type RunningServer, startServer } from '../testkit/server.ts';
import {
  arg,
  cpuSecondsOf,
  ensureSources,
  machine,
  machineBusy,
  paced,
  percentile,
  postPaced,
  ROOT,
  SMOKE,
  sourcePath,
  table,
  today,
  writeSection,
} from './lib.ts';

const seconds = SMOKE ? 6 : Number(arg('seconds') ?? 30);
const warmupS = SMOKE ? 4 : 10;
const heldCounts = arg('held')?.split(',').map(Number) ?? (SMOKE ? [20] : [100, 250, 500, 1000]);
if (heldCounts.some((n) => !(Number.isInteger(n) && n > 0)))
  throw new TypeError('--held: expected counts like 250,500');
const edgeCounts = SMOKE ? [1, 2] : [1, 2, 3];
/** Rounds of each held run left out of the percentiles (new connections, code not yet optimised). */
const WARMUP_ROUNDS = 3;
const ROUNDS = SMOKE ? 2 : 30;
const SOURCE = 'source-720p30-ll.mp4';
const RENDITIONS = ['source', '720p', '480p', '240p'];
const HELD_TARGET_MS = 20;
/** Answers of the first edge's lone follower that make the held runs' floor. */
const FLOOR_ANSWERS = SMOKE ? 10 : 40;
/** Flags of every node: no test pattern, and a broadcast ends as soon as its publisher does. */
const COMMON = ['--test-pattern', 'off', '--ingest-grace', '0'];
ensureSources();

/**
 * The held runs' source: the same media without audio, so that every fragment is sent exactly when
 * its frame ends (with audio between the frames, a frame goes when the next audio fragment is due,
 * up to a frame early, and that jitter would swamp the figures).
 */
const VIDEO_SOURCE = 'source-720p30-ll-video.mp4';
if (!existsSync(sourcePath(VIDEO_SOURCE))) {
  const part = `${sourcePath(VIDEO_SOURCE)}.part`;
  const flags = ['-movflags', 'frag_every_frame+empty_moov+default_base_moof', '-f', 'mp4'];
  const made = spawnSync('ffmpeg', [
    '-nostdin',
    '-y',
    '-v',
    'error',
    '-i',
    sourcePath(SOURCE),
    '-an',
    '-c',
    'copy',
    ...flags,
    part,
  ]);
  if (made.status !== 0) throw new Error(`ffmpeg could not make ${VIDEO_SOURCE}: ${made.stderr}`);
  renameSync(part, sourcePath(VIDEO_SOURCE));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function playlistUrl(base: string, broadcast: string, rendition = 'source'): string {
  return `${base}/hls/${broadcast}${rendition === 'source' ? '' : `/${rendition}`}/playlist.m3u8`;
}

/**
 * What a media playlist lists, as dates (ms): the end of its newest part (or segment), and the end
 * of each part by its `msn.part` name. A date is the last EXT-X-PROGRAM-DATE-TIME plus every
 * duration listed after it (a segment whose parts are listed counts by its parts). Undefined end
 * without a date.
 */
function listed(body: string): { endMs: number | undefined; parts: Map<string, number> } {
  const parts = new Map<string, number>();
  let base: number | undefined;
  let offsetS = 0;
  let inParts = false;
  for (const line of body.split('\n')) {
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      base = Date.parse(line.slice(25));
      offsetS = 0;
      inParts = false;
    } else if (line.startsWith('#EXT-X-PART:')) {
      offsetS += Number(/DURATION=([\d.]+)/.exec(line)?.[1] ?? 0);
      inParts = true;
      const name = /part-(\d+)-(\d+)\.m4s"/.exec(line);
      if (name !== null && base !== undefined) parts.set(`${name[1]}.${name[2]}`, base + offsetS * 1000);
    } else if (line.startsWith('#EXTINF:')) {
      if (!inParts) offsetS += Number.parseFloat(line.slice(8));
      inParts = false;
    }
  }
  return { endMs: base === undefined ? undefined : base + offsetS * 1000, parts };
}

/** Where the publisher's clock meets the playlists' dates. */
type Clock = {
  /** Wall-clock ms at which the publisher's media time 0 was captured (its pacing start). */
  readonly startMs: number;
  /** EXT-X-PROGRAM-DATE-TIME of the source's first segment (media time 0), once seen. */
  anchorMs?: number;
};

/**
 * An answer that listed something new: its arrival, when the publisher sent the last frame of its
 * newest part, and the same for every part it lists (by `msn.part`).
 */
type Listed = { arrival: number; sentMs: number; parts: Map<string, number> };

/**
 * Follows a media playlist with blocking requests for the next part until it ends or `signal`
 * aborts; calls `onAnswer` for each answer that listed something new (its latency: its arrival
 * minus the moment the publisher sent the last frame of the newest part listed). Dates
 * are the source's along its media timeline (rungs too), so that moment is the publisher's start
 * plus the part's end on the media timeline, the first source segment's date being media time 0.
 * (The dates themselves start at the first fragment's arrival, which includes connecting once.)
 */
async function follow(
  url: string,
  source: boolean,
  clock: Clock,
  signal: AbortSignal,
  onAnswer: (answer: Listed) => void,
): Promise<void> {
  let query = '';
  let lastEnd = Number.NEGATIVE_INFINITY;
  while (!signal.aborted) {
    let status: number;
    let body: string;
    let arrival: number;
    try {
      const res = await fetch(url + query, { signal });
      arrival = Date.now();
      status = res.status;
      body = await res.text();
    } catch {
      await sleep(50);
      continue;
    }
    // Not mirrored yet (an edge's first request starts its mirror), or not live yet.
    if (status !== 200) {
      await sleep(50);
      continue;
    }
    if (body.includes('#EXT-X-ENDLIST')) return;
    if (source && clock.anchorMs === undefined && /^#EXT-X-MEDIA-SEQUENCE:0$/m.test(body)) {
      const first = /^#EXT-X-PROGRAM-DATE-TIME:(.+)$/m.exec(body);
      if (first !== null) clock.anchorMs = Date.parse(first[1]!);
    }
    const { endMs: end, parts } = listed(body);
    if (end !== undefined && end > lastEnd) {
      const first = lastEnd === Number.NEGATIVE_INFINITY;
      lastEnd = end;
      const anchor = clock.anchorMs;
      if (!first && anchor !== undefined) {
        const sent = (date: number) => clock.startMs + (date - anchor);
        onAnswer({ arrival, sentMs: sent(end), parts: new Map([...parts].map(([k, d]) => [k, sent(d)])) });
      }
    }
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*part-(\d+)-(\d+)\.m4s"/.exec(body);
    query = hint === null ? '' : `?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}`;
    if (hint === null) await sleep(50);
  }
}

/** A process this benchmark charges CPU to. */
type Charged = { role: string; cpuS: () => number };

/** What one latency run measured. */
type LatencyRun = {
  mode: 'single' | 'cluster';
  samples: Map<string, number[]>;
  /** CPU seconds per role over the measured seconds. */
  cpu: Array<{ role: string; cpuS: number }>;
  measuredS: number;
};

/** Publishes the paced source to a single process or a three-node cluster and follows every rendition. */
async function latencyRun(mode: 'single' | 'cluster'): Promise<LatencyRun> {
  const nats = mode === 'cluster' ? await startNats() : undefined;
  const servers: RunningServer[] = [];
  try {
    const charged: Charged[] = [];
    let ingest: RunningServer;
    let edge: RunningServer;
    if (nats === undefined) {
      ingest = edge = await startServer(COMMON);
      servers.push(ingest);
      charged.push({ role: 'all (single process)', cpuS: () => cpuSecondsOf({ group: ingest.pid }) });
    } else {
      const node = (role: string, id: string) =>
        startServer(['--role', role, '--nats', nats.url, '--node-id', id, ...COMMON], { timeoutMs: 60_000 });
      const [a, b, c] = await Promise.all([node('ingest', 'A'), node('transcode', 'B'), node('edge', 'C')]);
      servers.push(a, b, c);
      [ingest, edge] = [a, c];
      charged.push(
        { role: 'ingest (A)', cpuS: () => cpuSecondsOf({ group: a.pid }) },
        { role: 'transcode (B)', cpuS: () => cpuSecondsOf({ group: b.pid }) },
        { role: 'edge (C)', cpuS: () => cpuSecondsOf({ group: c.pid }) },
        { role: 'nats-server', cpuS: () => cpuSecondsOf({ pid: nats.pid }) },
      );
    }
    const broadcast = `bench/${mode}`;
    const samples = new Map<string, number[]>(RENDITIONS.map((r) => [r, []]));
    const abort = new AbortController();
    let measuring = false;
    const t0 = performance.now();
    const clock: Clock = { startMs: Date.now() };
    const followers = RENDITIONS.map((r) =>
      follow(playlistUrl(edge.url, broadcast, r), r === 'source', clock, abort.signal, (a) => {
        if (measuring) samples.get(r)!.push(a.arrival - a.sentMs);
      }),
    );
    let cpuStart: number[] = [];
    let measuredFrom = 0;
    const warm = setTimeout(() => {
      cpuStart = charged.map((c) => c.cpuS());
      measuredFrom = performance.now();
      measuring = true;
    }, warmupS * 1000);
    const status = await postPaced(`${ingest.url}/ingest/${broadcast}`, paced(SOURCE), t0, warmupS + seconds);
    clearTimeout(warm);
    const cpuEnd = charged.map((c) => c.cpuS());
    const measuredS = (performance.now() - measuredFrom) / 1000;
    measuring = false;
    if (status !== 200) throw new Error(`the publisher's POST was answered ${status}`);
    // The playlists end once the broadcast has; a follower still waiting is let go.
    await Promise.race([Promise.all(followers), sleep(10_000)]);
    abort.abort();
    await Promise.all(followers);
    return {
      mode,
      samples,
      cpu: charged.map((c, i) => ({ role: c.role, cpuS: cpuEnd[i]! - cpuStart[i]! })),
      measuredS,
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await nats?.stop();
  }
}

/** What bench/hls-load-client.ts reports (the fields used here). */
type ClientResult = { batches: Array<{ msn: number; part: number; arrivals: number[]; failures: number }> };

/** Runs one load client holding `n` requests on `base` (a broadcast's URL) for `rounds` rounds. */
function client(base: string, n: number, rounds: number): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/hls-load-client.ts', base, String(n), String(rounds), '0', 'raw'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`load client exited ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!) as ClientResult);
    });
  });
}

/** One held run: `edges` edge processes, `n` held requests in all; wake-ups in ms above the floor. */
type HeldRow = { edges: number; n: number; p50: number; p99: number; failures: number; rounds: number };

/** What the held runs measured, and the floor their wake-ups are counted from. */
type Held = { rows: HeldRow[]; floorMs: number };

/**
 * Held requests on 1, 2, 3 edges while a paced source is published to an ingest node. An answer's
 * wake-up is its arrival minus the moment the publisher sent the last frame of the part it waited
 * for, less the floor: the median of the same for one request alone on the idle first edge (the
 * way from publisher to edge, and the publisher's pacing). So 0 is as fast as a lone viewer.
 */
async function heldRuns(): Promise<Held> {
  const nats = await startNats();
  const node = (role: string, id: string, extra: string[] = []) =>
    startServer(['--role', role, '--nats', nats.url, '--node-id', id, ...COMMON, ...extra], { timeoutMs: 60_000 });
  const ingest = await node('ingest', 'A');
  const edges: RunningServer[] = [];
  const broadcast = 'bench/held';
  const publishing = new AbortController();
  const rows: HeldRow[] = [];
  let floor: number[] = [];
  try {
    const t0 = performance.now();
    const clock: Clock = { startMs: Date.now() };
    const published = postPaced(
      `${ingest.url}/ingest/${broadcast}`,
      paced(VIDEO_SOURCE),
      t0,
      Number.POSITIVE_INFINITY,
      publishing.signal,
    );
    /** When the publisher sent the last frame of each part (`msn.part`), from a follower on the first edge. */
    const sent = new Map<string, number>();
    let following: Promise<void> | undefined;
    for (const k of edgeCounts) {
      while (edges.length < k) {
        // All load clients come from one address: the per-client caps are lifted.
        const edge = await node('edge', `E${edges.length + 1}`, [
          '--max-connections-per-client',
          '100000',
          '--max-held-per-client',
          '100000',
        ]);
        edges.push(edge);
        // Its first request starts its mirror; it serves parts once the next keyframe came.
        const url = playlistUrl(edge.url, broadcast);
        const deadline = Date.now() + 30_000;
        for (;;) {
          const res = await fetch(url).catch(() => undefined);
          const body = res === undefined ? '' : await res.text();
          if (res?.status === 200 && body.includes('#EXT-X-PRELOAD-HINT')) break;
          if (Date.now() > deadline) throw new Error(`edge ${edges.length} did not serve ${url} within 30 s`);
          await sleep(100);
        }
        if (following === undefined) {
          const all: number[] = [];
          following = follow(url, true, clock, publishing.signal, (a) => {
            for (const [part, sentMs] of a.parts) sent.set(part, sentMs);
            all.push(a.arrival - a.sentMs);
          });
          // The floor: this one request alone, for a few seconds.
          await waitUntil(() => all.length >= FLOOR_ANSWERS, 30_000, 'the first edge to list parts');
          floor = all.slice(0, FLOOR_ANSWERS);
        }
      }
      const floorMs = percentile(floor, 50);
      for (const n of heldCounts) {
        const each = Math.max(1, Math.round(n / k));
        const results = await Promise.all(
          edges.map((e) => client(`${e.url}/hls/${broadcast}`, each, WARMUP_ROUNDS + ROUNDS)),
        );
        const wakeups: number[] = [];
        let failures = 0;
        let rounds = 0;
        for (const result of results) {
          for (const batch of result.batches.slice(WARMUP_ROUNDS)) {
            failures += batch.failures;
            rounds += 1;
            const sentMs = sent.get(`${batch.msn}.${batch.part}`);
            if (sentMs === undefined) continue;
            for (const arrival of batch.arrivals) wakeups.push(arrival - sentMs - floorMs);
          }
        }
        const row = {
          edges: k,
          n: each * k,
          p50: percentile(wakeups, 50),
          p99: percentile(wakeups, 99),
          failures,
          rounds,
        };
        console.log(
          `held: ${k} edge(s), ${row.n} requests: p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms above the floor (${wakeups.length} answers)`,
        );
        rows.push(row);
      }
    }
    publishing.abort();
    await published;
    await following;
  } finally {
    publishing.abort();
    await Promise.all([...edges, ingest].map((s) => s.stop()));
    await nats.stop();
  }
  return { rows, floorMs: percentile(floor, 50) };
}

/** Polls `check` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const busyBefore = await machineBusy();
const runs = [await latencyRun('single'), await latencyRun('cluster')];
const { rows: held, floorMs } = await heldRuns();
const busyAfter = await machineBusy();

const [single, cluster] = runs as [LatencyRun, LatencyRun];
const fmt = (v: number) => (Number.isNaN(v) ? 'n/a' : v.toFixed(0));
const latencyRows = RENDITIONS.map((r) => {
  const s = single.samples.get(r)!;
  const c = cluster.samples.get(r)!;
  return [
    r,
    `${s.length} / ${c.length}`,
    `${fmt(percentile(s, 50))} / ${fmt(percentile(s, 99))} / ${fmt(Math.max(...s))}`,
    `${fmt(percentile(c, 50))} / ${fmt(percentile(c, 99))} / ${fmt(Math.max(...c))}`,
    `${fmt(percentile(c, 50) - percentile(s, 50))} / ${fmt(percentile(c, 99) - percentile(s, 99))}`,
  ];
});
const cpuRows = runs.flatMap((run) => run.cpu.map((c) => [c.role, (c.cpuS / run.measuredS).toFixed(3)]));
const clusterCpu = cluster.cpu.reduce((a, c) => a + c.cpuS, 0) / cluster.measuredS;
const singleCpu = single.cpu.reduce((a, c) => a + c.cpuS, 0) / single.measuredS;
cpuRows.push(['cluster, all roles', clusterCpu.toFixed(3)]);
const heldRows = held.map((h) => [
  h.edges,
  h.n,
  h.rounds,
  h.p50.toFixed(1),
  h.p99.toFixed(1),
  h.failures,
  h.p99 <= HELD_TARGET_MS && h.failures === 0 ? 'yes' : 'no',
]);
const answered = edgeCounts.map((k) => {
  const ok = held.filter((h) => h.edges === k && h.p99 <= HELD_TARGET_MS && h.failures === 0).map((h) => h.n);
  return `${k} edge${k === 1 ? '' : 's'}: ${ok.length === 0 ? 'none' : `**${ok.join(', ')}**`}`;
});

const text = `Command: \`npm run bench:cluster\`. Machine: ${machine()}. Date: ${today()}. Other work: ${busyBefore} in the second before the run, ${busyAfter} in the second after. Every node is the CLI (\`bin/lvqr-transcode.mjs serve\`) in its own process; the cluster's nodes and nats-server share the same 2 vCPUs, so a node's figures include waiting for the others.

Latency: the paced 720p30 source (${SOURCE}, one fragment per frame, sent in real time; default ladder) for ${seconds} s after ${warmupS} s of warm-up, to a single process (\`--role all\`) and to ingest node A of a cluster (A ingest, B transcode, C edge). Each rendition's playlist is followed with LL-HLS blocking requests (on the single process, on edge C); per answer, its arrival minus the moment the publisher sent the last frame of the newest part it lists (the part's end on the media timeline, read from the program dates, plus the publisher's start; it sends a fragment when the next one, video or audio, is due, so a part can be listed up to a frame before its end). ms, p50 / p99 / max:

${table(['rendition', 'answers single / cluster', 'single process', 'cluster (edge C)', 'added by the cluster p50 / p99'], latencyRows)}

CPU per source second over the measured seconds (CPU-s of each process / media seconds published):

${table(['process', 'CPU-s per source s'], cpuRows)}

The cluster's processes together use ${(clusterCpu / singleCpu).toFixed(2)}x the single process's CPU for the same broadcast.

Held requests: an ingest node publishing the same video without audio (${VIDEO_SOURCE}: each frame is then sent exactly when it ends; no transcode node), 1-${edgeCounts.at(-1)} edge processes (\`--max-connections-per-client 100000 --max-held-per-client 100000\`: every client is on 127.0.0.1), one raw-socket load client (bench/hls-load-client.ts) per edge holding its share of N blocking requests for the next source part, ${ROUNDS} rounds after ${WARMUP_ROUNDS} left out. Wake-up: each answer's arrival minus the moment the publisher sent the last frame of the part it waited for, less the floor: the median of the same for one request alone on the idle first edge (${floorMs.toFixed(0)} ms here: the way from publisher through ingest and NATS to the edge, and the publisher's pacing), so 0 is as fast as a lone viewer and a figure is what the other held requests cost:

${table(['edges', 'held requests', 'rounds', 'p50 ms', 'p99 ms', 'failed', `p99 <= ${HELD_TARGET_MS} ms`], heldRows)}

Held-request counts answered at p99 <= ${HELD_TARGET_MS} ms (of ${heldCounts.join(', ')} tried): ${answered.join('; ')}. Clients, edges, the ingest node, nats-server and the publisher share the 2 vCPUs here, so more edge processes add event loops but no cores, and a p99 over a few thousand answers moves with any pause of any of them: what edges on machines of their own answer is not measured by this run.`;
console.log(text);
if (arg('held') === undefined) writeSection('Cluster', text);
process.exit(0);
