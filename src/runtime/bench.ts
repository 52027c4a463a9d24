/** `lvqr-transcode bench`: runs the capacity self-test with a progress bar and prints the table. */

import type { ScalerMode, TranscodeBackend } from '../server/config.ts';
import type { RuntimeHost } from '../server/main.ts';
import type { RenditionSpec } from '../transcode/rendition.ts';
import { CAPACITY_LATENCY_P99_MS, type CapacityStep, measureCapacity, WARM_FRAMES } from './capacity.ts';
import { type CapacitySource, CLIP_FPS } from './capacity-clip.ts';

/** The columns of a capacity step, as printed by `bench` and written by `npm run bench:capacity`. */
export const CAPACITY_COLUMNS = [
  'live sources',
  'sustained',
  'without the first GOP',
  'dropped frames',
  'overload actions',
  'latency p99 ms (worst rung)',
  'frames out / expected',
  'fragments ingested',
  'CPU % (100 = one core)',
  'server loop delay p99 ms',
] as const;

/** A step's cells under `CAPACITY_COLUMNS`. */
export function capacityRow(s: CapacityStep): Array<string | number> {
  return [
    s.sources,
    s.sustained ? 'yes' : 'no',
    s.sustainedAfterFirstGop === undefined ? '-' : s.sustainedAfterFirstGop ? 'yes' : 'no',
    s.droppedFrames,
    s.overloadActions,
    `${s.latencyP99Ms} (${s.latencyRung})`,
    s.realtimeFactor.toFixed(2),
    s.fragmentsIngested,
    s.cpuPercent,
    s.loopDelayP99Ms ?? '-',
  ];
}

/** Runs the capacity self-test on `host`; returns the process exit code. */
export async function runBench(
  command: {
    ladder: RenditionSpec[];
    source: CapacitySource;
    maxSources: number;
    seconds: number;
    scaler?: ScalerMode;
    backend?: TranscodeBackend;
  },
  host: RuntimeHost,
): Promise<number> {
  const width = 30;
  process.stderr.write(
    `capacity self-test: ladder ${command.ladder.map((r) => r.name).join(',')}, up to ${command.maxSources} live ${command.source}30 sources over HTTP, ${command.seconds} s each\n`,
  );
  const result = await measureCapacity({
    ...command,
    host,
    onProgress: (fraction, label) => {
      const filled = Math.round(Math.min(1, fraction) * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${label.padEnd(12)}`);
    },
  });
  process.stderr.write('\n');
  const widths = CAPACITY_COLUMNS.map((c) => c.length);
  console.log(`source: ${result.clipLabel}, one HTTP POST per source, one fragment per frame`);
  console.log(CAPACITY_COLUMNS.join('  '));
  for (const s of result.steps) {
    console.log(
      capacityRow(s)
        .map((cell, i) => String(cell).padStart(widths[i]!))
        .join('  '),
    );
    if (s.error !== undefined) console.log(`  publisher failed: ${s.error}`);
  }
  console.log(
    `\nThis machine sustains ${result.maxSources} live ${command.source}30 source(s) through the ${result.ladder} ladder in realtime (no dropped frame, no overload action, rung latency p99 <= ${CAPACITY_LATENCY_P99_MS} ms).`,
  );
  if (command.seconds * CLIP_FPS > WARM_FRAMES) {
    console.log(
      `Latency counted from 2.5 s on (without each source's first GOP: start-up left out): ${result.maxSourcesAfterFirstGop}.`,
    );
  }
  return 0;
}
