/** `lvqr-transcode bench`: runs the capacity self-test with a progress bar and prints the table. */

import type { RenditionSpec } from '../transcode/rendition.ts';
import { measureCapacity } from './capacity.ts';

/** Runs the capacity self-test; returns the process exit code. */
export async function runBench(command: {
  ladder: RenditionSpec[];
  maxSources: number;
  seconds: number;
}): Promise<number> {
  const width = 30;
  process.stderr.write(
    `capacity self-test: ladder ${command.ladder.map((r) => r.name).join(',')}, up to ${command.maxSources} live 720p30 sources, ${command.seconds} s each\n`,
  );
  const result = await measureCapacity({
    ...command,
    onProgress: (fraction, label) => {
      const filled = Math.round(Math.min(1, fraction) * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${label.padEnd(12)}`);
    },
  });
  process.stderr.write('\n');
  console.log('sources  sustained  dropped  latency p99 ms  frames out/expected  CPU %');
  for (const s of result.steps) {
    console.log(
      `${String(s.sources).padStart(7)}  ${(s.sustained ? 'yes' : 'no').padStart(9)}  ${String(s.droppedFrames).padStart(7)}  ${String(s.latencyP99Ms).padStart(14)}  ${s.realtimeFactor.toFixed(2).padStart(19)}  ${String(s.cpuPercent).padStart(5)}`,
    );
  }
  console.log(
    `\nThis machine sustains ${result.maxSources} live 720p30 source(s) through the ${result.ladder} ladder in realtime.`,
  );
  return 0;
}
