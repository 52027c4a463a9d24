import { describe, expect, it } from 'vitest';
import { QueueCount, RESYNC_AFTER_MS } from '../../src/webcodecs/queue-count.ts';
import { waitFor } from '../support/wait.ts';

describe('QueueCount', () => {
  it('counts calls less dequeue events, never below zero', () => {
    const q = new QueueCount();
    q.queued();
    q.queued();
    q.queued();
    q.dequeued();
    expect(q.value).toBe(2);
    q.dequeued();
    q.dequeued();
    q.dequeued();
    expect(q.value).toBe(0);
  });

  it('after a resync, the events of items the codec had already let go are not counted twice', () => {
    const q = new QueueCount();
    q.queued();
    q.queued();
    // The codec holds one: one event is still on its way.
    q.resync(1);
    expect(q.value).toBe(1);
    q.dequeued(); // the late event
    expect(q.value).toBe(1);
    q.dequeued(); // the item the codec held
    expect(q.value).toBe(0);
    // A resync never raises the count.
    q.queued();
    q.resync(5);
    expect(q.value).toBe(1);
  });

  it(`is stale once it has not moved for ${RESYNC_AFTER_MS} ms, and a resync or an event freshens it`, async () => {
    const q = new QueueCount();
    q.queued();
    expect(q.stale).toBe(false);
    await waitFor(() => q.stale, 'the count to go stale', { timeoutMs: RESYNC_AFTER_MS * 8, intervalMs: 10 });
    q.resync(1);
    expect(q.stale).toBe(false);
    await waitFor(() => q.stale, 'the count to go stale again', { timeoutMs: RESYNC_AFTER_MS * 8, intervalMs: 10 });
    q.dequeued();
    expect(q.stale).toBe(false);
  });
});
