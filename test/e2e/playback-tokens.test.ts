/**
 * Playback tokens against the running CLI server (`--playback-secret`) with the test pattern and
 * one rung: 401 / 400 / 403 / 403 / 200 for a missing, malformed, wrong, expired and valid token;
 * every URI of the master and media playlists carries exactly `exp` and `sig`; the source's token
 * covers its rung; blocking reloads and delta updates work with a token; the `sign` CLI prints a
 * query and a URL that play; and hls.js in chromium plays a signed master URL (a page without any
 * token code) and the dashboard plays with the URL the server signs for it.
 */

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { playbackToken, signPlaybackUrl } from '../../src/index.ts';
import { cliCommand, getJson, ROOT, type RunningServer, startServer } from '../../testkit/server.ts';
import { launchChromium, openPage } from '../support/browser.ts';
import { waitFor } from '../support/wait.ts';

const SECRET = 'playback-secret-9c1d7e';
const SOURCE = 'live/demo';
const RUNG = `${SOURCE}/240p`;

let server: RunningServer;
let http: string;

/** The documented scheme, computed independently of the library: hex HMAC-SHA256 of "<broadcast>:<exp>". */
function sign(broadcast: string, exp: number, secret = SECRET): string {
  return createHmac('sha256', secret).update(`${broadcast}:${exp}`).digest('hex');
}

function tokenQuery(broadcast: string, ttlS = 600): string {
  const exp = Math.floor(Date.now() / 1000) + ttlS;
  return `exp=${exp}&sig=${sign(broadcast, exp)}`;
}

/** Every URI a playlist lists: URI lines and `URI="..."` attributes. */
function urisOf(playlist: string): string[] {
  const uris: string[] = [];
  for (const line of playlist.split('\n')) {
    if (line === '') continue;
    if (!line.startsWith('#')) uris.push(line);
    else for (const m of line.matchAll(/URI="([^"]*)"/g)) uris.push(m[1]!);
  }
  return uris;
}

