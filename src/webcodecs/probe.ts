/**
 * Capability probe: asks `isConfigSupported` and then proves it with a real encode (and a decode
 * of that output), because a "supported" answer is not proof (@napi-rs/webcodecs says yes to odd
 * sizes it then fails on, and `prefer-hardware` silently falls back to libx264).
 */

import { CodecError, errorMessage } from '../core/errors.ts';
import { parseAvcC, softwareEncoderOf } from './avc.ts';
import { H264Decoder } from './decoder.ts';
import { evenDimension, type H264Chunk, H264Encoder } from './encoder.ts';
import type { HardwareAccelerationPort, WebCodecs, WebCodecsProvider } from './port.ts';

/** Options of `probeCapabilities`. */
export type ProbeOptions = {
  /** Test encode size; default 320x180 (made even). */
  width?: number;
  height?: number;
  /** Hardware preference to probe with; default `'no-preference'`. */
  hardwareAcceleration?: HardwareAccelerationPort;
  /** Frames in the test encode; default 5. */
  frames?: number;
  /** Deadline for each real encode/decode; default 10 s. */
  timeoutMs?: number;
};

/** What actually works with a provider on this machine. */
export type CapabilityReport = {
  provider: 'global' | 'napi';
  hardwareAccelerators: string[];
  /**
   * What really served the test encode: `software` when its output is signed by a software encoder
   * (x264's SEI) or no accelerator exists, `hardware` when hardware was asked for, an accelerator
   * exists and the output carries no software signature, `unknown` when there was no output.
   */
  encoderBackend: 'software' | 'hardware' | 'unknown';
  /** The software encoder that signed the test encode's output (e.g. `libx264`), if any. */
  softwareEncoder: string | undefined;
  h264Decode: boolean;
  h264Encode: boolean;
  aacEncode: boolean;
  opusEncode: boolean;
  /** Wall time of the real test encode (configure to last chunk), milliseconds; -1 if it failed. */
  testEncodeMs: number;
  /** Codec string of the test encode's output (from its avcC), when it worked. */
  h264OutputCodec: string | undefined;
  errors: string[];
};

async function withDeadline<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
  });
  try {
    const result = await Promise.race([work, deadline]);
    if (result === TIMED_OUT) throw new CodecError('codec.unsupported', `${what}: no result within ${timeoutMs} ms`);
    return result as T;
  } finally {
    // A pending deadline timer would keep the process alive for its whole duration.
    clearTimeout(timer);
  }
}

const TIMED_OUT = Symbol('timed out');

function syntheticI420(width: number, height: number, index: number): Uint8Array {
  const lumaSize = width * height;
  const data = new Uint8Array(lumaSize + lumaSize / 2);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data[y * width + x] = (x + y + index * 4) & 0xff;
  }
  data.fill(128, lumaSize);
  return data;
}

