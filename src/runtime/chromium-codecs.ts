/**
 * Loads the chromium backend for `serve`: launches the browser, proves its encoder with a real test
 * encode in the page (under `prefer-hardware` when the policy asks for hardware: Chromium refuses
 * that preference where it has no hardware encoder, so a working encode means hardware served it),
 * applies the encoder policy, and adds the napi addon's audio codecs and decoder (thumbnails), which
 * stay in-process (Chromium has no AAC encoder).
 */

import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ServeConfig } from '../server/config.ts';
import type { RuntimeHost } from '../server/main.ts';
import { bindAudioWebCodecs } from '../transcode/audio-webcodecs-binding.ts';
import { ChromiumCodecs } from '../transcode/chromium/index.ts';
import { napiProvider, type WebCodecsProvider } from '../webcodecs/index.ts';
import { ChromiumBrowser } from './chromium.ts';

/** What loading gives `serve` (the runtime host's `loadCodecs` result). */
type LoadedCodecs = Awaited<ReturnType<RuntimeHost['loadCodecs']>>;

/** Backend name of the page's software encoder (OpenH264 in Debian's Chromium). */
export const CHROMIUM_SOFTWARE = 'chromium-software';
/** Backend name of a hardware encoder that Chromium reached (VA-API on Linux). */
export const CHROMIUM_HARDWARE = 'chromium-hardware';

/** Launches Chromium, probes it, applies `config.encoder`, and binds the codecs (or says why not). */
export async function loadChromiumCodecs(config: ServeConfig, logger: Logger): Promise<LoadedCodecs> {
  const wantHardware = config.encoder !== 'software';
  const codecs = new ChromiumCodecs({ backend: CHROMIUM_SOFTWARE, hardwareAcceleration: 'no-preference' });
  const browser = new ChromiumBrowser({ executable: config.chromiumPath, hardware: wantHardware, codecs, logger });
  const info: Record<string, unknown> = { provider: 'chromium', chromium: config.chromiumPath };
  const fail = async (reason: string): Promise<LoadedCodecs> => {
    await browser.stop();
    return { reason, info };
  };
  try {
    await browser.start();
  } catch (error) {
    return fail(`chromium backend: ${config.chromiumPath} did not start: ${errorMessage(error)}`);
  }
  const hardware = wantHardware ? await codecs.probe('prefer-hardware') : undefined;
  const software = hardware?.ok === true ? undefined : await codecs.probe('no-preference');
  info['probe'] = {
    encoderBackend: hardware?.ok === true ? 'hardware' : 'software',
    hardwareError: hardware?.error,
    softwareError: software?.error,
  };
  if (hardware?.ok === true) {
    codecs.useEncoder({ backend: CHROMIUM_HARDWARE, hardwareAcceleration: 'prefer-hardware' });
  } else {
    const why = `no hardware encoder in chromium: its prefer-hardware test encode failed (${hardware?.error ?? 'not tried'})`;
    if (config.encoder === 'hardware-only') return fail(why);
    if (software?.ok !== true) return fail(`chromium backend: H.264 encode failed: ${software?.error ?? 'no answer'}`);
    if (config.encoder === 'prefer-hardware') {
      logger.warn('prefer-hardware: falling back to software', { reason: why });
      info['hardwareFallback'] = why;
    }
  }
  // Audio and thumbnails decode in-process: the napi addon, when it loads.
  let provider: WebCodecsProvider | undefined;
  try {
    provider = await napiProvider();
  } catch (error) {
    logger.warn('chromium backend: no in-process codecs for audio and thumbnails', { error: errorMessage(error) });
  }
  return {
    codecs,
    audioCodecs: provider === undefined ? undefined : bindAudioWebCodecs(provider.codecs),
    info,
    ...(provider === undefined ? {} : { provider }),
    close: () => browser.stop(),
  };
}
