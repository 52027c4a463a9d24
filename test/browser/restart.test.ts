/**
 * A publisher restart, end to end in a real browser. ffmpeg publishes a looped 720p30 clip to the
 * CLI server with one long chunked POST; the process is killed (the POST breaks off, possibly in
 * the middle of a fragment) and a new ffmpeg process, with a new init and timestamps from 0 as a
 * real encoder restart has, reconnects within the grace period. Debian chromium (playwright-core)
 * plays the master with hls.js twice: one player held on the source variant, one on the 240p rung.
 *
 * Checked from the outside: every media playlist (source video, audio, each rung) is polled all
 * along; the restart must be one EXT-X-DISCONTINUITY at the same media sequence number everywhere,
 * numbers only grow, and the discontinuity sequence stays right once the window slides past it
 * (the DVR window is shortened to its minimum for that), and no rung ever lists a segment or part
 * as GAP. Both players must play well past the first fragment of the new session without a fatal
 * hls.js error.
 *
 * Load: the overload policy must not step in (a shed rung drops GOPs, which starts timelines of
 * its own), so the published clip is light: a clean 720p pattern, cut into 200 ms fragments, on a
 * machine that other jobs may share. Failure messages say when the ladder was overloaded.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { type Proc, parseM3u8, run } from '../e2e/helpers.ts';
import { launchChromium, openPage, showPage } from '../support/browser.ts';
import { ffmpeg } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';

const BROADCAST = 'live/restart';
/** The clip is 1280x720 below the 720p rung's bitrate: that rung is bypassed (the source serves 720p). */
const RUNGS = ['480p', '240p'];
/** Every media playlist of the broadcast, by a short name. */
const PLAYLISTS: Record<string, string> = {
  source: 'playlist.m3u8',
  audio: 'audio.m3u8',
  ...Object.fromEntries(RUNGS.map((r) => [r, `${r}/playlist.m3u8`])),
  // The audio ladder's renditions (the 240p variant plays the AAC one).
  aac64: 'audio-aac-64k/audio.m3u8',
  opus: 'audio-opus-64k/audio.m3u8',
};
/** The variant each player is held on. */
const PLAYED: Record<'source' | 'rung', { path: string; height: number }> = {
  source: { path: `/hls/${BROADCAST}/playlist.m3u8`, height: 720 },
  rung: { path: `/hls/${BROADCAST}/240p/playlist.m3u8`, height: 240 },
};
/** Seconds each player must play past the start of the first fragment of the new session. */
const PLAY_PAST_RESTART_S = 4;

let server: RunningServer;
let tmp: string;
/** The published clip: 4 s of 1280x720 30 fps H.264 (1 s GOP, no B-frames) with AAC. */
let clip: string;
let base: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let setupError: Error | undefined;
const publishers: Proc[] = [];
const browserLog: string[] = [];

/** Wall-clock moments of the restart: the first publisher killed, the second one started. */
let killedAtMs = 0;
let restartedAtMs = 0;

// ---- playlist watching -------------------------------------------------------------------------

/** A complete segment; `gap`: listed with EXT-X-GAP (media the track never made). */
type SegmentLine = { msn: number; discontinuity: boolean; pdtMs: number; gap: boolean };
type Snapshot = {
  atMs: number;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: SegmentLine[];
  /** `msn.part` of every part listed with GAP=YES. */
  gapParts: string[];
};

