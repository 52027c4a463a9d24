import { afterEach, describe, expect, it } from 'vitest';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { RetainedBytes } from '../../src/hls/track-media.ts';
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
    // Complete segments are one copy each; nothing else keeps a larger block alive.
    expect(held.bufferBytes).toBe(held.bytes);
    expect(bridge.broadcasts()[0]?.tracks[0]?.retainedBytes).toBe(held.bytes);
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
