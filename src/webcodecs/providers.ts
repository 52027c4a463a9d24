/**
 * Providers of a WebCodecs implementation. The composition root picks one; nothing else in this
 * folder looks at globals.
 */

import { CodecError, errorMessage } from '../core/errors.ts';
import type { VideoFrameConstructorPort, WebCodecs, WebCodecsProvider } from './port.ts';

type NapiModule = typeof import('@napi-rs/webcodecs');

/** The addon's classes as a port, type-checked member by member. */
export function napiCodecs(addon: NapiModule): WebCodecs {
  return {
    VideoDecoder: addon.VideoDecoder,
    VideoEncoder: addon.VideoEncoder,
    // Its constructor accepts only its own frames; the only frames this port hands back to it
    // came from the same implementation, so the narrower parameter type is safe here.
    VideoFrame: addon.VideoFrame as unknown as VideoFrameConstructorPort,
    EncodedVideoChunk: addon.EncodedVideoChunk,
    AudioEncoder: addon.AudioEncoder,
    AudioDecoder: addon.AudioDecoder,
    AudioData: addon.AudioData,
    EncodedAudioChunk: addon.EncodedAudioChunk,
  };
}

/** The exact `@napi-rs/webcodecs` version this library is tested against. */
export const NAPI_WEBCODECS_PIN = '1.3.1';

const VIDEO_MEMBERS = ['VideoDecoder', 'VideoEncoder', 'VideoFrame', 'EncodedVideoChunk'] as const;
const AUDIO_MEMBERS = ['AudioEncoder', 'AudioDecoder', 'AudioData', 'EncodedAudioChunk'] as const;

function pickCodecs(source: Record<string, unknown>): WebCodecs | undefined {
  for (const name of VIDEO_MEMBERS) {
    if (typeof source[name] !== 'function') return undefined;
  }
  const codecs: Record<string, unknown> = {};
  for (const name of [...VIDEO_MEMBERS, ...AUDIO_MEMBERS]) {
    if (typeof source[name] === 'function') codecs[name] = source[name];
  }
  return codecs as WebCodecs;
}

/** The runtime's own WebCodecs (a browser, or any runtime that defines the globals), else undefined. */
export function globalProvider(): WebCodecsProvider | undefined {
  const codecs = pickCodecs(globalThis as unknown as Record<string, unknown>);
  if (codecs === undefined) return undefined;
  return { name: 'global', codecs, hardwareAccelerators: () => [] };
}

/** Options of `napiProvider`; `importModule` replaces the dynamic import (tests, bundlers). */
export type NapiProviderOptions = {
  importModule?: () => Promise<unknown>;
};

/**
 * `@napi-rs/webcodecs` (FFmpeg-backed, Node/Bun/Deno). Rejects with `codec.unsupported` when the
 * package or its native binding cannot be loaded.
 */
export async function napiProvider(options: NapiProviderOptions = {}): Promise<WebCodecsProvider> {
  const load = options.importModule ?? (() => import('@napi-rs/webcodecs'));
  let loaded: unknown;
  try {
    loaded = await load();
  } catch (error) {
    throw new CodecError(
      'codec.unsupported',
      `@napi-rs/webcodecs failed to load (${errorMessage(error)}). Install exactly @napi-rs/webcodecs@${NAPI_WEBCODECS_PIN} ` +
        'with its optional dependencies: the native binary (e.g. @napi-rs/webcodecs-linux-x64-gnu) is an optional ' +
        'dependency, so never install with --omit=optional / --no-optional, and do not use a newer version ' +
        `(1.4.x ships no binary for some platforms).`,
      { cause: error, details: { pin: NAPI_WEBCODECS_PIN } },
    );
  }
  const namespace = (loaded ?? {}) as Record<string, unknown>;
  const fallback = (namespace['default'] ?? {}) as Record<string, unknown>;
  const addon =
    pickCodecs(namespace) !== undefined ? namespace : pickCodecs(fallback) !== undefined ? fallback : undefined;
  if (addon === undefined) {
    throw new CodecError(
      'codec.unsupported',
      `@napi-rs/webcodecs loaded but lacks VideoEncoder/VideoDecoder/VideoFrame/EncodedVideoChunk; ` +
        `install exactly @napi-rs/webcodecs@${NAPI_WEBCODECS_PIN}.`,
      { details: { pin: NAPI_WEBCODECS_PIN } },
    );
  }
  const accelerators =
    typeof namespace['getAvailableHardwareAccelerators'] === 'function'
      ? namespace['getAvailableHardwareAccelerators']
      : fallback['getAvailableHardwareAccelerators'];
  const codecs = napiCodecs(addon as unknown as NapiModule);
  return {
    name: 'napi',
    codecs,
    hardwareAccelerators: () => {
      if (typeof accelerators !== 'function') return [];
      try {
        const list: unknown = accelerators();
        return Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string') : [];
      } catch {
        return [];
      }
    },
  };
}
