import { describe, expect, it } from 'vitest';
import { defaultLadder, PRESET_240P, PRESET_720P } from '../../src/transcode/index.ts';
import { DecoderRenewal, RENEW_AFTER_HELD_FRAMES } from '../../src/transcode/ladder/decoder-renewal.ts';
import { bypassReason, evenSize, type PlannedRung, planLadder, planRung } from '../../src/transcode/ladder/plan.ts';
import { GopBitrate } from '../../src/transcode/ladder/source-bitrate.ts';

const sizes = (source: { width: number; height: number }) =>
  planLadder(source, defaultLadder()).rungs.map((r) => `${r.rendition.name}:${r.width}x${r.height}`);

describe('ladder planning', () => {
  it('a 1080p source gets every rung at 16:9 with even sizes', () => {
    expect(sizes({ width: 1920, height: 1080 })).toEqual(['720p:1280x720', '480p:854x480', '240p:426x240']);
  });

  it('a 640x360 source gets no 720p or 480p rung, and says why', () => {
    const plan = planLadder({ width: 640, height: 360 }, defaultLadder());
    expect(plan.rungs.map((r) => r.rendition.name)).toEqual(['240p']);
    expect(plan.skipped.map((s) => s.rendition.name)).toEqual(['720p', '480p']);
    expect(plan.skipped[0]?.reason).toMatch(/no upscaling/);
  });

  it('a portrait 1080x1920 source gets portrait rungs (720p is 720x1280)', () => {
    expect(sizes({ width: 1080, height: 1920 })).toEqual(['720p:720x1280', '480p:480x854', '240p:240x426']);
  });

  it('a 4:3 source keeps 4:3 (no stretching)', () => {
    expect(sizes({ width: 1440, height: 1080 })).toEqual(['720p:960x720', '480p:640x480', '240p:320x240']);
  });

  it('an odd-ratio source gets even sizes', () => {
    const r = planRung({ width: 1000, height: 750 }, PRESET_240P);
    expect(typeof r).toBe('object');
    if (typeof r === 'object') {
      expect(r.width % 2).toBe(0);
      expect(r.height).toBe(240);
    }
  });

  it('a rung as tall as the source is kept (same size, lower bitrate), carries frame rate and bitrate', () => {
    const r = planRung({ width: 1280, height: 720, frameRate: 25 }, PRESET_720P);
    expect(r).toMatchObject({ width: 1280, height: 720, frameRate: 25, videoBitrateBps: 2_500_000 });
  });

  it('evenSize rounds to even and never below 2', () => {
    expect([evenSize(0), evenSize(1), evenSize(426.6), evenSize(853.33)]).toEqual([2, 2, 426, 854]);
  });
});

describe('rung bypass rule', () => {
  const source = { width: 1280, height: 720, frameRate: 30 };
  const rung = planRung(source, PRESET_720P) as PlannedRung;

  it('bypasses a source-sized rung whose bitrate is at least the source bitrate, and only that', () => {
    expect(bypassReason(rung, source, 1_600_000)).toMatch(
      /source is 1280x720 at 1600 kb\/s, the rung would be 2500 kb\/s/,
    );
    expect(bypassReason(rung, source, 2_500_000)).toBeDefined();
    expect(bypassReason(rung, source, 2_500_001)).toBeUndefined();
    expect(bypassReason(rung, source, undefined)).toBeUndefined();
    const wider = { width: 1280, height: 722 };
    expect(bypassReason(planRung(wider, PRESET_720P) as PlannedRung, wider, 100_000)).toBeUndefined();
  });

  it('measures the first whole GOP, from its keyframe to the next', () => {
    const m = new GopBitrate();
    const sample = (dts: number, bytes: number, keyframe = false) => ({
      data: new Uint8Array(bytes),
      dts,
      duration: 3000,
      keyframe,
    });
    // A delta frame before the first keyframe is not counted.
    m.push([sample(0, 9999)], 90_000);
    expect(m.partialBps()).toBeUndefined();
    m.push([sample(3000, 30_000, true), sample(6000, 7_500)], 90_000);
    expect(m.bps).toBeUndefined();
    // 37 500 bytes over 2 frames of 1/30 s.
    expect(m.partialBps()).toBeCloseTo((37_500 * 8) / (6000 / 90_000), 6);
    m.push([sample(9000, 7_500), sample(12_000, 30_000, true)], 90_000);
    expect(m.bps).toBeCloseTo((45_000 * 8) / (9000 / 90_000), 6);
    expect(m.seconds).toBeCloseTo(0.1, 6);
    m.reset();
    expect(m.bps).toBeUndefined();
  });
});

describe('decoder renewal after a backlog', () => {
  const rungs = (...held: number[]) => held.map((queuedFrames) => ({ queuedFrames }));

  it(`is due once a rung held ${RENEW_AFTER_HELD_FRAMES} frames or more and every rung holds 2 or fewer, at most once per 10 s`, () => {
    let nowMs = 0;
    const renewal = new DecoderRenewal(() => nowMs);
    renewal.noteHeld(RENEW_AFTER_HELD_FRAMES - 1);
    expect(renewal.due(rungs(0, 0, 0))).toBe(false);
    renewal.noteHeld(RENEW_AFTER_HELD_FRAMES);
    expect(renewal.due(rungs(0, 3, 0))).toBe(false);
    expect(renewal.due(rungs(2, 1, 0))).toBe(true);
    renewal.renewed();
    renewal.newDecoder();
    expect(renewal.count).toBe(1);
    expect(renewal.due(rungs(0, 0, 0))).toBe(false);
    // A second backlog soon after waits for the interval, then renews.
    renewal.noteHeld(40);
    nowMs = 9_999;
    expect(renewal.due(rungs(0, 0, 0))).toBe(false);
    nowMs = 10_000;
    expect(renewal.due(rungs(0, 0, 0))).toBe(true);
    // A decoder made for another reason (a failure, a new init) starts with an empty pool.
    renewal.newDecoder();
    expect(renewal.highWater).toBe(0);
    expect(renewal.due(rungs(0, 0, 0))).toBe(false);
  });
});
