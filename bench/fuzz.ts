/**
 * Long mode of the container fuzzer (the short mode runs in `npm test`, test/container/fuzz.test.ts).
 *   npm run fuzz                                   1,000,000 inputs, a random seed (printed)
 *   npm run fuzz -- --runs 5000000 --seed 42       more inputs, a chosen seed
 *   npm run fuzz -- --replay bench/out/fuzz-failure-42-1234.json
 * Reports inputs/s and outcomes by target and error code. On the first failure it minimizes the input,
 * writes it (and the original) to bench/out/ and exits 1. A clean run of at least 1,000,000 inputs
 * records its figures in bench/RESULTS.md ("Parser fuzz").
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureFixtures } from '../testkit/fixtures.ts';
import {
  caseFromJson,
  caseToJson,
  DEFAULT_WORK_LIMIT,
  type FuzzReport,
  fuzz,
  loadCorpus,
  minimize,
  runTimed,
} from '../testkit/fuzz.ts';
import { arg, machine, OUT_DIR, table, today, writeSection } from './lib.ts';

const RECORD_MIN_RUNS = 1_000_000;

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function outcomeRows(report: FuzzReport): string[][] {
  const byTarget = new Map<string, Map<string, number>>();
  for (const [key, n] of report.outcomes) {
    const [target, outcome] = key.split(' ') as [string, string];
    const m = byTarget.get(target) ?? new Map<string, number>();
    m.set(outcome, n);
    byTarget.set(target, m);
  }
  return [...byTarget]
    .map(([target, m]) => {
      const total = [...m.values()].reduce((a, b) => a + b, 0);
      const rejected = [...m]
        .filter(([o]) => o !== 'ok')
        .sort((a, b) => b[1] - a[1])
        .map(([o, n]) => `${o.replace(/^ingest\./, '')} ${fmt(n)}`)
        .join(', ');
      return [target, fmt(total), fmt(m.get('ok') ?? 0), rejected || '-'];
    })
    .sort((a, b) => Number(b[1]!.replace(/,/g, '')) - Number(a[1]!.replace(/,/g, '')));
}

function replay(file: string): void {
  const c = caseFromJson(readFileSync(file, 'utf8'));
  const { verdict, ms } = runTimed(c, DEFAULT_WORK_LIMIT);
  console.log(`${file}: ${c.target}, ${c.bytes.length} bytes -> ${verdict.outcome} in ${ms.toFixed(1)} ms`);
  if (verdict.problem === undefined) {
    console.log('no problem (fixed?)');
    return;
  }
  console.log(`problem: ${verdict.problem}`);
  if (verdict.error !== undefined) console.log(verdict.error);
  process.exitCode = 1;
}

function main(): void {
  const replayFile = arg('replay');
  if (replayFile !== undefined) {
    replay(replayFile);
    return;
  }
  const runs = Number(arg('runs') ?? RECORD_MIN_RUNS);
  const seed = Number(arg('seed') ?? Math.floor(Math.random() * 2 ** 31));
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new Error(`--runs: expected a positive integer, got ${arg('runs')}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed: expected an integer, got ${arg('seed')}`);
  ensureFixtures('fuzz');
  const corpus = loadCorpus();
  console.log(`fuzz: ${fmt(runs)} inputs, seed ${seed} (again: npm run fuzz -- --seed ${seed} --runs ${runs})`);
  let peakRssMb = process.memoryUsage().rss / 2 ** 20;
  const report = fuzz({
    corpus,
    seed,
    runs,
    progressEvery: 50_000,
    onProgress: (done, r) => {
      peakRssMb = Math.max(peakRssMb, process.memoryUsage().rss / 2 ** 20);
      const rate = done / (r.elapsedMs / 1000);
      console.log(`  ${fmt(done)} inputs, ${fmt(rate)}/s, RSS ${fmt(process.memoryUsage().rss / 2 ** 20)} MB`);
    },
  });
  peakRssMb = Math.max(peakRssMb, process.resourceUsage().maxRSS / 1024);
  const seconds = report.elapsedMs / 1000;
  const rate = report.runs / seconds;
  console.log(
    `\n${fmt(report.runs)} inputs in ${seconds.toFixed(1)} s: ${fmt(rate)} inputs/s, peak RSS ${fmt(peakRssMb)} MB`,
  );
  console.log(
    `slowest input: #${report.slowest.index} (${report.slowest.target}, ${fmt(report.slowest.bytes)} bytes) ${report.slowest.ms.toFixed(1)} ms`,
  );
  const rows = outcomeRows(report);
  console.log(table(['target', 'inputs', 'ok', 'rejected, by code'], rows));

  const failure = report.failures[0];
  if (failure !== undefined) {
    const problem = failure.verdict.problem!;
    const small = minimize(failure.case, problem);
    mkdirSync(OUT_DIR, { recursive: true });
    const base = join(OUT_DIR, `fuzz-failure-${seed}-${failure.index}`);
    writeFileSync(`${base}.json`, caseToJson(small));
    writeFileSync(`${base}-original.json`, caseToJson(failure.case));
    console.log(`\nFAILED at input #${failure.index} (seed ${seed}, ${failure.case.target}): ${problem}`);
    console.log(failure.verdict.error);
    console.log(`minimized to ${small.bytes.length} of ${failure.case.bytes.length} bytes: ${base}.json`);
    console.log(`replay: npm run fuzz -- --replay ${base}.json`);
    process.exitCode = 1;
    return;
  }
  console.log(`\nno failure: every input parsed or raised a typed error`);
  if (report.runs < RECORD_MIN_RUNS) return;
  writeSection(
    'Parser fuzz',
    [
      `Command: \`npm run fuzz -- --seed ${seed} --runs ${runs}\`. Machine: ${machine()}. Date: ${today()}.`,
      'Inputs: mutations of the fixture clips (bit flips, interesting values over fields and box sizes, 64-bit and',
      'size-0 headers, duplicated, removed, swapped and moved boxes, floods of small boxes, truncations, inserts,',
      'splices) and box structures generated by fast-check, in random chunkings, some with a publisher reconnect;',
      'fed to `Fmp4StreamParser` (alone and through `IngestManager`), `describeInit`, `readSamples`, the',
      'codec-record parsers and the NAL scanners.',
      '',
      table(['target', 'inputs', 'ok', 'rejected, by code'], rows),
      '',
      `**${fmt(report.runs)}** inputs in ${seconds.toFixed(0)} s (${fmt(rate)} inputs/s, one core): **0** failures`,
      `(no error but the documented typed ones, no wrapped unexpected error, every emitted init and fragment reads`,
      `back, no output larger than its input, no input over the work bound of ${DEFAULT_WORK_LIMIT.baseMs} ms + ` +
        `${DEFAULT_WORK_LIMIT.nsPerByte} ns per byte).`,
      `Slowest input ${report.slowest.ms.toFixed(0)} ms (${fmt(report.slowest.bytes)} bytes); ` +
        `peak RSS of the fuzzing process ${fmt(peakRssMb)} MB.`,
    ].join('\n'),
  );
}

main();
