/** `lvqr-transcode bench`: the capacity self-test (how many sources this machine transcodes in realtime). */

import type { RenditionSpec } from '../transcode/rendition.ts';

/** Runs the capacity self-test; returns the process exit code. */
export async function runBench(command: { ladder: RenditionSpec[]; maxSources: number; seconds: number }): Promise<number> {
  const { runCapacityBench } = await import('../../bench/capacity-core.ts');
  return runCapacityBench(command);
}
