/**
 * Capacity self-test (also shipped as `lvqr-transcode bench`): how many live 720p30 sources this
 * machine transcodes through the default ladder in realtime.
 *   node --expose-gc --import tsx bench/capacity.ts [--max-sources 8] [--seconds 20] [--smoke]
 */

import { measureCapacity } from '../src/runtime/capacity.ts';
import { defaultLadder } from '../src/transcode/index.ts';
import { arg, machine, SMOKE, table, today, writeSection } from './lib.ts';

const maxSources = SMOKE ? 1 : Number(arg('max-sources') ?? 8);
const seconds = SMOKE ? 2 : Number(arg('seconds') ?? 20);
const result = await measureCapacity({ ladder: defaultLadder(), maxSources, seconds });
const rows = result.steps.map((s) => [
  s.sources,
  s.sustained ? 'yes' : 'no',
  s.droppedFrames,
  s.latencyP99Ms,
  s.realtimeFactor.toFixed(2),
  s.cpuPercent,
]);
const text = `Command: \`npm run bench:capacity\` (same as \`lvqr-transcode bench --seconds ${seconds}\`). Machine: ${machine()}. Date: ${today()}.
Each step replays a synthetic 720p30 clip (moving pattern under noise, 4 Mb/s) as N live sources in real time through the default ladder; a step is sustained with no dropped frame, rung latency p99 < 1 s and >= 97 % of frames out by the end of the step.

${table(['live sources', 'sustained', 'dropped frames', 'latency p99 ms', 'frames out / expected', 'CPU % (of 200)'], rows)}

This machine sustains **${result.maxSources}** live 720p30 source(s) with the 720p/480p/240p ladder.`;
console.log(text);
writeSection('Capacity self-test', text);
process.exit(0);
