import { describe, expect, it } from 'vitest';
import { ChunkQueue } from '../../src/container/chunk-queue.ts';
import { collected, track } from '../support/collected.ts';

const bytes = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

describe('ChunkQueue', () => {
  it('reads by length across chunks, as views within one chunk and copies across several', () => {
    const q = new ChunkQueue();
    const a = bytes(0, 4);
    q.push(a);
    q.push(bytes(4, 4));
    expect(q.buffered).toBe(8);
    const view = q.take(2);
    expect([...view]).toEqual([0, 1]);
    expect(view.buffer).toBe(a.buffer);
    const joined = q.take(4);
    expect([...joined]).toEqual([2, 3, 4, 5]);
    expect(joined.buffer).not.toBe(a.buffer);
    expect(q.position).toBe(6);
    q.drop(2);
    expect(q.buffered).toBe(0);
  });

  it('lets go of each chunk it has consumed while later ones stay queued', async () => {
    const q = new ChunkQueue();
    // The chunks exist only in the queue and the WeakRefs (built in a nested scope).
    const refs = (() => {
      const chunks = Array.from({ length: 10 }, (_, i) => bytes(i * 100, 100));
      for (const c of chunks) q.push(c);
      return track(chunks);
    })();
    // Five and a half chunks consumed: the queue never empties, as on a live stream.
    q.drop(550);
    expect(q.buffered).toBe(450);
    const gone = await collected(refs);
    expect(gone.slice(0, 5)).toEqual([true, true, true, true, true]);
    expect(gone.slice(6)).toEqual([false, false, false, false]);
    expect([...q.take(3)]).toEqual([550 & 0xff, 551 & 0xff, 552 & 0xff]);
  });
});