/** Complete segments of a media playlist with the tags the checks need. */
function readPlaylist(text: string): Omit<Snapshot, 'atMs'> {
  const mediaSequence = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(text)?.[1] ?? Number.NaN);
  const discontinuitySequence = Number(/^#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)$/m.exec(text)?.[1] ?? 0);
  const segments: SegmentLine[] = [];
  const gapParts: string[] = [];
  let discontinuity = false;
  let pdtMs = Number.NaN;
  let gap = false;
  for (const line of text.split('\n')) {
    if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line === '#EXT-X-GAP') gap = true;
    else if (line.startsWith('#EXT-X-PART:') && line.includes('GAP=YES')) {
      const part = /part-(\d+)-(\d+)\.m4s/.exec(line);
      gapParts.push(part === null ? line : `${part[1]}.${part[2]}`);
    } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdtMs = Date.parse(line.slice(25));
    else {
      const seg = /^(?:audio-)?seg-(\d+)\.m4s$/.exec(line);
      if (seg === null) continue;
      segments.push({ msn: Number(seg[1]), discontinuity, pdtMs, gap });
      discontinuity = false;
      gap = false;
    }
  }
  return { mediaSequence, discontinuitySequence, segments, gapParts };
}

const snapshots = new Map<string, Snapshot[]>(Object.keys(PLAYLISTS).map((k) => [k, []]));
const playlistProblems: string[] = [];
let watching = false;
let watcher: Promise<void> | undefined;

