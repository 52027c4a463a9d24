/**
 * Debian chromium driven by playwright-core, for the browser tests. The system browser only: a
 * missing /usr/bin/chromium is an error that names the package, never a download.
 */

import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Launches headless chromium with a fresh temporary profile (removed on close), autoplay allowed,
 * and nothing that talks to the network on its own.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian chromium (apt-get install chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/**
 * A new context and page whose console messages, page errors and failed requests (HTTP status >= 400,
 * with the URL the console message leaves out) are appended to `log`.
 */
export async function openPage(
  browser: Browser,
  log: string[],
  viewport: { width: number; height: number },
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) log.push(`[http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => log.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
  return { context, page };
}

/**
 * Shows `html` as a page of `origin` (same-origin requests, as the dashboard makes): opens the
 * server's `/healthz`, then writes the page into that document. Not `page.route`: with a route in
 * place Playwright intercepts every request of the page and each one waits for the test process
 * (about 20 ms a request, measured), which a player's start-up, one request after another, adds up.
 */
export async function showPage(page: Page, origin: string, html: string): Promise<void> {
  const res = await page.goto(`${origin}/healthz`);
  if (res?.status() !== 200) throw new Error(`${origin}/healthz answered ${res?.status() ?? 'nothing'}`);
  await page.setContent(html);
}
