import { createFragment, type Fragment, FragmentFlags, type FragmentMeta } from '../../src/fragment/index.ts';

/** Video meta without an init segment. */
export function videoMeta(init?: Uint8Array): FragmentMeta {
  return { codec: 'avc1.640028', timescale: 90_000, initSegment: init };
}

/** A synthetic video fragment; `keyframe` defaults to every `gop`-th index. */
export function frag(
  index: number,
  opts: { keyframe?: boolean; gop?: number; bytes?: number; track?: string } = {},
): Fragment {
  const gop = opts.gop ?? 30;
  const keyframe = opts.keyframe ?? index % gop === 0;
  return createFragment({
    trackId: opts.track ?? '0.mp4',
    groupId: Math.floor(index / gop),
    objectId: index % gop,
    priority: keyframe ? 0 : 1,
    dts: index * 3000,
    pts: index * 3000,
    duration: 3000,
    flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
    payload: new Uint8Array(opts.bytes ?? 16).fill(index & 0xff),
  });
}

/** A synthetic audio fragment (independent). */
export function audioFrag(index: number): Fragment {
  return createFragment({
    trackId: '1.mp4',
    groupId: index,
    objectId: 0,
    priority: 0,
    dts: index * 1024,
    pts: index * 1024,
    duration: 1024,
    flags: FragmentFlags.AUDIO,
    payload: new Uint8Array(8).fill(index & 0xff),
  });
}
