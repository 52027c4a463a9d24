/** Placeholder replaced below. */
export async function runCapacityBench(_c: unknown): Promise<number> {
  return 0;
}
