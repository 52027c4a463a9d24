/**
 * Viewer latency, glass to glass as hls.js sees it: the CLI server runs the built-in test pattern
 * with the default ladder; Debian chromium plays it for 60 s with hls.js's own low-latency defaults
 * (`new Hls({ lowLatencyMode: true })`), then for 60 s in the dashboard's player, each sampling
 * `Date.now() - hls.playingDate` every 250 ms (EXT-X-PROGRAM-DATE-TIME from the same machine clock).
 * Reports p50 / p95 / max per player against the 1.5 s p50 target, with the machine's load.
 * `--transcode-rendition none` measures the sources alone (no transcoding competing for the cores).
 * Players join after `--warmup` seconds (default 10) of the broadcast, as a viewer joins a running
 * one: a player that joins in the first seconds starts where the pattern, its encoders and the
 * rungs are still catching up with their own start, and hls.js's defaults keep that distance for
 * good (they never play faster to catch up).
 *   node --import tsx bench/viewer-latency.ts [--seconds 60] [--warmup 10] [--transcode-rendition LIST] [--smoke]
 */

import { loadavg } from 'node:os';
import { percentile as nearestRank } from '../src/core/percentile.ts';
import { launchChromium, openPage } from '../testkit/browser.ts';
import { startServer } from '../testkit/server.ts';
import {
  type LatencyPlayer,
  type LatencyRun,
  measureViewerLatency,
  waitForPlayable,
} from '../testkit/viewer-latency.ts';
import { arg, machine, machineBusy, SMOKE, table, today, writeSection } from './lib.ts';

const seconds = SMOKE ? 5 : Number(arg('seconds') ?? 60);
const warmupS = SMOKE ? 0 : Number(arg('warmup') ?? 10);
const PLAYERS: readonly LatencyPlayer[] = ['hls.js defaults', 'dashboard'];
const TARGET_MS = 1500;
const BROADCAST = 'live/viewer';
const rendition = arg('transcode-rendition');
const ladderArgs = rendition === undefined ? [] : ['--transcode-rendition', rendition];
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
const server = await startServer(['--test-pattern', BROADCAST, '--log-level', 'warn', ...ladderArgs]);
const browser = await launchChromium();
const runs: LatencyRun[] = [];
try {
  await waitForPlayable(server.url, BROADCAST, variants);
  await new Promise((resolve) => setTimeout(resolve, warmupS * 1000));
  for (const player of PLAYERS) {
    const log: string[] = [];
    const { context, page } = await openPage(browser, log, { width: 1280, height: 860 });
    runs.push(await measureViewerLatency(page, server.url, BROADCAST, player, seconds, { log }));
    await context.close();
  }
} finally {
  await browser.close().catch(() => {});
  await server.stop();
}
const loadAfter = fmtLoad();
const ms = (v: number | undefined) => (v === undefined ? '-' : String(Math.round(v)));
const rows = runs.map((r) => [
  r.player,
  r.samplesMs.length,
  r.p50Ms,
  r.p95Ms,
  r.maxMs,
  ms(nearestRank(r.edgeMs, 50)),
  r.stalls,
  r.targetLatencyS === undefined ? '-' : r.targetLatencyS.toFixed(2),
  `${r.height ?? '?'}p`,
  r.p50Ms <= TARGET_MS ? 'met' : 'missed',
]);
const command = `npm run bench:viewer-latency${rendition === undefined ? '' : ` -- --transcode-rendition ${rendition}`}`;
const ladder =
  rendition === undefined
    ? 'default ladder 720p/480p/240p'
    : rendition === 'none'
      ? 'no ladder (sources only)'
      : `ladder ${rendition}`;
const serverSideMs = runs
  .map((r) => `${r.player} ${r.p50Ms - (nearestRank(r.edgeMs, 50) ?? Number.NaN)} ms`)
  .join(', ');
const text = `Command: \`${command}\` (${seconds} s per player, joining after ${warmupS} s of the broadcast). Machine: ${machine()}. Date: ${today()}.
Load average (1 / 5 / 15 min) ${loadBefore} before, ${loadAfter} after; before the run: ${busy}.
Source: the built-in test pattern (1280x720 30 fps, 1 s GOP, one fragment per frame), ${ladder}, LL-HLS part target 200 ms (PART-HOLD-BACK 0.6 s). Player: Debian chromium (headless) with hls.js, first \`new Hls({ lowLatencyMode: true })\`, then the dashboard's player; ABR picks the variant. Latency = \`Date.now() - hls.playingDate\` sampled every 250 ms from the first \`playing\` event (stalls count).

Milliseconds:

${table(['player', 'samples', 'p50', 'p95', 'max', "hls.js's own latency p50 (behind the playlist edge)", 'stalls', 'hls.js target latency at the end (s)', 'playing', `p50 <= ${TARGET_MS} ms`], rows)}

Where the time goes: the clock latency minus hls.js's own (how far its estimate of the live edge is behind the clock), p50: ${serverSideMs}; the rest is the player's distance from the edge (its start-up position, stalls, playback slower than real time on a starved machine).

Target: glass-to-glass p50 <= ${TARGET_MS / 1000} s with both players: **${runs.every((r) => r.p50Ms <= TARGET_MS) ? 'met' : 'missed'}**.`;
console.log(text);
writeSection(`Viewer latency (hls.js on the test pattern, ${rendition === 'none' ? 'sources only' : 'ladder'})`, text);
process.exit(0);