/** Polls every media playlist (plain reloads, as a player without blocking support would) until stopped. */
function watchPlaylists(): void {
  watching = true;
  watcher = (async () => {
    while (watching) {
      await Promise.all(
        Object.entries(PLAYLISTS).map(async ([name, uri]) => {
          const text = await getText(`${base}/${uri}`).catch(() => undefined);
          if (text === undefined) return;
          try {
            parseM3u8(text);
          } catch (error) {
            playlistProblems.push(`${name}: ${String(error).slice(0, 300)}`);
          }
          snapshots.get(name)!.push({ atMs: Date.now(), ...readPlaylist(text) });
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  })();
}

/** What a playlist ever listed as GAP: `seg-<msn>` for EXT-X-GAP segments, `part-<msn>.<index>` for GAP=YES parts. */
function gapsListed(name: string): string[] {
  const gaps = new Set<string>();
  for (const snap of snapshots.get(name)!) {
    for (const seg of snap.segments) if (seg.gap) gaps.add(`seg-${seg.msn}`);
    for (const part of snap.gapParts) gaps.add(`part-${part}`);
  }
  return [...gaps];
}

/** Discontinuity sequence number of every MSN a playlist listed, with the contradictions found. */
function sequenceNumbers(name: string): { dsn: Map<number, number>; problems: string[] } {
  const dsn = new Map<number, number>();
  const problems: string[] = [];
  let previous: Snapshot | undefined;
  for (const snap of snapshots.get(name)!) {
    const msns = snap.segments.map((s) => s.msn);
    if (msns.length > 0 && msns[0] !== snap.mediaSequence) {
      problems.push(`${name}: EXT-X-MEDIA-SEQUENCE ${snap.mediaSequence} but the first segment is ${msns[0]}`);
    }
    msns.forEach((msn, i) => {
      if (i > 0 && msn !== msns[i - 1]! + 1) problems.push(`${name}: segment ${msn} follows ${msns[i - 1]}`);
    });
    if (previous !== undefined) {
      if (snap.mediaSequence < previous.mediaSequence) {
        problems.push(`${name}: EXT-X-MEDIA-SEQUENCE went from ${previous.mediaSequence} to ${snap.mediaSequence}`);
      }
      if (snap.discontinuitySequence < previous.discontinuitySequence) {
        problems.push(
          `${name}: EXT-X-DISCONTINUITY-SEQUENCE went from ${previous.discontinuitySequence} to ${snap.discontinuitySequence}`,
        );
      }
      const lastBefore = previous.segments.at(-1)?.msn ?? -1;
      const lastNow = snap.segments.at(-1)?.msn ?? -1;
      if (lastNow < lastBefore) problems.push(`${name}: the last segment went from ${lastBefore} to ${lastNow}`);
    }
    // RFC 8216bis 4.4.3.3: a segment's discontinuity sequence number is the playlist's plus the
    // EXT-X-DISCONTINUITY tags up to and including it; it must never change for a given MSN.
    let current = snap.discontinuitySequence;
    for (const seg of snap.segments) {
      if (seg.discontinuity) current += 1;
      const known = dsn.get(seg.msn);
      if (known === undefined) dsn.set(seg.msn, current);
      else if (known !== current) {
        problems.push(`${name}: segment ${seg.msn} had discontinuity sequence ${known}, now ${current}`);
      }
    }
    previous = snap;
  }
  return { dsn, problems };
}

/** The first MSN with discontinuity sequence 1 (the first segment after the restart). */
function restartMsn(name: string): number | undefined {
  const { dsn } = sequenceNumbers(name);
  const after = [...dsn].filter(([, d]) => d >= 1).map(([msn]) => msn);
  return after.length === 0 ? undefined : Math.min(...after);
}

/** The newest listing of segment `msn` in playlist `name`. */
function segmentLine(name: string, msn: number): SegmentLine | undefined {
  for (const snap of [...snapshots.get(name)!].reverse()) {
    const seg = snap.segments.find((s) => s.msn === msn);
    if (seg !== undefined) return seg;
  }
  return undefined;
}

/**
 * `waitFor` whose timeout also tells the newest source and 240p listings, whether the ladder was
 * overloaded, and what the server and the browser logged lately.
 */
async function waitExplained<T>(
  check: () => T | Promise<T>,
  what: string,
  options: { timeoutMs: number; intervalMs: number },
): Promise<NonNullable<T>> {
  try {
    return await waitFor(check, what, options);
  } catch (error) {
    const last = (name: string) => JSON.stringify(snapshots.get(name)?.at(-1));
    const overload = server.stdout().includes('ladder overloaded')
      ? 'THE LADDER WAS OVERLOADED (too busy a machine for this test; see the server log)\n'
      : '';
    throw new Error(
      `${String(error instanceof Error ? error.message : error)}\n${overload}` +
        `newest source listing: ${last('source')}\nnewest 240p listing: ${last('240p')}\n` +
        `server log:\n${server.stdout().slice(-3000)}\nbrowser log:\n${browserLog.slice(-20).join('\n')}`,
    );
  }
}

// ---- players -----------------------------------------------------------------------------------

/** What a player page reports. */
type PlayerReport = {
  currentTime: number;
  paused: boolean;
  videoHeight: number;
  level: number;
  levelPath: string | undefined;
  frags: Array<{ sn: number; cc: number; start: number; level: number }>;
  errors: Array<{
    type: string;
    details: string;
    fatal: boolean;
    currentTime: number;
    at?: string;
    message?: string;
  }>;
  /** LEVEL_SWITCHED events: the level index and the playhead at the switch. */
  switches: Array<{ level: number; currentTime: number }>;
  /** The video element's buffered ranges, in seconds. */
  buffered: Array<[number, number]>;
};

/** Two players on one page, each held on one variant of the master (`PLAYED`). */
const PLAYER_PAGE = `<!doctype html>
<html><head><title>restart</title></head><body>
<video id="source" muted autoplay playsinline width="640"></video>
<video id="rung" muted autoplay playsinline width="426"></video>
<script src="/assets/hls.min.js"></script>
<script>
window.__players = {};
function player(id, pickLevel) {
  const video = document.getElementById(id);
  const state = { video, hls: null, frags: [], errors: [], switches: [] };
  window.__players[id] = state;
  const hls = new Hls({ lowLatencyMode: true, liveSyncDurationCount: 2 });
  state.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    const level = pickLevel(hls.levels);
    hls.startLevel = level;
    hls.currentLevel = level;
    hls.loadLevel = level;
  });
  hls.on(Hls.Events.FRAG_CHANGED, (_e, data) => {
    state.frags.push({ sn: data.frag.sn, cc: data.frag.cc, start: data.frag.start, level: data.frag.level });
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    state.errors.push({
      type: data.type,
      details: data.details,
      fatal: data.fatal,
      currentTime: video.currentTime,
      // Which fragment (and part) and why: a fragGap hls.js raised itself says "attribute" or "tag".
      at: data.frag ? data.frag.sn + '/' + data.frag.cc + (data.part ? '.' + data.part.index : '') : undefined,
      message: data.error ? String(data.error.message).slice(0, 120) : undefined,
    });
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
    state.switches.push({ level: data.level, currentTime: video.currentTime });
  });
  hls.loadSource('/hls/${BROADCAST}/master.m3u8');
  hls.attachMedia(video);
  video.play().catch(() => {});
}
// hls.js orders levels by bandwidth: pick them by URL.
const byPath = (path) => (levels) => levels.findIndex((l) => new URL(l.uri, location.href).pathname === path);
player('source', byPath('${PLAYED.source.path}'));
player('rung', byPath('${PLAYED.rung.path}'));
</script></body></html>`;

const report = (id: 'source' | 'rung'): Promise<PlayerReport> =>
  page.evaluate((which) => {
    const p = (
      window as unknown as {
        __players: Record<
          string,
          {
            video: HTMLVideoElement;
            hls: { currentLevel: number; levels: Array<{ uri: string }> };
            frags: never[];
            errors: never[];
            switches: never[];
          }
        >;
      }
    ).__players[which]!;
    return {
      currentTime: p.video.currentTime,
      paused: p.video.paused,
      videoHeight: p.video.videoHeight,
      level: p.hls.currentLevel,
      levelPath:
        p.hls.currentLevel >= 0 ? new URL(p.hls.levels[p.hls.currentLevel]!.uri, location.href).pathname : undefined,
      frags: p.frags,
      errors: p.errors,
      switches: p.switches,
      buffered: Array.from({ length: p.video.buffered.length }, (_, i): [number, number] => [
        p.video.buffered.start(i),
        p.video.buffered.end(i),
      ]),
    };
  }, id);

const fatalOf = (r: PlayerReport) => r.errors.find((e) => e.fatal);

// ---- setup -------------------------------------------------------------------------------------

const publish = (): Proc => {
  // README's publish command, looped (-stream_loop -1: it publishes until it is killed), with a
  // fragment at least every 200 ms.
  const p = run('ffmpeg', [
    ...['-nostdin', '-v', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'mp4'],
    ...['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000'],
    `${server.url}/ingest/${BROADCAST}`,
  ]);
  publishers.push(p);
  return p;
};

beforeAll(async () => {
  try {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'lvqr-restart-'));
    clip = path.join(tmp, 'clip.mp4');
    const pattern = 'testsrc2=size=1280x720:rate=30';
    await ffmpeg([
      ...`-f lavfi -i ${pattern} -f lavfi -i sine=frequency=440:sample_rate=48000 -t 4`.split(' '),
      ...'-c:v libx264 -preset veryfast -threads 1 -pix_fmt yuv420p -profile:v main -bf 0'.split(' '),
      ...'-g 30 -keyint_min 30 -sc_threshold 0 -c:a aac -b:a 96k -ac 2 -f mp4'.split(' '),
      clip,
    ]);
    // The shortest DVR window (6 s, held at four target durations: 8 s) so that it slides past the
    // restart while the test runs.
    // The overload policy off: it could shed the 240p rung this test plays when the suite loads
    // the machine; the policy has its own tests.
    server = await startServer([
      ...['--test-pattern', 'off', '--hls-dvr-window', '6', '--transcode-overload', 'off'],
      ...['--transcode-rendition', RUNGS.join(',')],
    ]);
    base = `${server.url}/hls/${BROADCAST}`;
    browser = await launchChromium();
    ({ context, page } = await openPage(browser, browserLog, { width: 1200, height: 600 }));
  } catch (error) {
    setupError = error instanceof Error ? error : new Error(String(error));
  }
}, 90_000);

function ready(): void {
  if (setupError !== undefined)
    throw new Error(`browser test setup failed: ${setupError.message}`, { cause: setupError });
}

afterAll(async () => {
  watching = false;
  await watcher;
  for (const p of publishers) p.kill();
  await context?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await server?.stop();
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
});

/** Waits until player `id`'s report satisfies `until`; fails at once on a fatal hls.js error. */
async function playsPast(
  id: 'source' | 'rung',
  what: string,
  until: (r: PlayerReport) => boolean,
): Promise<PlayerReport> {
  let fatal: PlayerReport['errors'][number] | undefined;
  let last: PlayerReport | undefined;
  const result = await waitExplained(
    async () => {
      const r = await report(id);
      last = r;
      fatal ??= fatalOf(r);
      if (fatal !== undefined) return r;
      return until(r) ? r : undefined;
    },
    what,
    { timeoutMs: 45_000, intervalMs: 100 },
  ).catch((error: unknown) => {
    // The player's own view (position, buffered ranges, last fragments, errors) tells a stall from a slow start.
    const state = last === undefined ? 'none' : JSON.stringify({ ...last, frags: last.frags.slice(-8) });
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${id} player: ${state}`);
  });
  if (fatal !== undefined) throw new Error(`hls.js fatal error in the ${id} player: ${JSON.stringify(fatal)}`);
  return result;
}

describe('a publisher restart within the grace period, played by hls.js in chromium', () => {
  it('before the restart, both players play the first session (the source and the 240p rung)', async () => {
    ready();
    publish();
    await waitExplained(
      async () => {
        const t = await getText(`${base}/master.m3u8`);
        return t !== undefined && RUNGS.every((r) => t.includes(`${r}/playlist.m3u8`));
      },
      'the master to list every rung',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    watchPlaylists();
    await showPage(page, server.url, PLAYER_PAGE);
    for (const id of ['source', 'rung'] as const) {
      let start: number | undefined;
      // hls.currentLevel is the level of the fragment it finds at the playhead, and reads -1 for a
      // moment when that lookup misses (a full run once sampled it so): wait for a known level.
      const r = await playsPast(id, `the ${id} player to play 2 s`, (s) => {
        if (s.paused || s.videoHeight === 0) return false;
        start ??= s.currentTime;
        return s.currentTime - start >= 2 && s.level >= 0;
      });
      expect([r.levelPath, r.videoHeight], id).toEqual([PLAYED[id].path, PLAYED[id].height]);
    }
  }, 90_000);

  it('the killed publisher is replaced by a new ffmpeg process (new init, timestamps from 0) and the same playlists go on with a discontinuity', async () => {
    ready();
    const first = publishers[0]!;
    first.kill();
    killedAtMs = Date.now();
    await first.exited;
    restartedAtMs = Date.now();
    const second = publish();
    // Every playlist lists a complete segment of the new session.
    await waitExplained(
      () => Object.keys(PLAYLISTS).every((name) => restartMsn(name) !== undefined),
      'a segment after the discontinuity in every playlist',
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    // Reconnected to the same broadcast within its grace period, not refused (a 409 would end ffmpeg at once).
    expect(second.child.exitCode, second.output()).toBeNull();
    const api = await getJson<{ publishers: Array<{ broadcast: string; state: string; connections: number }> }>(
      `${server.url}/api/v1/broadcasts`,
    );
    expect(api.publishers.find((p) => p.broadcast === BROADCAST)).toMatchObject({ state: 'live', connections: 2 });
    const r = restartMsn('source')!;
    for (const name of Object.keys(PLAYLISTS)) {
      // The same MSN everywhere: source, audio and rungs keep sharing segment boundaries.
      expect(restartMsn(name), name).toBe(r);
      const seg = segmentLine(name, r)!;
      // Media of the new publisher only, after media of the old one only.
      expect(seg.pdtMs, `${name}: program date time of the first new segment`).toBeGreaterThanOrEqual(
        restartedAtMs - 50,
      );
      const before = segmentLine(name, r - 1);
      expect(before, `${name}: the segment before the restart`).toBeDefined();
      // Its date is its first frame's: an audio segment starts up to one frame (Opus 20 ms) after
      // the video's it is cut with, which may have begun just before the kill.
      expect(before!.pdtMs, `${name}: program date time of the last old segment`).toBeLessThan(killedAtMs + 25);
    }
    // The tag itself was in every playlist right before segment r.
    for (const name of Object.keys(PLAYLISTS)) {
      const tagged = snapshots.get(name)!.some((s) => s.segments.some((seg) => seg.msn === r && seg.discontinuity));
      expect(tagged, `${name}: EXT-X-DISCONTINUITY before segment ${r}`).toBe(true);
    }
  }, 60_000);

  it('both players keep playing past the restart point with no fatal hls.js error', async () => {
    ready();
    for (const id of ['source', 'rung'] as const) {
      const r = await playsPast(id, `the ${id} player to play ${PLAY_PAST_RESTART_S} s past the restart`, (s) => {
        const firstNew = s.frags.find((f) => f.cc >= 1);
        return (
          !s.paused && firstNew !== undefined && s.currentTime >= firstNew.start + PLAY_PAST_RESTART_S && s.level >= 0
        );
      });
      const nonFatal = r.errors.filter((e) => !e.fatal);
      if (nonFatal.length > 0) console.info(`non-fatal hls.js errors (${id} player):`, JSON.stringify(nonFatal));
      expect(fatalOf(r), id).toBeUndefined();
      // hls.js leaves a variant at a GAP for another one: a rung that lists GAP explains a switch.
      const gaps = Object.keys(PLAYLISTS).map((name) => `${name}: [${gapsListed(name).join(', ')}]`);
      const warnings = server
        .stdout()
        .split('\n')
        .filter((l) => / (warn|error) /.test(l))
        .slice(-20);
      const why = `GAP listed: ${gaps.join('; ')}; level switches: ${JSON.stringify(r.switches)}; server warnings:\n${warnings.join('\n')}`;
      expect([r.levelPath, r.videoHeight], `${id} (${why})`).toEqual([PLAYED[id].path, PLAYED[id].height]);
      // The player went through the discontinuity: fragments of both sessions, in order.
      const ccs = r.frags.map((f) => f.cc);
      expect(ccs).toContain(0);
      expect(
        [...ccs].sort((a, b) => a - b),
        id,
      ).toEqual(ccs);
    }
    expect(browserLog.filter((l) => l.startsWith('[pageerror]'))).toEqual([]);
  }, 100_000);

  it('once the window slides past the restart, every playlist states EXT-X-DISCONTINUITY-SEQUENCE:1, and numbers only grew all along', async () => {
    ready();
    const r = restartMsn('source')!;
    await waitExplained(
      () =>
        Object.keys(PLAYLISTS).every((name) => {
          const last = snapshots.get(name)!.at(-1);
          return last !== undefined && last.mediaSequence > r && last.discontinuitySequence === 1;
        }),
      'the window to slide past the restart in every playlist',
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    watching = false;
    await watcher;
    for (const name of Object.keys(PLAYLISTS)) {
      const { dsn, problems } = sequenceNumbers(name);
      expect(problems, name).toEqual([]);
      // Exactly one change of timeline, at the restart.
      for (const [msn, d] of dsn) expect(d, `${name}: segment ${msn}`).toBe(msn < r ? 0 : 1);
      expect(snapshots.get(name)!.length, name).toBeGreaterThan(20);
    }
    // A rung cuts where the source cuts, on both sides of the restart: it has media for every
    // segment the source has, so it never announces one as missing (a GAP sends hls.js elsewhere).
    for (const rung of RUNGS) expect(gapsListed(rung), `${rung}: segments or parts listed as GAP`).toEqual([]);
    expect(playlistProblems).toEqual([]);
  }, 60_000);
});
