/** The browser tests' chromium: testkit/browser.ts (shared with the benchmarks). */
export { CHROMIUM, launchChromium, openPage, showPage } from '../../testkit/browser.ts';
