/**
 * The dashboard in a real browser: Debian chromium driven by playwright-core against the CLI server
 * with the built-in test pattern. The player must play the source and then a picked rung, the stats
 * table must show the ladder (video rungs, then the audio renditions), and a screenshot lands in
 * artifacts/dashboard.png.
 */

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, type RunningServer, startServer } from '../../testkit/server.ts';
import { launchChromium, openPage } from '../support/browser.ts';
import { waitFor } from '../support/wait.ts';

const ARTIFACTS = path.join(ROOT, 'artifacts');
const RUNGS = ['720p', '480p', '240p'];
/** The audio ladder's renditions of the default ladder (AAC per audio bitrate, then Opus). */
const AUDIO = ['audio-aac-128k', 'audio-aac-96k', 'audio-aac-64k', 'audio-opus-64k'];

let server: RunningServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Why the browser or server could not start: every test fails with it (never skips). */
let setupError: Error | undefined;
const browserLog: string[] = [];

type PlayerState = {
  currentTime: number;
  paused: boolean;
  videoWidth: number;
  videoHeight: number;
  fatal: string | undefined;
  level: number | undefined;
  levels: Array<{ width: number; height: number }>;
};

const playerState = (): Promise<PlayerState> =>
  page.evaluate(() => {
    const video = document.getElementById('video') as HTMLVideoElement;
    const w = window as unknown as {
      __hls?: { currentLevel: number; levels: Array<{ width: number; height: number }> };
      __hlsFatal?: string;
    };
    return {
      currentTime: video.currentTime,
      paused: video.paused,
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight,
      fatal: w.__hlsFatal,
      level: w.__hls?.currentLevel,
      levels: (w.__hls?.levels ?? []).map((l) => ({ width: l.width, height: l.height })),
    };
  });

