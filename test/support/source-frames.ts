/**
 * Which source frames a rung published, judged by ffprobe (frame times matched to the source's),
 * and the shape a rung's output must have after its codecs failed mid-stream: frames from the
 * start, then (when the fault caught frames in flight) a gap and a run from a later source keyframe
 * to the end. Shared by the backends' fault tests (chromium page workers, codec threads).
 */

import { expect } from 'vitest';
import { type CollectedOutput, judge, sessionFile } from './ladder.ts';

/** Source frame indices (by timestamp) an output published, across its sessions; -1 for a foreign one. */
export async function publishedIndices(
  output: CollectedOutput,
  sourceS: readonly number[],
  timescale: number,
): Promise<number[]> {
  const indices: number[] = [];
  for (const session of output.sessions) {
    const judged = await judge(sessionFile(session));
    expect(judged.decodeErrors, output.rendition).toEqual([]);
    for (const frame of judged.frames) {
      const t = frame.pts / judged.timescale;
      indices.push(sourceS.findIndex((s) => Math.abs(s - t) <= 0.5 / timescale));
    }
  }
  return indices;
}

/**
 * `indices` start at frame 0, hold only source frames, and after at most one gap run from a source
 * keyframe to the last of `frameCount` frames (a fault between two GOPs loses nothing).
 */
export function expectResumedAtKeyframe(
  indices: readonly number[],
  keyIndices: readonly number[],
  frameCount: number,
  label: string,
): void {
  expect(indices[0], `${label}: from the start`).toBe(0);
  expect(
    indices.every((i) => i >= 0),
    `${label}: only source frames`,
  ).toBe(true);
  const resumedAt = indices.findIndex((index, i) => i > 0 && index !== indices[i - 1]! + 1);
  const resumed = resumedAt === -1 ? 0 : indices[resumedAt]!;
  expect(keyIndices, `${label}: resumed at a keyframe`).toContain(resumed);
  expect(indices.slice(Math.max(0, resumedAt)), `${label}: to the end`).toEqual(
    Array.from({ length: frameCount - resumed }, (_, k) => resumed + k),
  );
}

/** A rung that a fault elsewhere must not touch: every source frame, in one session, no restart, nothing dropped. */
export async function expectUntouched(
  output: CollectedOutput,
  stats: Record<string, unknown>,
  source: { sourceS: readonly number[]; timescale: number },
  label: string,
): Promise<void> {
  expect(await publishedIndices(output, source.sourceS, source.timescale), `${label}: every source frame`).toEqual(
    Array.from({ length: source.sourceS.length }, (_, i) => i),
  );
  expect(output.sessions, `${label}: one session`).toHaveLength(1);
  expect(stats['restarts'], label).toBe(0);
  expect(stats['droppedFrames'], label).toBe(0);
}
