/**
 * Handles of queued frames stay young: the addon gives a decoded frame's pixels back to its
 * decoder's picture pool only when the handle is collected, and a handle that survives two
 * young-generation collections is left to a rare full one while the pool grows (bench/RESULTS.md,
 * "Memory under overload"). With encoders slower than the source, every frame waiting in a rung's
 * queue must carry a handle made since the ladder's previous collection. Real codecs; the frames
 * are wrapped to date their handles, the ladder's `gc` hook counts collections.
 */

import { describe, expect, it } from 'vitest';
import type { VideoCodecs, VideoFrameLike } from '../../src/transcode/codecs.ts';
import { PRESET_240P } from '../../src/transcode/index.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { createHarness, publish, slowEncoders } from '../support/ladder.ts';

/** Every open handle, with the collection count at its making. */
class Handles {
  collections = 0;
  readonly open = new Set<DatedFrame>();
  /** The most collections an open handle outside an encoder had lived through, at any collection. */
  maxSurvived = 0;
  made = 0;

  wrap(inner: VideoFrameLike): DatedFrame {
    const frame = new DatedFrame(inner, this);
    this.open.add(frame);
    this.made += 1;
    return frame;
  }

  /** The ladder's collection hook. */
  collect(): void {
    for (const h of this.open) {
      if (h.encoding === 0) this.maxSurvived = Math.max(this.maxSurvived, this.collections - h.bornAt);
    }
    this.collections += 1;
  }
}

class DatedFrame implements VideoFrameLike {
  readonly bornAt: number;
  encoding = 0;
  constructor(
    readonly inner: VideoFrameLike,
    readonly handles: Handles,
  ) {
    this.bornAt = handles.collections;
  }
  get timestamp(): number {
    return this.inner.timestamp;
  }
  clone(): DatedFrame {
    return this.handles.wrap(this.inner.clone());
  }
  close(): void {
    this.inner.close();
    this.handles.open.delete(this);
  }
}

/** `inner` with its decoded frames dated by `handles` (unwrapped again for the encoders). */
function dated(inner: VideoCodecs, handles: Handles): VideoCodecs {
  return {
    backend: inner.backend,
    createDecoder: (config, onFrame, onError) => inner.createDecoder(config, (f) => onFrame(handles.wrap(f)), onError),
    createEncoder(config, onChunk, onError) {
      const encoder = inner.createEncoder(config, onChunk, onError);
      return {
        async encode(frame, options) {
          const d = frame as DatedFrame;
          d.encoding += 1;
          try {
            await encoder.encode(d.inner, options);
          } finally {
            d.encoding -= 1;
          }
        },
        flush: () => encoder.flush(),
        close: () => encoder.close(),
      };
    },
  };
}

describe('frame handles in rung queues', () => {
  it('every queued frame has a handle made since the previous collection, and every handle is closed', async () => {
    const handles = new Handles();
    const harness = await createHarness({
      renditions: [PRESET_240P],
      // Encoders 40 ms a frame behind a source published at 3x (90 frames/s): the queue fills.
      wrap: (real) =>
        dated(
          slowEncoders(real, () => 40),
          handles,
        ),
      ladder: { gc: () => handles.collect(), gcEveryFrames: 5 },
    });
    try {
      await publish(harness.ingest, 'live/handles', [{ bytes: readFixture('portrait-720x1280.mp4'), durationS: 3 }], {
        speed: 3,
      });
      await harness.settled('live/handles');
    } finally {
      await harness.close();
    }
    expect(harness.maxQueued.get('live/handles/240p') ?? 0, 'frames waited in the queue').toBeGreaterThanOrEqual(15);
    expect(handles.collections).toBeGreaterThanOrEqual(10);
    expect(handles.maxSurvived, 'collections a queued handle lived through').toBe(0);
    expect(handles.open.size, 'handles left open').toBe(0);
  });
});
