/**
 * Runs every benchmark in turn (each in its own process) and updates bench/RESULTS.md.
 *   npm run bench            full runs (about 45 minutes on 2 vCPU)
 *   npm run bench -- --smoke seconds-long runs that only prove each still works
 */

import { spawnSync } from 'node:child_process';
import { ROOT } from './lib.ts';

const smoke = process.argv.includes('--smoke');
const scripts = [
  'fanout.ts',
  'hls-load.ts',
  'latency.ts',
  'ladder-throughput.ts',
  'capacity.ts',
  'viewer-latency.ts',
  'cluster.ts',
  'churn.ts',
  // The 1080p capacity steps and the 10-minute memory run are too long for a smoke run.
  ...(smoke ? [] : ['capacity.ts --source 1080p', 'latency.ts --memory']),
];
let failed = 0;
for (const script of scripts) {
  const [file, ...extra] = script.split(' ');
  console.log(`\n=== bench/${script}${smoke ? ' --smoke' : ''}`);
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', `bench/${file}`, ...extra, ...(smoke ? ['--smoke'] : [])],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) failed += 1;
}
console.log(`\nbench: ${scripts.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
