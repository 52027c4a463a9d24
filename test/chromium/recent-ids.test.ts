/** The bounded "gone" marks of the chromium backend's page workers (`src/core/recent-ids.ts`). */

import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/core/recent-ids.ts';

describe('RecentIds', () => {
  it('remembers the most recent ids up to its limit, forgetting the oldest first', () => {
    const ids = new RecentIds(3);
    for (const id of [1, 2, 3]) ids.add(id);
    expect([1, 2, 3].map((id) => ids.has(id))).toEqual([true, true, true]);
    ids.add(1); // 1 is the most recent again: 2 is now the oldest
    ids.add(4);
    expect([1, 2, 3, 4].map((id) => ids.has(id))).toEqual([true, false, true, true]);
    expect(ids.size).toBe(3);
    for (let id = 5; id < 10_000; id++) ids.add(id);
    expect(ids.size).toBe(3);
    expect(ids.has(9_999)).toBe(true);
    expect(ids.has(4)).toBe(false);
  });
});
