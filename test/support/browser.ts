/** The browser tests' chromium: testkit/browser.ts (shared with the benchmarks). */
export { CHROMIUM, launchChromium, openPage } from '../../testkit/browser.ts';