async function testH264(
  codecs: WebCodecs,
  width: number,
  height: number,
  frames: number,
  hardwareAcceleration: HardwareAccelerationPort,
  timeoutMs: number,
  errors: string[],
): Promise<{ encodeMs: number; chunks: H264Chunk[] } | undefined> {
  const settings = { width, height, bitrateBps: 500_000, framerate: 30 };
  const config = H264Encoder.nativeConfig(settings, { hardwareAcceleration });
  try {
    const support = await codecs.VideoEncoder.isConfigSupported(config);
    if (support.supported !== true) {
      errors.push(`h264 encode: isConfigSupported said no for ${config.codec} ${width}x${height}`);
      return undefined;
    }
  } catch (error) {
    errors.push(`h264 encode: isConfigSupported threw: ${errorMessage(error)}`);
    return undefined;
  }
  const chunks: H264Chunk[] = [];
  const failures: string[] = [];
  const started = performance.now();
  let encoder: H264Encoder | undefined;
  try {
    encoder = new H264Encoder(codecs, {
      ...settings,
      hardwareAcceleration,
      onChunk: (chunk) => chunks.push(chunk),
      onError: (error) => failures.push(error.message),
    });
    const active = encoder;
    await withDeadline(
      (async () => {
        for (let i = 0; i < frames; i++) {
          const frame = new codecs.VideoFrame(syntheticI420(width, height, i), {
            format: 'I420',
            codedWidth: width,
            codedHeight: height,
            timestamp: i * 33_333,
            duration: 33_333,
          });
          try {
            await active.encode(frame, { keyFrame: i === 0, durationUs: 33_333 });
          } finally {
            frame.close();
          }
        }
        await active.flush();
      })(),
      timeoutMs,
      'h264 test encode',
    );
  } catch (error) {
    failures.push(errorMessage(error));
  } finally {
    encoder?.close();
  }
  const encodeMs = performance.now() - started;
  for (const failure of failures) errors.push(`h264 encode: ${failure}`);
  const first = chunks[0];
  if (first === undefined || first.decoderConfig === undefined || !first.keyframe) {
    errors.push(`h264 encode: the test encode of ${frames} frames produced no keyframe with a decoder configuration`);
    return undefined;
  }
  return { encodeMs, chunks };
}

async function testH264Decode(
  codecs: WebCodecs,
  chunks: H264Chunk[],
  timeoutMs: number,
  errors: string[],
): Promise<boolean> {
  const config = chunks[0]?.decoderConfig;
  if (config === undefined) return false;
  try {
    const support = await codecs.VideoDecoder.isConfigSupported({
      codec: config.codec,
      description: config.description,
      codedWidth: config.codedWidth,
      codedHeight: config.codedHeight,
    });
    if (support.supported !== true) {
      errors.push(`h264 decode: isConfigSupported said no for ${config.codec}`);
      return false;
    }
  } catch (error) {
    errors.push(`h264 decode: isConfigSupported threw: ${errorMessage(error)}`);
    return false;
  }
  let frames = 0;
  const failures: string[] = [];
  let decoder: H264Decoder | undefined;
  try {
    decoder = new H264Decoder(codecs, {
      codec: config.codec,
      description: config.description,
      codedWidth: config.codedWidth,
      codedHeight: config.codedHeight,
      onFrame: () => {
        frames++;
      },
      onError: (error) => failures.push(error.message),
    });
    const active = decoder;
    await withDeadline(
      (async () => {
        for (const chunk of chunks) {
          await active.decode({
            data: chunk.data,
            timestampUs: chunk.timestampUs,
            durationUs: chunk.durationUs,
            keyframe: chunk.keyframe,
          });
        }
        await active.flush();
      })(),
      timeoutMs,
      'h264 test decode',
    );
  } catch (error) {
    failures.push(errorMessage(error));
  } finally {
    decoder?.close();
  }
  for (const failure of failures) errors.push(`h264 decode: ${failure}`);
  if (frames !== chunks.length) {
    errors.push(`h264 decode: ${frames} of ${chunks.length} test frames came back`);
    return false;
  }
  return true;
}

