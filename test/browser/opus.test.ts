/**
 * The audio ladder's Opus rendition in a real browser: Debian chromium (playwright-core) plays the
 * CLI server's test pattern with hls.js, held on the 240p variant of the Opus group
 * (`CODECS="avc1...,opus"`). The video plays on, and the audio advances: hls.js loads the Opus
 * rendition's playlist, and chromium decodes more and more audio bytes.
 */

import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { launchChromium, openPage, showPage } from '../support/browser.ts';
import { waitFor } from '../support/wait.ts';

const BROADCAST = 'live/opus';

const PLAYER_PAGE = `<!doctype html>
<html><head><title>opus</title></head><body>
<video id="v" muted autoplay playsinline width="426"></video>
<script src="/assets/hls.min.js"></script>
<script>
const video = document.getElementById('v');
const state = { errors: [], audioUrls: [] };
window.__state = state;
const hls = new Hls({ lowLatencyMode: true, liveSyncDurationCount: 2 });
state.hls = hls;
hls.on(Hls.Events.MANIFEST_PARSED, () => {
  const level = hls.levels.findIndex(
    (l) => l.audioCodec === 'opus' && new URL(l.uri, location.href).pathname.endsWith('/240p/playlist.m3u8'),
  );
  state.level = level;
  hls.startLevel = level;
  hls.currentLevel = level;
  hls.loadLevel = level;
});
hls.on(Hls.Events.AUDIO_TRACK_LOADED, (_e, data) => state.audioUrls.push(data.details.url));
hls.on(Hls.Events.ERROR, (_e, data) => state.errors.push({ details: data.details, fatal: data.fatal }));
hls.loadSource('/hls/${BROADCAST}/master.m3u8');
hls.attachMedia(video);
video.play().catch(() => {});
</script></body></html>`;

type Report = {
  level: number;
  audioCodec: string | undefined;
  currentTime: number;
  paused: boolean;
  videoHeight: number;
  audioBytes: number;
  audioUrls: string[];
  errors: Array<{ details: string; fatal: boolean }>;
};

let server: RunningServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const log: string[] = [];

beforeAll(async () => {
  [server, browser] = await Promise.all([
    startServer([
      ...['--test-pattern', BROADCAST, '--transcode-rendition', '240p'],
      ...['--transcode-audio', 'ladder', '--transcode-overload', 'off'],
    ]),
    launchChromium(),
  ]);
  ({ context, page } = await openPage(browser, log, { width: 640, height: 360 }));
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await server?.stop();
});

const report = (): Promise<Report> =>
  page.evaluate(() => {
    const s = (window as unknown as { __state: Record<string, never> }).__state as unknown as {
      hls: { levels: Array<{ audioCodec?: string }> };
      level: number;
      audioUrls: string[];
      errors: Array<{ details: string; fatal: boolean }>;
    };
    const video = document.getElementById('v') as HTMLVideoElement & { webkitAudioDecodedByteCount?: number };
    return {
      level: s.level ?? -1,
      audioCodec: s.hls.levels[s.level ?? -1]?.audioCodec,
      currentTime: video.currentTime,
      paused: video.paused,
      videoHeight: video.videoHeight,
      audioBytes: video.webkitAudioDecodedByteCount ?? 0,
      audioUrls: s.audioUrls,
      errors: s.errors,
    };
  });

describe('hls.js in chromium plays an Opus variant', () => {
  it('plays the 240p + Opus variant with its audio advancing', async () => {
    await waitFor(
      async () => (await getText(`${server.url}/hls/${BROADCAST}/master.m3u8`))?.includes('audio-opus-64k/audio.m3u8'),
      'the master to list the Opus group',
      { timeoutMs: 45_000, intervalMs: 250 },
    );
    await showPage(page, server.url, PLAYER_PAGE);
    const fatal = (r: Report) => r.errors.find((e) => e.fatal);
    const first = await waitFor(
      async () => {
        const r = await report();
        if (fatal(r) !== undefined) throw new Error(`fatal hls.js error: ${JSON.stringify(r.errors)}`);
        return !r.paused && r.videoHeight > 0 && r.audioBytes > 0 ? r : undefined;
      },
      'the player to start with decoded audio',
      { timeoutMs: 30_000, intervalMs: 200 },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nbrowser log:\n${log.join('\n')}`);
    });
    expect(first.audioCodec).toBe('opus');
    expect(first.videoHeight).toBe(240);
    expect(first.audioUrls.some((u) => new URL(u).pathname === `/hls/${BROADCAST}/audio-opus-64k/audio.m3u8`)).toBe(
      true,
    );
    let last = first;
    const later = await waitFor(
      async () => {
        const r = await report();
        last = r;
        if (fatal(r) !== undefined) throw new Error(`fatal hls.js error: ${JSON.stringify(r.errors)}`);
        return r.currentTime >= first.currentTime + 3 ? r : undefined;
      },
      'three more seconds of playback',
      { timeoutMs: 30_000, intervalMs: 200 },
    ).catch((error: unknown) => {
      throw new Error(
        `${String(error)}\nfirst ${JSON.stringify(first)}\nlast ${JSON.stringify(last)}\n${log.join('\n')}`,
      );
    });
    expect(later.paused).toBe(false);
    // Chromium's count of decoded audio bytes grows while the video plays on.
    expect(later.audioBytes).toBeGreaterThan(first.audioBytes);
  }, 120_000);
});