/** Waits until the video has played `seconds` of media past the first moment `ready` holds. */
async function playsFor(
  seconds: number,
  what: string,
  ready: (s: PlayerState) => boolean,
  playlists: string[] = [],
): Promise<PlayerState> {
  let start: number | undefined;
  let last: PlayerState | undefined;
  try {
    return await waitFor(
      async () => {
        const s = await playerState();
        last = s;
        if (s.fatal !== undefined) throw new Error(`hls.js fatal error ${s.fatal}`);
        if (!ready(s) || s.paused) return undefined;
        start ??= s.currentTime;
        return s.currentTime - start >= seconds ? s : undefined;
      },
      `${what} to play ${seconds} s`,
      { timeoutMs: 45_000, intervalMs: 100 },
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // The tail of each playlist the player should be reading, to tell a server hole from a player stall.
    const tails = await Promise.all(
      playlists.map(async (p) => {
        const text = await fetch(`${server.url}/hls/live/demo/${p}`).then(
          (r) => r.text(),
          (e: unknown) => String(e),
        );
        return `${p}:\n${text.trim().split('\n').slice(-12).join('\n')}`;
      }),
    );
    throw new Error(
      `${message}; last player state ${JSON.stringify(last)}; browser log:\n${browserLog.slice(-30).join('\n')}\n${tails.join('\n')}`,
    );
  }
}

beforeAll(async () => {
  try {
    // The overload policy off: under the whole suite's load on 2 cores it can shed the lowest rung
    // (240p) that these tests pick and expect running; the policy has its own tests.
    server = await startServer([
      ...['--test-pattern', 'live/demo', '--transcode-overload', 'off'],
      ...['--transcode-audio', 'ladder'],
    ]);
    browser = await launchChromium();
    ({ context, page } = await openPage(browser, browserLog, { width: 1280, height: 860 }));
  } catch (error) {
    setupError = error instanceof Error ? error : new Error(String(error));
  }
}, 90_000);

/** Fails the calling test when the setup did not succeed. */
function ready(): void {
  if (setupError !== undefined)
    throw new Error(`browser test setup failed: ${setupError.message}`, { cause: setupError });
}

afterAll(async () => {
  await context?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await server?.stop();
});

describe('dashboard in chromium', () => {
  it('the page opens the test pattern and the player plays it for at least 3 s without a fatal hls.js error', async () => {
    ready();
    const res = await page.goto(`${server.url}/`);
    expect(res?.status()).toBe(200);
    expect(await page.title()).toBe('lvqr-transcode');
    const state = await playsFor(3, 'the test pattern', (s) => s.videoWidth > 0);
    expect(state.fatal).toBeUndefined();
    expect(await page.locator('#title').textContent()).toContain('live/demo');
    const pageErrors = browserLog.filter((l) => l.startsWith('[pageerror]'));
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('picking the 240p rung in the rendition picker plays that rung for at least 3 s', async () => {
    ready();
    // The picker fills from the master once the rungs are in it (hls.js re-reads a live master only on load).
    const option = await waitFor(
      async () => {
        const options = await page
          .locator('#level option')
          .evaluateAll((els) =>
            els.map((e) => ({ value: (e as HTMLOptionElement).value, label: e.textContent ?? '' })),
          );
        const found = options.find((o) => o.label.startsWith('240p'));
        if (found === undefined) {
          // The rungs were not in the master yet when the player loaded it: reload the player.
          await page.evaluate(() => {
            const active = document.querySelector<HTMLButtonElement>('#broadcasts button.active');
            active?.click();
          });
        }
        return found;
      },
      'a 240p entry in the rendition picker',
      { timeoutMs: 30_000, intervalMs: 1000 },
    );
    await page.selectOption('#level', option.value);
    const level = Number(option.value);
    const state = await playsFor(
      3,
      'the 240p rung',
      (s) => s.level === level && s.videoWidth === 426 && s.videoHeight === 240,
      ['240p/playlist.m3u8', 'audio-aac-64k/audio.m3u8', 'audio-opus-64k/audio.m3u8'],
    );
    expect(state.levels[level]).toEqual({ width: 426, height: 240 });
    expect(state.fatal).toBeUndefined();
    expect(await page.locator('#playing').textContent()).toBe('playing 426x240');
  }, 60_000);

  it('a player left far behind the live edge (paused) jumps back to it once it plays again', async () => {
    ready();
    type Lag = { latency: number; target: number; td: number; paused: boolean; currentTime: number };
    const lag = (): Promise<Lag> =>
      page.evaluate(() => {
        const w = window as unknown as {
          __hls: {
            latency: number;
            targetLatency: number | null;
            currentLevel: number;
            levels: Array<{ details?: { targetduration: number } }>;
          };
        };
        const video = document.getElementById('video') as HTMLVideoElement;
        const hls = w.__hls;
        return {
          latency: hls.latency,
          target: hls.targetLatency ?? 0,
          td: hls.levels[hls.currentLevel]?.details?.targetduration ?? 0,
          paused: video.paused,
          currentTime: video.currentTime,
        };
      });
    await page.evaluate(() => (document.getElementById('video') as HTMLVideoElement).pause());
    // Paused until it is past hls.js's own catch-up range: hls.js plays faster only while its
    // latency minus its target is below the target plus one target duration.
    const behind = await waitFor(
      async () => {
        const l = await lag();
        return l.td > 0 && l.latency > 2 * l.target + l.td + 1 ? l : undefined;
      },
      "the paused player to fall past hls.js's catch-up range",
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    await page.evaluate(() => (document.getElementById('video') as HTMLVideoElement).play());
    const back = await waitFor(
      async () => {
        const l = await lag();
        return !l.paused && l.currentTime > behind.currentTime && l.latency <= l.target + l.td ? l : undefined;
      },
      `the player (${behind.latency.toFixed(1)} s behind when resumed) back within a target duration of its target latency`,
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    expect(back.latency).toBeLessThan(behind.latency - 1);
    expect(browserLog.some((l) => l.includes('back to the live edge'))).toBe(true);
    expect((await playerState()).fatal).toBeUndefined();
  }, 60_000);

  it('the stats table lists every rung of the ladder (the source-sized one bypassed) and every audio rendition as running, and the page is captured to artifacts/dashboard.png', async () => {
    ready();
    const rows = await waitFor(
      async () => {
        const cells = await page
          .locator('#rungs tr')
          .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
        // The test pattern (1280x720, below the 720p rung's bitrate) serves 720p itself: that rung is bypassed.
        const state = (r: string): string => (r === '720p' ? 'bypassed' : 'running');
        return [...RUNGS, ...AUDIO].every((r) => cells.some((c) => c[0] === r && c[1] === state(r)))
          ? cells
          : undefined;
      },
      'every rung and audio rendition running (720p bypassed) in the stats table',
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(rows.map((c) => c[0])).toEqual([...RUNGS, ...AUDIO]);
    expect(rows.find((c) => c[0] === '240p')?.[2]).toBe('426x240');
    expect(rows.find((c) => c[0] === 'audio-opus-64k')?.[2]).toBe('opus');
    expect(rows.find((c) => c[0] === 'audio-aac-64k')?.[2]).toBe('mp4a.40.2');
    expect(await page.locator('#backend').textContent()).toContain('encoder: software');
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    expect(existsSync(file)).toBe(true);
  }, 30_000);
});
