/**
 * Startup shared by the runtime files: pick the codec backend (`--transcode-backend`), load it,
 * prove it with a real test encode, apply the encoder policy, and bind the ladder's codecs.
 */

import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ServeConfig } from '../server/config.ts';
import type { AudioCodecs } from '../transcode/audio/index.ts';
import { bindAudioWebCodecs } from '../transcode/audio-webcodecs-binding.ts';
import type { VideoCodecs } from '../transcode/codecs.ts';
import { bindWebCodecs } from '../transcode/webcodecs-binding.ts';
import { globalProvider, napiProvider, probeCapabilities, type WebCodecsProvider } from '../webcodecs/index.ts';
import { loadChromiumCodecs } from './chromium-codecs.ts';
import { CodecThreads } from './codec-threads.ts';
import { startWorkerThread } from './worker-thread.ts';

/** The result of loading codecs for `serve`. */
export type LoadedCodecs = {
  codecs?: VideoCodecs;
  /** Audio codecs of the same provider, when it has audio classes (for the audio ladder). */
  audioCodecs?: AudioCodecs | undefined;
  reason?: string;
  info?: Record<string, unknown>;
  provider?: WebCodecsProvider;
  /** Stops what the backend runs outside this process (the chromium backend's browser). */
  close?: () => Promise<void>;
};

/**
 * Picks the backend: `chromium` runs the codecs in a headless Chromium (`loadChromiumCodecs`);
 * otherwise the provider is `given`, else the napi addon (`napi`), else the runtime's own
 * WebCodecs if complete or the napi addon (`auto`). Proves it with a real test encode, applies the
 * encoder policy and binds it.
 */
export async function loadVideoCodecs(
  config: ServeConfig,
  logger: Logger,
  given?: WebCodecsProvider,
): Promise<LoadedCodecs> {
  if (given === undefined && config.transcodeBackend === 'chromium') return loadChromiumCodecs(config, logger);
  let provider: WebCodecsProvider | undefined = given;
  try {
    const inProcessOnly = config.transcodeBackend === 'napi' || config.transcodeBackend === 'threads';
    provider ??= (inProcessOnly ? undefined : globalProvider()) ?? (await napiProvider());
  } catch (error) {
    return { reason: errorMessage(error) };
  }
  const wantHardware = config.encoder !== 'software';
  const report = await probeCapabilities(provider, {
    hardwareAcceleration: wantHardware ? 'prefer-hardware' : 'no-preference',
  });
  const info = {
    provider: provider.name,
    probe: {
      h264Decode: report.h264Decode,
      h264Encode: report.h264Encode,
      aacEncode: report.aacEncode,
      encoderBackend: report.encoderBackend,
      softwareEncoder: report.softwareEncoder,
      hardwareAccelerators: report.hardwareAccelerators,
      testEncodeMs: report.testEncodeMs,
      errors: report.errors,
    },
  };
  if (!report.h264Decode || !report.h264Encode) {
    return { reason: `H.264 not usable: ${report.errors.join('; ') || 'probe failed'}`, info, provider };
  }
  let backend = report.encoderBackend === 'hardware' ? (report.hardwareAccelerators[0] ?? 'hardware') : 'software';
  const noHardware = (): string => {
    const accelerators = report.hardwareAccelerators.join(', ') || 'none';
    const servedBy = report.softwareEncoder ?? 'software';
    return `no hardware encoder here: the probe's prefer-hardware test encode was served by ${servedBy} (accelerators reported: ${accelerators})`;
  };
  if (config.encoder === 'hardware-only' && report.encoderBackend !== 'hardware') {
    return { reason: noHardware(), info, provider };
  }
  if (config.encoder === 'prefer-hardware' && report.encoderBackend !== 'hardware') {
    logger.warn('prefer-hardware: falling back to software', { reason: noHardware() });
    backend = 'software';
    Object.assign(info, { hardwareFallback: 'no hardware encoder found by the probe' });
  }
  const hardwareAcceleration = wantHardware && backend !== 'software' ? 'prefer-hardware' : 'no-preference';
  const audioCodecs = bindAudioWebCodecs(provider.codecs);
  if (config.transcodeBackend === 'threads') {
    const threads = new CodecThreads({ backend, hardwareAcceleration, logger });
    try {
      await threads.start();
    } catch (error) {
      await threads.close();
      return { reason: `threads backend: a codec thread did not start: ${errorMessage(error)}`, info, provider };
    }
    // Serialized with each answer of /api/v1/transcode: the codec threads running then (one per source).
    Object.assign(info, { codecThreads: { toJSON: () => threads.size } });
    return { codecs: threads.codecs, audioCodecs, info, provider, close: () => threads.close() };
  }
  const codecs = bindWebCodecs(provider.codecs, {
    backend,
    scaler: config.scaler,
    startWorker: startWorkerThread,
    ...(hardwareAcceleration === 'prefer-hardware' ? { hardwareAcceleration } : {}),
  });
  return { codecs, audioCodecs, info, provider };
}
