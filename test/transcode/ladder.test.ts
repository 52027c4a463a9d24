import { describe, expect, it } from 'vitest';
import { defaultLadder, PRESET_240P, PRESET_720P } from '../../src/transcode/index.ts';
import { evenSize, planLadder, planRung } from '../../src/transcode/ladder/plan.ts';

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