async function testAudio(
  codecs: WebCodecs,
  codec: 'mp4a.40.2' | 'opus',
  label: string,
  timeoutMs: number,
  errors: string[],
): Promise<boolean> {
  const { AudioEncoder, AudioData } = codecs;
  if (AudioEncoder === undefined || AudioData === undefined) {
    errors.push(`${label}: the provider has no AudioEncoder/AudioData`);
    return false;
  }
  const config = { codec, sampleRate: 48_000, numberOfChannels: 2, bitrate: 128_000 };
  try {
    const support = await AudioEncoder.isConfigSupported(config);
    if (support.supported !== true) {
      errors.push(`${label}: isConfigSupported said no`);
      return false;
    }
  } catch (error) {
    errors.push(`${label}: isConfigSupported threw: ${errorMessage(error)}`);
    return false;
  }
  let chunks = 0;
  const failures: string[] = [];
  const encoder = new AudioEncoder({
    output: () => {
      chunks++;
    },
    error: (error) => failures.push(errorMessage(error)),
  });
  try {
    encoder.configure(config);
    const numberOfFrames = 4_800; // 100 ms
    const samples = new Float32Array(numberOfFrames * 2);
    for (let i = 0; i < numberOfFrames; i++) samples[i] = samples[i + numberOfFrames] = Math.sin(i / 10) * 0.2;
    for (let block = 0; block < 3; block++) {
      const data = new AudioData({
        format: 'f32-planar',
        sampleRate: 48_000,
        numberOfFrames,
        numberOfChannels: 2,
        timestamp: block * 100_000,
        data: samples,
      });
      try {
        encoder.encode(data);
      } finally {
        data.close();
      }
    }
    await withDeadline(encoder.flush(), timeoutMs, `${label} test encode`);
  } catch (error) {
    failures.push(errorMessage(error));
  } finally {
    if (encoder.state !== 'closed') encoder.close();
  }
  for (const failure of failures) errors.push(`${label}: ${failure}`);
  if (chunks === 0) {
    errors.push(`${label}: the test encode produced no packet`);
    return false;
  }
  return true;
}

/** The NAL length size of a chunk's session (from its avcC; 4 when unreadable). */
function nalLengthSize(chunk: H264Chunk): number {
  const description = chunk.decoderConfig?.description;
  if (description === undefined) return 4;
  try {
    return parseAvcC(description).nalLengthSize;
  } catch {
    return 4;
  }
}

/** Probes what a provider really does here: support answers plus real test encodes/decodes. */
export async function probeCapabilities(
  provider: WebCodecsProvider,
  options: ProbeOptions = {},
): Promise<CapabilityReport> {
  const width = evenDimension(options.width ?? 320);
  const height = evenDimension(options.height ?? 180);
  const frames = Math.max(1, Math.floor(options.frames ?? 5));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const hardwareAcceleration = options.hardwareAcceleration ?? 'no-preference';
  const errors: string[] = [];
  let hardwareAccelerators: string[] = [];
  try {
    hardwareAccelerators = provider.hardwareAccelerators();
  } catch (error) {
    errors.push(`hardwareAccelerators() threw: ${errorMessage(error)}`);
  }
  const encoded = await testH264(provider.codecs, width, height, frames, hardwareAcceleration, timeoutMs, errors);
  const h264Decode =
    encoded === undefined ? false : await testH264Decode(provider.codecs, encoded.chunks, timeoutMs, errors);
  const aacEncode = await testAudio(provider.codecs, 'mp4a.40.2', 'aac encode', timeoutMs, errors);
  const opusEncode = await testAudio(provider.codecs, 'opus', 'opus encode', timeoutMs, errors);
  // Accelerator lists and isConfigSupported prove nothing (the addon reports "cuda" and accepts
  // prefer-hardware on a GPU without an encoder, then runs libx264): the output itself decides.
  const first = encoded?.chunks[0];
  const softwareEncoder = first === undefined ? undefined : softwareEncoderOf(first.data, nalLengthSize(first));
  let encoderBackend: CapabilityReport['encoderBackend'] = 'unknown';
  if (encoded !== undefined) {
    const asked = hardwareAcceleration === 'prefer-hardware' || hardwareAcceleration === 'no-preference';
    if (softwareEncoder !== undefined || !asked || hardwareAccelerators.length === 0) encoderBackend = 'software';
    else if (hardwareAcceleration === 'prefer-hardware') encoderBackend = 'hardware';
  }
  return {
    provider: provider.name,
    hardwareAccelerators,
    encoderBackend,
    h264Decode,
    h264Encode: encoded !== undefined,
    aacEncode,
    opusEncode,
    testEncodeMs: encoded === undefined ? -1 : Math.round(encoded.encodeMs * 10) / 10,
    softwareEncoder,
    h264OutputCodec: encoded?.chunks[0]?.decoderConfig?.codec,
    errors,
  };
}