function lastPartOf(playlist: string): { msn: number; index: number } | undefined {
  let last: { msn: number; index: number } | undefined;
  for (const m of playlist.matchAll(/#EXT-X-PART:[^\n]*URI="part-(\d+)-(\d+)\.m4s\?/g)) {
    last = { msn: Number(m[1]), index: Number(m[2]) };
  }
  return last;
}

type ErrorJson = { error: { code: string; message: string } };

async function expectError(url: string, status: number, code: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(status);
  expect(res.headers.get('access-control-allow-origin')).toBe('*');
  const body = (await res.json()) as ErrorJson;
  expect(body.error.code).toBe(code);
  return body.error.message;
}

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body}`);
  return body;
}

beforeAll(async () => {
  server = await startServer([
    '--test-pattern',
    SOURCE,
    '--transcode-rendition',
    '240p',
    '--transcode-overload',
    'off',
    '--playback-secret',
    SECRET,
  ]);
  http = server.url;
  // The rung is in the master once it has a segment.
  await waitFor(
    async () => {
      const res = await fetch(`${http}/hls/${SOURCE}/master.m3u8?${tokenQuery(SOURCE)}`);
      const body = await res.text();
      return res.status === 200 && body.includes('240p/playlist.m3u8') ? body : undefined;
    },
    'the test pattern and its 240p rung in the master',
    { timeoutMs: 45_000, intervalMs: 200 },
  );
}, 90_000);

afterAll(async () => {
  await server?.stop();
});

describe('playback tokens on /hls/', () => {
  it('answers 401 without a token, 403 for a wrong or expired one, 400 for a malformed one, 200 for a valid one', async () => {
    const master = `${http}/hls/${SOURCE}/master.m3u8`;
    const now = Math.floor(Date.now() / 1000);
    expect(await expectError(master, 401, 'hls.token_required')).toMatch(/exp=.*sig=/);
    await expectError(`${master}?exp=${now + 600}`, 401, 'hls.token_required');
    await expectError(`${master}?sig=${sign(SOURCE, now + 600)}`, 401, 'hls.token_required');
    await expectError(`${master}?exp=${now + 600}&sig=${sign(SOURCE, now + 600, 'other')}`, 403, 'hls.token_invalid');
    // A token signed for another broadcast is not valid here.
    await expectError(`${master}?exp=${now + 600}&sig=${sign('live/other', now + 600)}`, 403, 'hls.token_invalid');
    // A changed exp breaks the signature.
    await expectError(`${master}?exp=${now + 601}&sig=${sign(SOURCE, now + 600)}`, 403, 'hls.token_invalid');
    await expectError(`${master}?exp=${now - 10}&sig=${sign(SOURCE, now - 10)}`, 403, 'hls.token_expired');
    expect(await expectError(`${master}?exp=abc&sig=${sign(SOURCE, now)}`, 400, 'hls.token_malformed')).toContain(
      'exp',
    );
    expect(await expectError(`${master}?exp=${now + 600}&sig=abc123`, 400, 'hls.token_malformed')).toContain('64 hex');
    // The rung needs a token too; segments as well.
    await expectError(`${http}/hls/${RUNG}/playlist.m3u8`, 401, 'hls.token_required');
    await expectError(`${http}/hls/${SOURCE}/init.mp4`, 401, 'hls.token_required');
    // Unknown broadcasts: 401 without a token, 404 with one signed for them.
    await expectError(`${http}/hls/live/none/master.m3u8`, 401, 'hls.token_required');
    await expectError(`${http}/hls/live/none/master.m3u8?${tokenQuery('live/none')}`, 404, 'hls.not_found');

    const res = await fetch(`${master}?${tokenQuery(SOURCE)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    // The bad requests above changed nothing: the rung still plays with the source's token.
    expect((await fetch(`${http}/hls/${RUNG}/playlist.m3u8?${tokenQuery(SOURCE)}`)).status).toBe(200);
  });

  it('the thumbnail needs the same token as the playlists', async () => {
    const thumbnail = `${http}/hls/${SOURCE}/thumbnail.jpg`;
    await expectError(thumbnail, 401, 'hls.token_required');
    const now = Math.floor(Date.now() / 1000);
    await expectError(`${thumbnail}?exp=${now + 600}&sig=${sign('live/other', now + 600)}`, 403, 'hls.token_invalid');
    const ok = await waitFor(async () => {
      const res = await fetch(`${thumbnail}?width=160&${tokenQuery(SOURCE)}`);
      return res.status === 200 ? res : undefined;
    }, 'a thumbnail with a valid token');
    expect(ok.headers.get('content-type')).toBe('image/jpeg');
    expect([...new Uint8Array(await ok.arrayBuffer()).subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  });

  it('puts exactly exp and sig on every URI of the master and of every media playlist, and each URI answers 200', async () => {
    const query = tokenQuery(SOURCE);
    const masterUrl = `${http}/hls/${SOURCE}/master.m3u8?${query}`;
    const master = await text(masterUrl);
    const variants = urisOf(master);
    expect(variants).toContain(`playlist.m3u8?${query}`);
    expect(variants).toContain(`240p/playlist.m3u8?${query}`);
    expect(variants).toContain(`audio.m3u8?${query}`);
    for (const uri of variants) expect(uri.endsWith(`?${query}`)).toBe(true);

    for (const variant of variants) {
      const playlistUrl = new URL(variant, masterUrl).href;
      const playlist = await text(playlistUrl);
      const uris = urisOf(playlist);
      expect(playlist).toContain('#EXT-X-MAP:URI="');
      expect(playlist).toContain('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="');
      // Video playlists report the other video playlists of the group.
      if (!variant.startsWith('audio')) expect(playlist).toContain('#EXT-X-RENDITION-REPORT:URI="');
      expect(uris.length).toBeGreaterThan(5);
      for (const uri of uris) expect(new URL(uri, playlistUrl).search).toBe(`?${query}`);
      // The init, the newest segment and the newest part answer with the token they carry.
      const init = uris.find((u) => /^(audio-)?init-/.test(u))!;
      const segment = uris.filter((u) => /^(audio-)?seg-/.test(u)).at(-1)!;
      const part = uris.filter((u) => /^(audio-)?part-/.test(u)).at(-1)!;
      for (const uri of [init, segment, part]) {
        const res = await fetch(new URL(uri, playlistUrl));
        expect(res.status, uri).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
      }
      // The rendition reports point at the other playlist of the group, signed.
      for (const report of playlist.matchAll(/#EXT-X-RENDITION-REPORT:URI="([^"]*)"/g)) {
        expect((await fetch(new URL(report[1]!, playlistUrl))).status).toBe(200);
      }
    }
  });

  it('holds a blocking reload with a token and passes on only exp and sig; delta updates work too', async () => {
    const query = tokenQuery(SOURCE);
    const url = `${http}/hls/${SOURCE}/playlist.m3u8?${query}`;
    const now = lastPartOf(await text(url));
    expect(now).toBeDefined();
    const next = { msn: now!.msn, index: now!.index + 1 };
    const blocked = await text(`${url}&_HLS_msn=${next.msn}&_HLS_part=${next.index}`);
    const reached = lastPartOf(blocked)!;
    expect(reached.msn > next.msn || (reached.msn === next.msn && reached.index >= next.index)).toBe(true);
    expect(blocked).not.toContain('_HLS_');
    for (const uri of urisOf(blocked)) expect(uri.endsWith(`?${query}`)).toBe(true);
    // A bad directive is still refused as such.
    await expectError(`${url}&_HLS_msn=x`, 400, 'hls.bad_request');

    // Delta updates: EXT-X-SKIP once more than six target durations are listed.
    const delta = await waitFor(
      async () => {
        const body = await text(`${url}&_HLS_skip=YES`);
        return body.includes('#EXT-X-SKIP:') ? body : undefined;
      },
      'a delta update with EXT-X-SKIP',
      { timeoutMs: 45_000, intervalMs: 500 },
    );
    expect(delta).not.toContain('_HLS_');
    for (const uri of urisOf(delta)) expect(uri.endsWith(`?${query}`)).toBe(true);
  }, 60_000);

  it('the library helpers sign the documented scheme', async () => {
    const token = await playbackToken(SOURCE, SECRET, 120);
    expect(token.sig).toBe(sign(SOURCE, token.exp));
    expect(token.exp - Date.now() / 1000).toBeGreaterThan(100);
    const url = await signPlaybackUrl(`${http}/hls/${SOURCE}/master.m3u8`, SOURCE, SECRET, 120);
    expect((await fetch(url)).status).toBe(200);
    const withQuery = await signPlaybackUrl(`${http}/hls/${SOURCE}/playlist.m3u8?_HLS_skip=YES`, SOURCE, SECRET, 120);
    expect(withQuery).toMatch(/\?_HLS_skip=YES&exp=\d+&sig=[0-9a-f]{64}$/);
    expect((await fetch(withQuery)).status).toBe(200);
  });

  it('`lvqr-transcode sign` prints a query and a master URL that play, and refuses bad input', async () => {
    // Asynchronous: a blocked event loop would let the server close the kept-alive fetch sockets unseen.
    const cli = (args: string[], env: Record<string, string> = {}) => {
      const { command, args: full } = cliCommand('node', ['sign', ...args]);
      const child = spawn(command, full, { cwd: ROOT, env: { ...process.env, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
        child.on('close', (status) => resolve({ status, stdout, stderr })),
      );
    };
    const query = await cli([SOURCE, '--ttl', '60', '--secret', SECRET]);
    expect(query.status).toBe(0);
    expect(query.stdout.trim()).toMatch(/^exp=\d+&sig=[0-9a-f]{64}$/);
    expect((await fetch(`${http}/hls/${SOURCE}/master.m3u8?${query.stdout.trim()}`)).status).toBe(200);

    const url = await cli([SOURCE, '--base', http], { LVQR_PLAYBACK_SECRET: SECRET });
    expect(url.status).toBe(0);
    expect(url.stdout.trim()).toMatch(new RegExp(`^${http}/hls/${SOURCE}/master\\.m3u8\\?exp=\\d+&sig=`));
    expect((await fetch(url.stdout.trim())).status).toBe(200);

    const noSecret = await cli([SOURCE], { LVQR_PLAYBACK_SECRET: '' });
    expect(noSecret.status).toBe(2);
    expect(noSecret.stdout + noSecret.stderr).toContain('needs --secret');
    const badTtl = await cli([SOURCE, '--secret', SECRET, '--ttl', 'soon']);
    expect(badTtl.status).toBe(2);
    expect(badTtl.stdout + badTtl.stderr).toContain('--ttl must be a number');
  }, 60_000);
});

describe('playback tokens in chromium', () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close().catch(() => {});
  });

  /** Waits until the page's video has played `seconds`; no hls.js fatal error on the way. */
  async function playsFor(page: import('playwright-core').Page, seconds: number, log: string[]): Promise<void> {
    let start: number | undefined;
    await waitFor(
      async () => {
        const s = await page.evaluate(() => {
          const v = document.querySelector('video') as HTMLVideoElement;
          return { t: v.currentTime, paused: v.paused, fatal: (window as { __hlsFatal?: string }).__hlsFatal };
        });
        if (s.fatal !== undefined) throw new Error(`hls.js fatal error ${s.fatal}`);
        if (s.paused) return undefined;
        start ??= s.t;
        return s.t - start >= seconds ? true : undefined;
      },
      `the video to play ${seconds} s (browser log:\n${log.slice(-20).join('\n')})`,
      { timeoutMs: 45_000, intervalMs: 100 },
    );
  }

  it('hls.js plays a signed master URL in a page without token code; every request carries the token', async () => {
    browser = await launchChromium();
    const log: string[] = [];
    const { context, page } = await openPage(browser, log, { width: 640, height: 480 });
    const statuses: Array<{ url: string; status: number }> = [];
    page.on('response', (r) => {
      if (r.url().includes('/hls/')) statuses.push({ url: r.url(), status: r.status() });
    });
    const signed = await signPlaybackUrl(`${http}/hls/${SOURCE}/master.m3u8`, SOURCE, SECRET, 600);
    await page.goto(`${http}/healthz`);
    await page.setContent(`<!doctype html><video muted autoplay playsinline></video>
<script src="/assets/hls.min.js"></script>
<script>
  const video = document.querySelector('video');
  const hls = new Hls({ lowLatencyMode: true });
  hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) window.__hlsFatal = d.details; });
  hls.loadSource(${JSON.stringify(signed)});
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
</script>`);
    await playsFor(page, 3, log);
    await context.close();
    const paths = new Set(statuses.map((s) => new URL(s.url).pathname.split('/').pop()!.replace(/-\d+/g, '-N')));
    expect(paths).toContain('master.m3u8');
    expect(paths).toContain('playlist.m3u8');
    expect(statuses.filter((s) => s.status !== 200)).toEqual([]);
    for (const s of statuses) expect(new URL(s.url).searchParams.get('sig')).toMatch(/^[0-9a-f]{64}$/);
  }, 90_000);

  it('the dashboard plays with the URL the server signs for it; the secret never reaches the page', async () => {
    browser ??= await launchChromium();
    const log: string[] = [];
    const { context, page } = await openPage(browser, log, { width: 1280, height: 860 });
    const bodies: string[] = [];
    page.on('response', async (r) => {
      if (!r.url().includes('/hls/') && r.status() === 200) bodies.push(await r.text().catch(() => ''));
    });
    await page.goto(`${http}/`);
    await playsFor(page, 3, log);
    await context.close();
    expect(bodies.length).toBeGreaterThan(0);
    for (const body of bodies) expect(body).not.toContain(SECRET);
    const api = await getJson<{ broadcasts: Array<{ name: string; playbackUrl: string }> }>(
      `${http}/api/v1/broadcasts`,
    );
    const source = api.broadcasts.find((b) => b.name === SOURCE)!;
    expect(source.playbackUrl).toMatch(new RegExp(`^/hls/${SOURCE}/master\\.m3u8\\?exp=\\d+&sig=[0-9a-f]{64}$`));
    expect((await fetch(`${http}${source.playbackUrl}`)).status).toBe(200);
  }, 90_000);
});
