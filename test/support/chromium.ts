/**
 * A real headless Chromium for the chromium backend's tests: software codecs, quick relaunches,
 * and the page's test hooks on (`ChromiumCodecs.injectWorkerFault`).
 */

import { existsSync } from 'node:fs';
import { silentLogger } from '../../src/core/log.ts';
import { ChromiumBrowser } from '../../src/runtime/chromium.ts';
import { ChromiumCodecs, type ChromiumCodecsOptions } from '../../src/transcode/chromium/codecs.ts';

/** The Chromium binary the tests run (`LVQR_CHROMIUM`, default Debian's). */
export const CHROMIUM = process.env['LVQR_CHROMIUM'] ?? '/usr/bin/chromium';

/** Software codecs in a launched browser (not started: `browser.start()`). */
export function chromiumUnderTest(options: Partial<ChromiumCodecsOptions> = {}): {
  codecs: ChromiumCodecs;
  browser: ChromiumBrowser;
} {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  const codecs = new ChromiumCodecs({
    backend: 'chromium-software',
    hardwareAcceleration: 'no-preference',
    ...options,
  });
  const browser = new ChromiumBrowser({
    executable: CHROMIUM,
    hardware: false,
    codecs,
    logger: silentLogger,
    relaunchBaseMs: 200,
    testHooks: true,
  });
  return { codecs, browser };
}
