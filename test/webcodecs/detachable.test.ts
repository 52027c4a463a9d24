/**
 * Closed codecs are collected with their owners. `@napi-rs/webcodecs` holds a codec's callbacks
 * until the codec object is finalized, so a callback that reaches the codec (through its owner)
 * kept every closed codec, its owner and all they held alive: one decoder, three encoders, the
 * audio ladder's codecs and the last fragment per publisher session in the service. Each case
 * gives its owner a 1 MB payload that only the callbacks reach, uses and closes the codec, drops
 * it, and waits (with forced collections) until every payload is collected. On the code before
 * `detachable` none was.
 */

import { describe, expect, it } from 'vitest';
import type { PcmBlock } from '../../src/transcode/audio/audio-codecs.ts';
import { bindAudioWebCodecs } from '../../src/transcode/audio-webcodecs-binding.ts';
import { detachable, H264Decoder, H264Encoder, napiProvider } from '../../src/webcodecs/index.ts';
import { makeH264Stream } from '../support/h264.ts';
import { waitFor } from '../support/wait.ts';

const gc = (globalThis as { gc?: () => void }).gc;

/** Runs `cycle` `times` times with a fresh payload each, then waits until every payload is collected. */
async function payloadsCollected(times: number, cycle: (payload: Uint8Array) => Promise<void>): Promise<number> {
  if (gc === undefined) throw new Error('these tests need --expose-gc (vitest.config.ts sets it)');
  let collected = 0;
  const registry = new FinalizationRegistry(() => {
    collected += 1;
  });
  // In a function of its own: a finished call's frame holds none of the payloads.
  const run = async (): Promise<void> => {
    for (let i = 0; i < times; i++) {
      const payload = new Uint8Array(2 ** 20);
      registry.register(payload, i);
      await cycle(payload);
    }
  };
  await run();
  await waitFor(
    () => {
      gc();
      if (collected < times) throw new Error(`${collected} of ${times} payloads collected`);
      return true;
    },
    'the closed codecs and their owners collected',
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  return collected;
}

describe('detachable callbacks', () => {
  it('forward to their handlers until detached, then do nothing', () => {
    const seen: string[] = [];
    const relay = detachable({ output: (x: string) => seen.push(x), error: (e: Error) => seen.push(e.message) });
    relay.callbacks.output('a');
    relay.callbacks.error(new Error('b'));
    relay.detach();
    relay.callbacks.output('c');
    relay.detach();
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('closed codecs are collected with what their owners hold', () => {
  it('H264Encoder: encoded, flushed and closed', async () => {
    const { codecs } = await napiProvider();
    const picture = new Uint8Array((320 * 240 * 3) / 2);
    const collected = await payloadsCollected(5, async (payload) => {
      let chunks = 0;
      const encoder = new H264Encoder(codecs, {
        width: 320,
        height: 240,
        bitrateBps: 300_000,
        framerate: 30,
        onChunk: () => {
          chunks += payload.length > 0 ? 1 : 0;
        },
        onError: () => payload.fill(0),
      });
      for (let i = 0; i < 3; i++) {
        const frame = new codecs.VideoFrame(picture, {
          format: 'I420',
          codedWidth: 320,
          codedHeight: 240,
          timestamp: i * 33_333,
        });
        await encoder.encode(frame, { keyFrame: i === 0, durationUs: 33_333 });
        frame.close();
      }
      await encoder.flush();
      encoder.close();
      expect(chunks).toBe(3);
    });
    expect(collected).toBe(5);
  });

  it('H264Decoder: decoded, reset, flushed and closed', async () => {
    const { codecs } = await napiProvider();
    const stream = await makeH264Stream({ width: 320, height: 240, frames: 10, gop: 5, bframes: 0 });
    const collected = await payloadsCollected(5, async (payload) => {
      let frames = 0;
      const decoder = new H264Decoder(codecs, {
        codec: stream.codec,
        description: stream.description,
        onFrame: (frame) => {
          frames += payload.length > 0 ? 1 : 0;
          frame.close();
        },
        onError: () => payload.fill(0),
      });
      for (const sample of stream.samples.slice(0, 5)) await decoder.decode(sample);
      // A reset replaces the native decoder: the old one must not keep this one alive either.
      decoder.reset();
      for (const sample of stream.samples.slice(5)) await decoder.decode(sample);
      await decoder.flush();
      decoder.close();
      expect(frames).toBeGreaterThanOrEqual(5);
    });
    expect(collected).toBe(5);
  });

  it('the audio binding: an AAC encoder and a decoder of its packets, closed', async () => {
    const { codecs } = await napiProvider();
    const audio = bindAudioWebCodecs(codecs);
    expect(audio).toBeDefined();
    const collected = await payloadsCollected(5, async (payload) => {
      const packets: Array<{ data: Uint8Array; timestampUs: number; description?: Uint8Array | undefined }> = [];
      const encoder = audio!.createEncoder(
        { codec: 'aac', sampleRate: 48_000, channels: 2, bitrateBps: 128_000 },
        (packet) => packets.push(payload.length > 0 ? packet : { ...packet, data: new Uint8Array() }),
        () => payload.fill(0),
      );
      for (let i = 0; i < 8; i++) {
        const block: PcmBlock = {
          timestampUs: Math.round((i * 1024 * 1e6) / 48_000),
          sampleRate: 48_000,
          channels: 2,
          frames: 1024,
          data: new Float32Array(2048).map((_, k) => Math.sin((i * 1024 + k) / 20) * 0.2),
        };
        await encoder.encode(block);
      }
      await encoder.flush();
      encoder.close();
      const description = packets.find((p) => p.description !== undefined)?.description;
      expect(description).toBeDefined();
      let blocks = 0;
      const decoder = audio!.createDecoder(
        { codec: 'mp4a.40.2', sampleRate: 48_000, channels: 2, description: description! },
        () => {
          blocks += payload.length > 0 ? 1 : 0;
        },
        () => payload.fill(0),
      );
      for (const p of packets) await decoder.decode({ data: p.data, timestampUs: p.timestampUs, durationUs: 21_333 });
      await decoder.flush();
      decoder.close();
      expect(blocks).toBeGreaterThan(0);
    });
    expect(collected).toBe(5);
  });
});
