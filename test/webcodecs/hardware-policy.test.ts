/**
 * The hardware policy decided by real encodes: the probe and the per-session check read what
 * actually encoded the output (x264 signs its streams in an SEI; a hardware encoder does not), never
 * an accelerator list or an isConfigSupported answer. A provider that fakes a working accelerator
 * runs the real encoder and strips its signature (what a hardware encoder's output looks like); one
 * that fakes a broken accelerator lists "cuda" but serves libx264 (what the addon does on a GPU
 * without an encoder, measured on an NVIDIA H200: bench/RESULTS.md).
 */

import { describe, expect, it } from 'vitest';
import { type Logger, silentLogger } from '../../src/core/log.ts';
import { loadVideoCodecs } from '../../src/runtime/shared.ts';
import { parseServe } from '../../src/server/config.ts';
import { bindWebCodecs } from '../../src/transcode/webcodecs-binding.ts';
import {
  type EncodedVideoChunkPort,
  nalTypes,
  napiProvider,
  probeCapabilities,
  softwareEncoderOf,
  type VideoEncoderConstructorPort,
  type VideoEncoderInitPort,
  type VideoEncoderPort,
  type WebCodecsProvider,
} from '../../src/webcodecs/index.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { createHarness, publish } from '../support/ladder.ts';

/** Access unit `data` (4-byte lengths) without its SEI NAL units. */
function withoutSei(data: Uint8Array): Uint8Array {
  const kept: Uint8Array[] = [];
  for (let at = 0; at + 4 <= data.length; ) {
    const length = new DataView(data.buffer, data.byteOffset + at).getUint32(0);
    if ((data[at + 4]! & 0x1f) !== 6) kept.push(data.subarray(at, at + 4 + length));
    at += 4 + length;
  }
  const out = new Uint8Array(kept.reduce((n, k) => n + k.length, 0));
  let offset = 0;
  for (const k of kept) {
    out.set(k, offset);
    offset += k.length;
  }
  return out;
}

/** The real encoder with its signature stripped from every chunk: output as a hardware encoder's. */
function unsignedEncoder(Real: VideoEncoderConstructorPort): VideoEncoderConstructorPort {
  return class UnsignedEncoder implements VideoEncoderPort {
    static isConfigSupported = Real.isConfigSupported.bind(Real);
    readonly #inner: VideoEncoderPort;
    ondequeue: (() => unknown) | null = null;
    constructor(init: VideoEncoderInitPort) {
      this.#inner = new Real({
        output: (chunk, metadata) => {
          const bytes = new Uint8Array(chunk.byteLength);
          chunk.copyTo(bytes);
          const data = withoutSei(bytes);
          const stripped: EncodedVideoChunkPort = {
            type: chunk.type,
            timestamp: chunk.timestamp,
            duration: chunk.duration,
            byteLength: data.byteLength,
            copyTo: (destination) => destination.set(data),
          };
          init.output(stripped, metadata);
        },
        error: init.error,
      });
    }
    get state() {
      return this.#inner.state;
    }
    get encodeQueueSize() {
      return this.#inner.encodeQueueSize;
    }
    configure(config: Parameters<VideoEncoderPort['configure']>[0]): void {
      this.#inner.configure(config);
    }
    encode(
      frame: Parameters<VideoEncoderPort['encode']>[0],
      options?: Parameters<VideoEncoderPort['encode']>[1],
    ): void {
      this.#inner.encode(frame, options);
    }
    flush(): Promise<void> {
      return this.#inner.flush();
    }
    reset(): void {
      this.#inner.reset();
    }
    close(): void {
      this.#inner.close();
    }
  };
}

async function providers(): Promise<{
  working: WebCodecsProvider;
  broken: WebCodecsProvider;
  plain: WebCodecsProvider;
}> {
  const plain = await napiProvider();
  return {
    plain,
    working: {
      name: 'napi',
      codecs: { ...plain.codecs, VideoEncoder: unsignedEncoder(plain.codecs.VideoEncoder) },
      hardwareAccelerators: () => ['cuda'],
    },
    broken: { name: 'napi', codecs: plain.codecs, hardwareAccelerators: () => ['cuda'] },
  };
}

function capturingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  return { logger: { ...silentLogger, warn: (message) => warnings.push(message) }, warnings };
}

const config = (encoder: string) => parseServe(['--transcode-encoder', encoder, '--test-pattern', 'off'], {}, () => '');

