import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.ts';

describe('public API', () => {
  it('src/index.ts exports the LVQR names and the service parts under their documented names', () => {
    for (const name of [
      'FragmentFlags',
      'FragmentBroadcaster',
      'FragmentBroadcasterRegistry',
      'FragmentSubscription',
      'TranscodeRunner',
      'TranscodeRunnerHandle',
      'PassthroughTranscoderFactory',
      'AudioPassthroughTranscoderFactory',
      'SoftwareTranscoderFactory',
      'SoftwareLadder',
      'VideoLadder',
      'LadderTranscoderFactory',
      'RungTranscoder',
      'defaultLadder',
      'PRESET_720P',
      'PRESET_480P',
      'PRESET_240P',
      'renditionFromToml',
      'ladderFromToml',
      'createMetrics',
      'createService',
      'HlsBridge',
      'IngestManager',
      'Fmp4StreamParser',
      'LvqrError',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
    expect(api.FragmentFlags.KEYFRAME.keyframe).toBe(true);
    expect(api.defaultLadder().map((r) => r.name)).toEqual(['720p', '480p', '240p']);
  });
});
