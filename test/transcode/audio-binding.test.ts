import { describe, expect, it, vi } from 'vitest';
import type { AudioPacket } from '../../src/transcode/audio/index.ts';
import { bindAudioWebCodecs } from '../../src/transcode/audio-webcodecs-binding.ts';
import { napiProvider } from '../../src/webcodecs/index.ts';
import { waitFor } from '../support/wait.ts';

const RATE = 48_000;
const FRAMES = 1024;

describe('audio WebCodecs binding (real addon)', () => {
  it('an encoder with room in its queue yields a macrotask only every few calls, and still delivers every packet', async () => {
    const codecs = bindAudioWebCodecs((await napiProvider()).codecs)!;
    const packets: AudioPacket[] = [];
    const errors: unknown[] = [];
    const encoder = codecs.createEncoder(
      { codec: 'aac', sampleRate: RATE, channels: 2, bitrateBps: 64_000 },
      (p) => packets.push(p),
      (e) => errors.push(e),
    );
    const blocks = 48;
    let yields = 0;
    try {
      for (let b = 0; b < blocks; b++) {
        const data = new Float32Array(FRAMES * 2);
        for (let i = 0; i < FRAMES; i++) {
          const v = 0.2 * Math.sin((2 * Math.PI * 440 * (b * FRAMES + i)) / RATE);
          data[2 * i] = v;
          data[2 * i + 1] = v;
        }
        // Time between blocks for the addon to drain its queue (as live audio arrives, 21 ms apart).
        await waitFor(() => packets.length >= b - 1, `packet ${b - 1}`, { timeoutMs: 10_000 });
        // Each macrotask yield costs a whole event-loop turn in a process busy with a video ladder.
        const spy = vi.spyOn(globalThis, 'setImmediate');
        try {
          await encoder.encode({
            timestampUs: Math.round((b * FRAMES * 1e6) / RATE),
            sampleRate: RATE,
            channels: 2,
            frames: FRAMES,
            data,
          });
        } finally {
          yields += spy.mock.calls.length;
          spy.mockRestore();
        }
      }
      await encoder.flush();
      await waitFor(() => packets.length >= blocks, `${blocks} packets`);
      expect(errors).toEqual([]);
      expect(yields).toBeLessThanOrEqual(blocks / 4);
    } finally {
      encoder.close();
    }
  });
});
