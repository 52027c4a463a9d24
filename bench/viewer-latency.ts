/**
 * Viewer latency, glass to glass as hls.js sees it: the CLI server runs the built-in test pattern
 * with the default ladder; Debian chromium plays it for 60 s with hls.js's own low-latency defaults
 * (`new Hls({ lowLatencyMode: true })`), then for 60 s in the dashboard's player, each sampling
 * `Date.now() - hls.playingDate` every 250 ms (EXT-X-PROGRAM-DATE-TIME from the same machine clock).
 * Each player plays in `--joins` sessions (default 5) that share the seconds, each a new page:
 * hls.js's defaults keep the distance their start-up left for good, so one long session would
 * sample one start-up. Reports p50 / p95 / max per player against the 1.5 s p50 target, each
 * session's p50, and where the start-up went (resource timing), with the machine's load.
 * `--transcode-rendition none` measures the sources alone (no transcoding competing for the cores).
 * Players join after `--warmup` seconds (default 10) of the broadcast, as a viewer joins a running
 * one: a player that joins in the first seconds starts where the pattern, its encoders and the
 * rungs are still catching up with their own start, and hls.js's defaults keep that distance for
 * good (they never play faster to catch up).
 * Before its counted sessions each player plays one more, shown apart and left out of the figures:
 * the first page of a player in a browser also starts the browser's side of it (its processes,
 * compiling the player, its workers) on the same two cores the service needs, which a viewer's
 * own machine does; in every run before this was split off, the first session was the slowest.
 * `--transcode-backend B` runs the ladder on another backend (the server's flag).
 *   node --import tsx bench/viewer-latency.ts [--seconds 60] [--joins 5] [--warmup 10] [--transcode-rendition LIST] [--transcode-backend B] [--smoke]
 */

import { loadavg } from 'node:os';
import { percentile as nearestRank } from '../src/core/percentile.ts';
import { launchChromium, openPage } from '../testkit/browser.ts';
import { startServer } from '../testkit/server.ts';
import {
  type LatencyPlayer,
  type LatencyRun,
  measureViewerLatency,
  type StartupBreakdown,
  waitForPlayable,
} from '../testkit/viewer-latency.ts';
import { arg, machine, machineBusy, SMOKE, table, today, writeSection } from './lib.ts';

const seconds = SMOKE ? 5 : Number(arg('seconds') ?? 60);
/**
 * Sessions per player, sharing the seconds: hls.js's defaults keep their start-up distance for
 * good, so one long session samples one start-up; several joins sample several.
 */
const joins = SMOKE ? 1 : Number(arg('joins') ?? 5);
if (!(Number.isInteger(joins) && joins >= 1 && seconds / joins >= 2)) {
  throw new TypeError('--joins: expected a whole number >= 1 leaving at least 2 s per session');
}
const warmupS = SMOKE ? 0 : Number(arg('warmup') ?? 10);
const PLAYERS: readonly LatencyPlayer[] = ['hls.js defaults', 'dashboard'];
const TARGET_MS = 1500;
const BROADCAST = 'live/viewer';
const rendition = arg('transcode-rendition');
const ladderArgs = rendition === undefined ? [] : ['--transcode-rendition', rendition];
const backend = arg('transcode-backend');
const backendArgs = backend === undefined ? [] : ['--transcode-backend', backend];
/**
 * Variants to wait for before playing: the source and the default ladder's 480p and 240p (its 720p
 * rung, the pattern's own size, may be served by the source variant), or the source and each rung.
 */
const variants = rendition === undefined ? 3 : rendition === 'none' ? 1 : 1 + rendition.split(',').length;
const fmtLoad = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

const busy = await machineBusy();
const loadBefore = fmtLoad();
const server = await startServer(['--test-pattern', BROADCAST, '--log-level', 'warn', ...ladderArgs, ...backendArgs]);
const browser = await launchChromium();
/** A player's sessions pooled, with each session's own p50. */
type PlayerRun = LatencyRun & { readonly sessionP50sMs: readonly number[]; readonly warmupP50Ms: number };
const runs: PlayerRun[] = [];
try {
  await waitForPlayable(server.url, BROADCAST, variants);
  await new Promise((resolve) => setTimeout(resolve, warmupS * 1000));
  for (const player of PLAYERS) {
    const sessions: LatencyRun[] = [];
    // Join 0 is the warm-up session (SMOKE: none).
    for (let join = SMOKE ? 1 : 0; join <= joins; join++) {
      const log: string[] = [];
      const { context, page } = await openPage(browser, log, { width: 1280, height: 860 });
      sessions.push(await measureViewerLatency(page, server.url, BROADCAST, player, seconds / joins, { log }));
      await context.close();
    }
    const warmup = SMOKE ? undefined : sessions.shift();
    runs.push({ ...mergeSessions(sessions), warmupP50Ms: warmup?.p50Ms ?? Number.NaN });
  }
} finally {
  await browser.close().catch(() => {});
  await server.stop();
}
/** One player's sessions as one run: samples pooled, stalls summed, start-up figures per session's median. */
function mergeSessions(sessions: readonly LatencyRun[]): Omit<PlayerRun, 'warmupP50Ms'> {
  const samplesMs = sessions.flatMap((r) => r.samplesMs);
  const starts = sessions.flatMap((r) => (r.startup === undefined ? [] : [r.startup]));
  const mid = (pick: (s: StartupBreakdown) => number) => nearestRank(starts.map(pick), 50) ?? Number.NaN;
  const last = sessions.at(-1)!;
  return {
    player: last.player,
    samplesMs,
    edgeMs: sessions.flatMap((r) => r.edgeMs),
    p50Ms: nearestRank(samplesMs, 50) ?? Number.NaN,
    p95Ms: nearestRank(samplesMs, 95) ?? Number.NaN,
    maxMs: Math.max(...samplesMs),
    stalls: sessions.reduce((n, r) => n + r.stalls, 0),
    targetLatencyS: last.targetLatencyS,
    height: last.height,
    startup:
      starts.length === 0
        ? undefined
        : {
            playingAfterMs: mid((s) => s.playingAfterMs),
            requests: mid((s) => s.requests),
            mediaRequests: mid((s) => s.mediaRequests),
            serverP50Ms: mid((s) => s.serverP50Ms),
            queuedP50Ms: mid((s) => s.queuedP50Ms),
          },
    sessionP50sMs: sessions.map((r) => r.p50Ms),
  };
}