describe('hardware policy', () => {
  it('the probe reads what served its test encode: libx264 is software even when an accelerator is listed', async () => {
    const { working, broken, plain } = await providers();
    const real = await probeCapabilities(plain, { hardwareAcceleration: 'prefer-hardware' });
    expect({ backend: real.encoderBackend, signed: real.softwareEncoder }).toEqual({
      backend: 'software',
      signed: 'libx264',
    });
    const faked = await probeCapabilities(broken, { hardwareAcceleration: 'prefer-hardware' });
    expect({ backend: faked.encoderBackend, signed: faked.softwareEncoder }).toEqual({
      backend: 'software',
      signed: 'libx264',
    });
    const hardware = await probeCapabilities(working, { hardwareAcceleration: 'prefer-hardware' });
    expect({ backend: hardware.encoderBackend, signed: hardware.softwareEncoder }).toEqual({
      backend: 'hardware',
      signed: undefined,
    });
    expect(hardware.h264Decode).toBe(true);
    // Asked for software, the same unsigned output is software.
    expect((await probeCapabilities(working, { hardwareAcceleration: 'prefer-software' })).encoderBackend).toBe(
      'software',
    );
  });

  it('software: never asks for hardware', async () => {
    const { working } = await providers();
    const { logger, warnings } = capturingLogger();
    const loaded = await loadVideoCodecs(config('software'), logger, working);
    expect(loaded.codecs?.backend).toBe('software');
    expect(warnings).toEqual([]);
  });

  it('prefer-hardware: runs on the accelerator a real encode proved, else falls back to software with a warning', async () => {
    const { working, broken } = await providers();
    const ok = await loadVideoCodecs(config('prefer-hardware'), silentLogger, working);
    expect(ok.codecs?.backend).toBe('cuda');
    expect(ok.info?.['hardwareFallback']).toBeUndefined();
    const { logger, warnings } = capturingLogger();
    const fallback = await loadVideoCodecs(config('prefer-hardware'), logger, broken);
    expect(fallback.codecs?.backend).toBe('software');
    expect(fallback.info?.['hardwareFallback']).toMatch(/no hardware encoder/);
    expect(warnings).toEqual(['prefer-hardware: falling back to software']);
  });

  it('hardware-only: starts where an accelerator really encodes, refuses with a clear reason elsewhere', async () => {
    const { working, broken, plain } = await providers();
    expect((await loadVideoCodecs(config('hardware-only'), silentLogger, working)).codecs?.backend).toBe('cuda');
    const refused = await loadVideoCodecs(config('hardware-only'), silentLogger, broken);
    expect(refused.codecs).toBeUndefined();
    expect(refused.reason).toBe(
      "no hardware encoder here: the probe's prefer-hardware test encode was served by libx264 (accelerators reported: cuda)",
    );
    const none = await loadVideoCodecs(config('hardware-only'), silentLogger, plain);
    expect(none.reason).toMatch(/served by libx264 \(accelerators reported: none\)/);
  });

  it('an encoder session asked for hardware but served by libx264 says so on its first keyframe', async () => {
    const { plain, working } = await providers();
    const sessions = async (codecsOf: WebCodecsProvider) => {
      const codecs = bindWebCodecs(codecsOf.codecs, { backend: 'cuda', hardwareAcceleration: 'prefer-hardware' });
      const chunks: Array<{ keyframe: boolean; softwareEncoder: string | undefined; nal: number[] | undefined }> = [];
      const encoder = codecs.createEncoder(
        { width: 320, height: 180, bitrateBps: 300_000, framerate: 30 },
        (chunk) =>
          chunks.push({ keyframe: chunk.keyframe, softwareEncoder: chunk.softwareEncoder, nal: nalTypes(chunk.data) }),
        (error) => {
          throw error;
        },
      );
      for (let i = 0; i < 3; i++) {
        const data = new Uint8Array(320 * 180 * 1.5).fill(16 + i * 40);
        const frame = new codecsOf.codecs.VideoFrame(data, {
          format: 'I420',
          codedWidth: 320,
          codedHeight: 180,
          timestamp: i * 33_333,
          duration: 33_333,
        });
        await encoder.encode(frame as never, { keyFrame: i === 0, durationUs: 33_333 });
        frame.close();
      }
      await encoder.flush();
      encoder.close();
      return chunks;
    };
    const software = await sessions(plain);
    expect(software[0]).toMatchObject({ keyframe: true, softwareEncoder: 'libx264' });
    expect(software.slice(1).every((c) => c.softwareEncoder === undefined)).toBe(true);
    const hardware = await sessions(working);
    expect(hardware.length).toBe(3);
    expect(hardware.every((c) => c.softwareEncoder === undefined && !c.nal?.includes(6))).toBe(true);
    expect(softwareEncoderOf(new Uint8Array([0, 0, 0, 1, 0x65]))).toBeUndefined();
  });

  it('rungs whose encoder sessions fell back report software per rung and count the fallback', async () => {
    const { plain } = await providers();
    const harness = await createHarness({
      wrap: () => bindWebCodecs(plain.codecs, { backend: 'cuda', hardwareAcceleration: 'prefer-hardware' }),
    });
    try {
      const broadcast = 'live/fallback';
      await publish(harness.ingest, broadcast, [{ bytes: readFixture('360p30.mp4'), durationS: 0 }]);
      await harness.settled(broadcast);
      const rung = harness.handle.stats().find((t) => t.broadcast === broadcast && t.rendition === '240p');
      expect(rung?.transcoderStats?.['backend']).toBe('software');
      expect(rung?.transcoderStats?.['framesOut']).toBeGreaterThan(0);
      expect(await harness.metric('lvqr_transcode_hardware_fallbacks_total')).toBeGreaterThanOrEqual(1);
      expect(await harness.metric('lvqr_transcode_encoder_backend', { rendition: '240p', backend: 'software' })).toBe(
        1,
      );
    } finally {
      await harness.close();
    }
  });
});
