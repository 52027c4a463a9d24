import { afterEach, describe, expect, it } from 'vitest';
import { Slabs } from '../../src/core/bytes.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { MEDIA_SLAB_BYTES, RetainedBytes } from '../../src/hls/track-media.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import { appended, closeBridges, FakeTrack, fakeInit, startBridge, videoTrack } from './harness.ts';

afterEach(closeBridges);

async function retainedGauge(metrics: ReturnType<typeof createMetrics>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.retainedBytes.get()).values) out[String(v.labels.store)] = v.value;
  return out;
}

describe('retained media bytes', () => {
  it('counts every byte a window holds: its segments, the open one and the init', async () => {
    const { registry, bridge } = startBridge({ dvrWindowMs: 120_000 });
    expect(bridge.retainedBytes()).toEqual({ bytes: 0, bufferBytes: 0 });
    const video = new FakeTrack(registry, 'live/mem', 'video', { bytes: 1000 });
    video.frames(95, 30); // three complete 1 s segments and five frames of the next
    await appended(bridge, 'live/mem', 'video', 95);
    const initBytes = fakeInit(videoTrack(1920, 1080)).byteLength;
    const held = bridge.retainedBytes();
    expect(held.bytes).toBe(95 * 1000 + initBytes);
    // The complete segments share a slab and the parts another; the init and the five fragments
    // of the part being gathered are blocks of their own.
    expect(held.bufferBytes).toBe(2 * MEDIA_SLAB_BYTES + initBytes + 5 * 1000);
    expect(bridge.broadcasts()[0]?.tracks[0]?.retainedBytes).toBe(held.bytes);
  });

  it("shares the slabs among every track's window", async () => {
    const { registry, bridge } = startBridge();
    for (const name of ['live/one', 'live/two']) new FakeTrack(registry, name, 'video', { bytes: 1000 }).frames(95, 30);
    await appended(bridge, 'live/one', 'video', 95);
    await appended(bridge, 'live/two', 'video', 95);
    const initBytes = fakeInit(videoTrack(1920, 1080)).byteLength;
    const held = bridge.retainedBytes();
    expect(held.bytes).toBe(2 * (95 * 1000 + initBytes));
    expect(held.bufferBytes).toBe(2 * MEDIA_SLAB_BYTES + 2 * (initBytes + 5 * 1000));
  });

  it('gives the DVR window back: what is held stays level once the window is full', async () => {
    const { registry, bridge } = startBridge({ targetDurationMs: 1000, dvrWindowMs: 4000 });
    const video = new FakeTrack(registry, 'live/level', 'video', { bytes: 1000 });
    video.frames(30 * 20, 30);
    await appended(bridge, 'live/level', 'video', 600);
    const at20s = bridge.retainedBytes().bytes;
    video.frames(30 * 20, 30);
    await appended(bridge, 'live/level', 'video', 1200);
    // 4 s window + 2 targets of grace + the open segment: about 7 s of 30 kB/s, not 40 s.
    expect(at20s).toBeLessThan(8 * 30 * 1000);
    expect(bridge.retainedBytes().bytes).toBe(at20s);
  });

  it('joins small arrays into shared slabs and gives larger ones a block of their own', () => {
    const slabs = new Slabs(1000);
    const a = slabs.join([Uint8Array.of(1, 2), Uint8Array.of(3)], 3);
    const b = slabs.join([new Uint8Array(400).fill(7)], 400);
    expect([...a]).toEqual([1, 2, 3]);
    expect(b.buffer).toBe(a.buffer); // same slab
    expect(b.byteOffset).toBe(3);
    expect(b.every((x) => x === 7)).toBe(true);
    const c = slabs.join([new Uint8Array(400)], 400); // 403 + 400 still fits
    expect(c.buffer).toBe(a.buffer);
    const d = slabs.join([new Uint8Array(300)], 300); // does not fit: a new slab
    expect(d.buffer).not.toBe(a.buffer);
    expect(d.buffer.byteLength).toBe(1000);
    // Half a slab or more: a block of its own; an array that is already one is kept, a view is copied.
    const own = new Uint8Array(600);
    expect(slabs.join([own], 600)).toBe(own);
    const view = new Uint8Array(new ArrayBuffer(4096), 100, 600).fill(9);
    const copied = slabs.join([view], 600);
    expect(copied.buffer.byteLength).toBe(600);
    expect(copied.every((x) => x === 9)).toBe(true);
    expect(() => new Slabs(0)).toThrow(RangeError);
  });

  it('counts the whole memory block behind a small view once', () => {
    const block = new ArrayBuffer(1 << 20);
    const tally = new RetainedBytes();
    tally.add(new Uint8Array(block, 0, 100));
    tally.add(new Uint8Array(block, 100, 100));
    tally.add(new Uint8Array(50));
    expect(tally.bytes).toBe(250);
    expect(tally.bufferBytes).toBe((1 << 20) + 50);
  });

  it("counts what the registry's subscribers have not read yet", async () => {
    const registry = new FragmentBroadcasterRegistry();
    const video = new FakeTrack(registry, 'live/queue', 'video', { bytes: 700 });
    const sub = video.broadcaster.subscribe();
    video.frames(3, 30);
    expect(registry.queuedBytes()).toBe(2100);
    await sub.next();
    expect(registry.queuedBytes()).toBe(1400);
    sub.close();
    expect(registry.queuedBytes()).toBe(0);
  });

  it('exports the sum of its reporters as lvqr_retained_bytes, by store', async () => {
    const metrics = createMetrics();
    const off = metrics.reportRetained(() => ({ hls_media: 10, subscriber_queues: 3 }));
    metrics.reportRetained(() => ({ hls_media: 5 }));
    expect(await retainedGauge(metrics)).toEqual({ hls_media: 15, subscriber_queues: 3 });
    off();
    expect(await retainedGauge(metrics)).toEqual({ hls_media: 5 });
    expect(await metrics.registry.metrics()).toContain('lvqr_retained_bytes{store="hls_media"} 5');
  });
});