const loadAfter = fmtLoad();
const ms = (v: number | undefined) => (v === undefined ? '-' : String(Math.round(v)));
const rows = runs.map((r) => [
  r.player,
  r.samplesMs.length,
  r.p50Ms,
  r.sessionP50sMs.join(' / '),
  r.p95Ms,
  r.maxMs,
  Number.isNaN(r.warmupP50Ms) ? '-' : r.warmupP50Ms,
  ms(nearestRank(r.edgeMs, 50)),
  r.stalls,
  r.targetLatencyS === undefined ? '-' : r.targetLatencyS.toFixed(2),
  `${r.height ?? '?'}p`,
  r.p50Ms <= TARGET_MS ? 'met' : 'missed',
]);
const startupRows = runs.map((r) => [
  r.player,
  ms(r.startup?.playingAfterMs),
  r.startup === undefined ? '-' : `${r.startup.requests} (${r.startup.mediaRequests})`,
  ms(r.startup?.serverP50Ms),
  ms(r.startup?.queuedP50Ms),
]);
const serverArgs = [...ladderArgs, ...backendArgs].join(' ');
const command = `npm run bench:viewer-latency${serverArgs === '' ? '' : ` -- ${serverArgs}`}`;
const ladder =
  rendition === undefined
    ? 'default ladder 720p/480p/240p'
    : rendition === 'none'
      ? 'no ladder (sources only)'
      : `ladder ${rendition}`;
const serverSideMs = runs
  .map((r) => `${r.player} ${r.p50Ms - (nearestRank(r.edgeMs, 50) ?? Number.NaN)} ms`)
  .join(', ');
const text = `Command: \`${command}\` (${seconds} s per player in ${joins} session${joins === 1 ? '' : 's'} of ${seconds / joins} s, each a new page${SMOKE ? '' : ', after one warm-up session of the same length, shown apart and not counted'}; the first joins after ${warmupS} s of the broadcast). Machine: ${machine()}. Date: ${today()}.
Load average (1 / 5 / 15 min) ${loadBefore} before, ${loadAfter} after; before the run: ${busy}.
Source: the built-in test pattern (1280x720 30 fps, 1 s GOP, one fragment per frame), ${ladder}${backend === undefined ? '' : ` on the ${backend} backend`}, LL-HLS part target 200 ms (PART-HOLD-BACK 0.6 s). Player: Debian chromium (headless) with hls.js, first \`new Hls({ lowLatencyMode: true })\`, then the dashboard's player; ABR picks the variant. Latency = \`Date.now() - hls.playingDate\` sampled every 250 ms from the first \`playing\` event (stalls count).

Milliseconds:

${table(['player', 'samples', 'p50', 'p50 per session', 'p95', 'max', 'warm-up session p50 (not counted)', "hls.js's own latency p50 (behind the playlist edge)", 'stalls', 'hls.js target latency at the end of the last session (s)', 'playing', `p50 <= ${TARGET_MS} ms`], rows)}

The warm-up session is each player's first page in the browser: it also starts the browser's side of that player (its processes, compiling the player, its workers) on the two cores the service uses, which a viewer's own machine would do; it is left out of every other figure, the start-up table's included.

Where the time goes: the clock latency minus hls.js's own (how far its estimate of the live edge is behind the clock), p50: ${serverSideMs}; the rest is the player's distance from the edge (its start-up position, stalls, playback slower than real time on a starved machine).

Start-up, from the page's resource timing: hls.js fixes its start position (the edge minus PART-HOLD-BACK) when it reads its first media playlist, and the edge moves on while it loads the parts from the last INDEPENDENT one, one request after another, then the audio (only once the video's first timestamp is known); with hls.js's defaults that time stays in the latency. "Server answer" is request sent to first byte for requests the server does not hold (blocking reloads left out); "browser queue" is the page asking for a resource to the browser sending it (same machine, same cores):

${table(['player', 'first master request -> playing (ms)', 'HLS requests before playing (media)', 'server answer p50 (ms)', 'browser queue p50 (ms)'], startupRows)}

(Medians over the sessions.)

Target: glass-to-glass p50 <= ${TARGET_MS / 1000} s with both players: **${runs.every((r) => r.p50Ms <= TARGET_MS) ? 'met' : 'missed'}**.`;
console.log(text);
// Another backend gets a section of its own: the default backend's section is the headline figure.
writeSection(
  `Viewer latency (hls.js on the test pattern, ${rendition === 'none' ? 'sources only' : 'ladder'}${backend === undefined ? '' : `, ${backend} backend`})`,
  text,
);
process.exit(0);
