import * as napi from '@napi-rs/webcodecs';
import { afterEach, describe, expect, it } from 'vitest';
import { CodecError } from '../../src/core/errors.ts';
import { yieldMacrotask } from '../../src/core/yield.ts';
import {
  avcCodecString,
  containsIdr,
  globalProvider,
  highProfileCodec,
  NAPI_WEBCODECS_PIN,
  napiCodecs,
  napiProvider,
  parseAvcC,
  probeCapabilities,
  type VideoEncoderPort,
  type WebCodecs,
  type WebCodecsProvider,
} from '../../src/webcodecs/index.ts';
import { avcCFromParameterSets } from '../support/h264.ts';

// Compile-time proof that the addon fits the structural port (napiCodecs checks member by member).
const addonCodecs: WebCodecs = napiCodecs(napi);

const GLOBAL_NAMES = ['VideoDecoder', 'VideoEncoder', 'VideoFrame', 'EncodedVideoChunk'] as const;

describe('providers', () => {
  afterEach(() => {
    const scope = globalThis as Record<string, unknown>;
    for (const name of GLOBAL_NAMES) delete scope[name];
  });

  it('globalProvider() is undefined on a runtime without WebCodecs globals and wraps them when present', () => {
    expect(globalProvider()).toBeUndefined();
    const scope = globalThis as Record<string, unknown>;
    for (const name of GLOBAL_NAMES) scope[name] = addonCodecs[name];
    const provider = globalProvider();
    expect(provider?.name).toBe('global');
    expect(provider?.codecs.VideoEncoder).toBe(napi.VideoEncoder);
    expect(provider?.hardwareAccelerators()).toEqual([]);
  });

  it('napiProvider() loads the pinned addon and reads its hardware accelerators', async () => {
    const provider = await napiProvider();
    expect(provider.name).toBe('napi');
    expect(provider.codecs.VideoDecoder).toBe(napi.VideoDecoder);
    expect(provider.codecs.AudioEncoder).toBe(napi.AudioEncoder);
    expect(provider.hardwareAccelerators()).toEqual(napi.getAvailableHardwareAccelerators());
  });

  it('napiProvider() turns a failing native binding into codec.unsupported naming the pin and optional deps', async () => {
    const failing = napiProvider({
      importModule: () => Promise.reject(new Error('Cannot find native binding.')),
    });
    await expect(failing).rejects.toBeInstanceOf(CodecError);
    const error = (await failing.catch((e: unknown) => e)) as CodecError;
    expect(error.code).toBe('codec.unsupported');
    expect(error.message).toContain(`@napi-rs/webcodecs@${NAPI_WEBCODECS_PIN}`);
    expect(error.message).toContain('--omit=optional');
    expect(error.message).toContain('Cannot find native binding');
    expect(NAPI_WEBCODECS_PIN).toBe('1.3.1');
  });

  it('napiProvider() rejects a module without the WebCodecs classes', async () => {
    await expect(napiProvider({ importModule: async () => ({ default: {} }) })).rejects.toMatchObject({
      code: 'codec.unsupported',
    });
  });
});

describe('probeCapabilities', () => {
  it('proves H.264/AAC/Opus with real encodes and reports prefer-hardware as software when no accelerator exists', async () => {
    const provider = await napiProvider();
    const report = await probeCapabilities(provider, {
      width: 320,
      height: 180,
      hardwareAcceleration: 'prefer-hardware',
    });
    expect(report).toMatchObject({
      provider: 'napi',
      hardwareAccelerators: [],
      encoderBackend: 'software',
      h264Encode: true,
      h264Decode: true,
      aacEncode: true,
      opusEncode: true,
      errors: [],
    });
    expect(report.testEncodeMs).toBeGreaterThan(0);
    expect(report.h264OutputCodec).toMatch(/^avc1\.64/);
  });

  it('reports h264Encode false when isConfigSupported says yes but no chunk comes back', async () => {
    const real = await napiProvider();
    const Base = real.codecs.VideoEncoder;
    // An encoder that accepts everything and never outputs (what a broken backend looks like).
    class SilentEncoder implements VideoEncoderPort {
      state: 'configured' = 'configured';
      encodeQueueSize = 0;
      ondequeue = null;
      static isConfigSupported = Base.isConfigSupported.bind(Base);
      configure(): void {}
      encode(): void {}
      async flush(): Promise<void> {}
      reset(): void {}
      close(): void {}
    }
    const provider: WebCodecsProvider = {
      name: 'napi',
      codecs: { ...real.codecs, VideoEncoder: SilentEncoder },
      hardwareAccelerators: () => [],
    };
    const report = await probeCapabilities(provider, { timeoutMs: 2_000 });
    expect(report.h264Encode).toBe(false);
    expect(report.h264Decode).toBe(false);
    expect(report.testEncodeMs).toBe(-1);
    expect(report.errors.join('\n')).toMatch(/produced no keyframe/);
  });
});

describe('avc helpers', () => {
  const sps = new Uint8Array([0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9]);
  const pps = new Uint8Array([0x68, 0xeb, 0xe3, 0xcb]);

  it('parseAvcC reads profile, level, NAL length size and the parameter sets', () => {
    const config = parseAvcC(avcCFromParameterSets(sps, pps));
    expect(config).toMatchObject({ profileIdc: 0x64, profileCompatibility: 0, levelIdc: 0x1f, nalLengthSize: 4 });
    expect(config.sps).toEqual([sps]);
    expect(config.pps).toEqual([pps]);
    expect(avcCodecString(avcCFromParameterSets(sps, pps))).toBe('avc1.64001f');
    expect(() => parseAvcC(new Uint8Array([1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 40, 0x67]))).toThrow(/^avcC: /);
  });

  it('containsIdr finds NAL type 5 in a length-prefixed access unit', () => {
    expect(containsIdr(new Uint8Array([0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x65, 0x88]))).toBe(true);
    expect(containsIdr(new Uint8Array([0, 0, 0, 2, 0x41, 0x9a]))).toBe(false);
    expect(containsIdr(new Uint8Array([0, 0, 0, 9, 0x65]))).toBeUndefined();
  });

  it('highProfileCodec picks a level that fits the size and rate', () => {
    expect(highProfileCodec(1280, 720, 30)).toBe('avc1.64001f');
    expect(highProfileCodec(1920, 1080, 30)).toBe('avc1.640028');
    expect(highProfileCodec(1920, 1080, 60)).toBe('avc1.64002a');
    expect(highProfileCodec(426, 240, 30)).toBe('avc1.64001e');
  });

  it('yieldMacrotask lets a setImmediate scheduled earlier run first', async () => {
    let ran = false;
    setImmediate(() => {
      ran = true;
    });
    await yieldMacrotask();
    expect(ran).toBe(true);
  });
});
