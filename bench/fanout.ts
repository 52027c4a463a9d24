/**
 * Registry fan-out: fragments per second from one producer to 1, 4 and 16 subscribers, read
 * (a) synchronously in batches (`tryNext`, the registry alone) and (b) by async readers
 * (`await next()`, as the HLS bridge and runner read), plus the cost of one subscriber that never
 * reads (it lags, drops whole GOPs and resumes at keyframes) next to 3 healthy ones.
 *   node --import tsx bench/fanout.ts [--smoke]
 */

import { createFragment, type Fragment, FragmentBroadcaster, FragmentFlags } from '../src/fragment/index.ts';
import { fmtSummary, machine, SMOKE, summary, table, today, writeSection } from './lib.ts';

const TOTAL = SMOKE ? 50_000 : 2_000_000;
const ROUNDS = SMOKE ? 1 : 5;
const GOP = 60;

const pool: Fragment[] = Array.from({ length: GOP * 4 }, (_, i) =>
  createFragment({
    trackId: '0.mp4',
    groupId: Math.floor(i / GOP),
    objectId: i % GOP,
    priority: i % GOP === 0 ? 0 : 1,
    dts: i * 3000,
    pts: i * 3000,
    duration: 3000,
    flags: i % GOP === 0 ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
    payload: new Uint8Array(1200),
  }),
);
const meta = { codec: 'avc1.64001f', timescale: 90_000, initSegment: new Uint8Array(8) };

function syncRun(subscribers: number, stalled = 0): number {
  const bc = new FragmentBroadcaster('0.mp4', meta);
  const subs = Array.from({ length: subscribers }, () => bc.subscribe());
  const readers = subs.slice(stalled);
  const t0 = performance.now();
  for (let i = 0; i < TOTAL; i++) {
    bc.emit(pool[i % pool.length]!);
    if ((i & 255) === 255) for (const s of readers) while (s.tryNext() !== undefined);
  }
  for (const s of readers) while (s.tryNext() !== undefined);
  return TOTAL / ((performance.now() - t0) / 1000);
}

async function asyncRun(subscribers: number): Promise<number> {
  const bc = new FragmentBroadcaster('0.mp4', meta);
  const subs = Array.from({ length: subscribers }, () => bc.subscribe());
  let received = 0;
  const readers = subs.map(async (s) => {
    for (;;) {
      const f = await s.next();
      if (f === undefined) return;
      received += 1;
    }
  });
  const t0 = performance.now();
  for (let i = 0; i < TOTAL; i++) {
    bc.emit(pool[i % pool.length]!);
    if ((i & 511) === 511) await new Promise((resolve) => setImmediate(resolve));
  }
  bc.close();
  await Promise.all(readers);
  const rate = TOTAL / ((performance.now() - t0) / 1000);
  if (received + subs.reduce((a, s) => a + s.lagged, 0) !== TOTAL * subscribers) throw new Error('fragments lost');
  return rate;
}

const results = new Map<string, number[]>();
const add = (k: string, v: number) => results.set(k, [...(results.get(k) ?? []), v]);
for (let round = 0; round < ROUNDS; round++) {
  for (const n of [1, 4, 16]) add(`sync ${n}`, syncRun(n));
  for (const n of [1, 4, 16]) add(`async ${n}`, await asyncRun(n));
  add('sync 4 (1 never reads)', syncRun(4, 1));
}

const mfps = (k: string) => (results.get(k) ?? []).map((v) => v / 1e6);
const rows = [
  ...[1, 4, 16].map((n) => [`${n}`, fmtSummary(mfps(`sync ${n}`), 2), fmtSummary(mfps(`async ${n}`), 2)]),
  ['4, one of them never reads', fmtSummary(mfps('sync 4 (1 never reads)'), 2), '-'],
];
const four = summary(mfps('sync 4')).median;
const lagCost = 1 - summary(mfps('sync 4 (1 never reads)')).median / four;
const text = `Command: \`npm run bench:fanout\` (${ROUNDS} rounds of ${TOTAL.toLocaleString('en')} fragments, 1.2 kB payloads, GOP ${GOP}). Machine: ${machine()}. Date: ${today()}.

Millions of fragments per second emitted by one producer, each delivered to every subscriber:

${table(['subscribers', 'sync readers (tryNext batches)', 'async readers (await next())'], rows)}

Target: >= 1,000,000 fragments/s to 4 subscribers: **${(four * 1e6).toLocaleString('en', { maximumFractionDigits: 0 })} /s** (${(four / 1).toFixed(2)}x the target).
A subscriber that never reads costs ${(lagCost * 100).toFixed(0)} % of the producer's rate (it sheds whole GOPs from its bounded queue; the other three lose nothing).`;
console.log(text);
writeSection('Registry fan-out', text);
