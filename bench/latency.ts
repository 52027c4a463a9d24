/**
 * Added latency of the live path: a paced (realtime) 720p30 source (no B-frames) is POSTed over
 * HTTP on loopback to the service (its HTTP server, ingest, registry, decode-once ladder and LL-HLS
 * in this process), once by a publisher that sends one fragment per frame (as low-latency
 * publishers do) and once by one that sends GOP-sized fragments (ffmpeg's default for fragmented
 * MP4); a fragment is sent when its last frame would have been captured. Per rung: time from the
 * source fragment's arrival to the rung fragment being published, to the part that holds it being
 * listed in the playlist (observed with LL-HLS blocking playlist requests), and from the capture of
 * the rung fragment's frame to its publication (what the publisher's fragment size adds); p50 /
 * p99 / max. RSS is sampled every second.
 *   node --expose-gc --import tsx bench/latency.ts [--seconds 60] [--smoke]
 */

import type { Hono } from 'hono';
import { consoleLogger } from '../src/core/log.ts';
import { nodeHost } from '../src/runtime/node.ts';
import { loadVideoCodecs } from '../src/runtime/shared.ts';
import { parseServe } from '../src/server/config.ts';
import { trimMallocEvery } from '../src/server/main.ts';
import { createService } from '../src/server/service.ts';
import { arg, ensureSources, machine, paced, percentile, postPaced, SMOKE, table, today, writeSection } from './lib.ts';

const MEMORY = process.argv.includes('--memory');
const seconds = SMOKE ? 4 : Number(arg('seconds') ?? (MEMORY ? 600 : 60));
ensureSources();
const RUNGS = ['720p', '480p', '240p'];
type Publisher = 'frame' | 'gop';
/** The runs, one after the other (`--memory`: the default backend, per-frame publisher only). */
const RUNS: ReadonlyArray<{ backend: 'napi' | 'chromium'; publisher: Publisher }> = MEMORY
  ? [{ backend: 'napi', publisher: 'frame' }]
  : [
      { backend: 'napi', publisher: 'frame' },
      { backend: 'napi', publisher: 'gop' },
      { backend: 'chromium', publisher: 'frame' },
    ];
const SOURCES: Record<Publisher, string> = { frame: 'source-720p30-ll.mp4', gop: 'source-720p30-gop.mp4' };
const logger = consoleLogger('warn');
const warmupS = SMOKE ? 1 : 10;

/** Every `malloc_trim` of the runs (ms it took), and the period the service trims at (s). */
const trimMs: number[] = [];
let trimEveryS = 0;

/** What one paced run measured, ms per rung, and RSS samples. */
type Measured = {
  backend: string;
  publisher: Publisher;
  publish: Map<string, number[]>;
  listed: Map<string, number[]>;
  captured: Map<string, number[]>;
  rss: number[];
  partTargetMs: number;
  dvrWindowMs: number;
};

/** Runs the paced source, sent by `publisher`, through a service whose ladder uses `backend`. */
async function measureRun(backend: 'napi' | 'chromium', publisher: Publisher): Promise<Measured> {
  const config = parseServe(['--test-pattern', 'off', '--port', '0', '--transcode-backend', backend], {}, () => '');
  const loaded = await loadVideoCodecs(config, logger);
  if (loaded.codecs === undefined) throw new Error(`no codecs: ${loaded.reason}`);
  const gc = (globalThis as { gc?: (o?: unknown) => void }).gc;
  const service = createService({
    config,
    codecs: loaded.codecs,
    logger,
    gc: gc === undefined ? undefined : () => gc({ type: 'minor' }),
    graceMs: 200,
    runtime: nodeHost.http,
  });
  // Free heap pages given back on the service's own period (`--malloc-trim`, default 60 s), as it does.
  trimEveryS = config.mallocTrimEveryMs / 1000;
  const stopTrimming = trimMallocEvery(nodeHost, config.mallocTrimEveryMs, logger, (s) => {
    service.metrics.mallocTrimSeconds.observe(s);
    trimMs.push(s * 1000);
  });
  const listener = await nodeHost.serve(service.app as unknown as Hono<never>, {
    port: 0,
    host: '127.0.0.1',
    maxMessageBytes: service.ingest.limits.maxMessageBytes,
  });

  const source = 'bench/live';
  const publish = new Map<string, number[]>(RUNGS.map((r) => [r, []]));
  const listed = new Map<string, number[]>(RUNGS.map((r) => [r, []]));
  const captured = new Map<string, number[]>(RUNGS.map((r) => [r, []]));
  const unlisted = new Map<string, number[]>(RUNGS.map((r) => [r, []]));
  let measuring = false;

  service.registry.onEntryCreated((broadcast, track, bc) => {
    if (bc.origin.kind !== 'rendition' || track !== '0.mp4') return;
    const rung = bc.origin.rendition;
    const sub = bc.subscribe();
    let ended = false;
    void (async () => {
      for (;;) {
        const f = await sub.next();
        if (f === undefined) {
          ended = true;
          return;
        }
        if (!measuring || f.ingestTimeMs === 0) continue;
        const now = Date.now();
        publish.get(rung)!.push(now - f.ingestTimeMs);
        // Rungs keep the source's timeline: the frame was captured at the clock's start plus its
        // media time since the source's first frame.
        if (mediaStart !== undefined) {
          const mediaS = f.dts / bc.meta.timescale - mediaStart;
          captured.get(rung)!.push(Math.round(now - (clockStart + mediaS * 1000)));
        }
        unlisted.get(rung)!.push(f.ingestTimeMs);
      }
    })();
    // Follow the rung's playlist with blocking requests: each answer lists one more part; every
    // fragment published before that moment is listed by then (parts are complete when listed).
    void (async () => {
      let msn = 0;
      let part = 0;
      for (;;) {
        const res = await service.hls.handle(
          `/hls/${broadcast}/playlist.m3u8`,
          new URLSearchParams({ _HLS_msn: String(msn), _HLS_part: String(part) }),
        );
        if (res.status !== 200) {
          if (ended) return;
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const now = Date.now();
        const body = String(res.body);
        if (body.includes('#EXT-X-ENDLIST')) return;
        const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*part-(\d+)-(\d+)\.m4s"/.exec(body);
        if (hint === null) continue;
        msn = Number(hint[1]);
        part = Number(hint[2]);
        // Everything but the fragments of the part still being filled is listed now.
        const pending = unlisted.get(rung)!;
        const partTargetMs = config.hlsPartTargetMs;
        while (pending.length > 0 && now - pending[0]! >= 0) {
          const ingest = pending[0]!;
          // A fragment younger than the part target may sit in the open part.
          if (now - ingest < partTargetMs / 2 && pending.length <= 2) break;
          pending.shift();
          if (measuring) listed.get(rung)!.push(now - ingest);
        }
      }
    })();
  });

  // The source's first video fragment: the media time that was captured at the clock's start.
  let mediaStart: number | undefined;
  service.registry.onEntryCreated((broadcast, track, bc) => {
    if (broadcast !== source || track !== '0.mp4') return;
    const sub = bc.subscribe();
    void sub.next().then((f) => {
      if (f !== undefined) mediaStart = f.dts / bc.meta.timescale;
      sub.close();
    });
  });

  const rss: number[] = [];
  const t0 = performance.now();
  const clockStart = Date.now();
  const sampler = setInterval(() => rss.push(process.memoryUsage().rss / 2 ** 20), 1000);
  setTimeout(() => {
    measuring = true;
  }, warmupS * 1000);
  const status = await postPaced(
    `http://127.0.0.1:${listener.port}/ingest/${source}`,
    paced(SOURCES[publisher]),
    t0,
    seconds + warmupS,
  );
  if (status !== 200) throw new Error(`the publisher's POST was answered ${status}`);
  measuring = false;
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 500));
  stopTrimming();
  await listener.close();
  await service.close();
  await loaded.close?.();
  return {
    backend,
    publisher,
    publish,
    listed,
    captured,
    rss,
    partTargetMs: config.hlsPartTargetMs,
    dvrWindowMs: config.hlsDvrWindowMs,
  };
}

const measured: Measured[] = [];
for (const { backend, publisher } of RUNS) measured.push(await measureRun(backend, publisher));
const { rss, partTargetMs, dvrWindowMs } = measured[0]!;

const PUBLISHER_NAMES: Record<Publisher, string> = { frame: 'one fragment per frame', gop: 'GOP-sized fragments' };
const fmt = (v: number[]) =>
  v.length === 0 ? 'none in the window' : `${percentile(v, 50)} / ${percentile(v, 99)} / ${Math.max(...v)}`;
const rows = measured.flatMap(({ backend, publisher, publish, listed, captured }) =>
  RUNGS.map((r) => [
    backend,
    PUBLISHER_NAMES[publisher],
    r,
    publish.get(r)!.length,
    fmt(publish.get(r)!),
    fmt(listed.get(r)!),
    fmt(captured.get(r)!),
  ]),
);
const captureP50 = (m: Measured) =>
  Math.max(
    ...RUNGS.map((r) => m.captured.get(r)!)
      .filter((v) => v.length > 0)
      .map((v) => percentile(v, 50)),
  );
const gop = measured.find((m) => m.publisher === 'gop');
const worstP99Of = (m: Measured) =>
  Math.max(
    ...RUNGS.map((r) => m.publish.get(r)!)
      .filter((v) => v.length > 0)
      .map((v) => percentile(v, 99)),
  );
const worstP99 = worstP99Of(measured[0]!);
const chromium = measured.find((m) => m.backend === 'chromium');
const warm = rss[Math.min(rss.length - 1, warmupS + 5)] ?? rss[0]!;
const last = rss.at(-1)!;
const trims =
  trimMs.length === 0
    ? `no \`malloc_trim\` ran (${trimEveryS === 0 ? 'off' : nodeHost.loadMallocTrim?.().trim === undefined ? 'none available here' : `none due: the service trims every ${trimEveryS} s`})`
    : `free heap pages given back every ${trimEveryS} s as the service does (\`--malloc-trim\`): ${trimMs.length} trims over the runs, ${percentile(trimMs, 50).toFixed(0)} ms median, ${Math.max(...trimMs).toFixed(0)} ms slowest`;
const text = `Command: \`npm run bench:latency\` (${seconds} s measured after ${warmupS} s warm-up). Machine: ${machine()}. Date: ${today()}.
Source: bench/out/source-720p30-ll.mp4 (1280x720 30 fps, no B-frames, 2 s GOP), POSTed over HTTP on loopback in real time, each fragment when its last frame is captured: one fragment per frame, and (bench/out/source-720p30-gop.mp4, the same media) GOP-sized fragments; default ladder 720p/480p/240p; LL-HLS part target ${partTargetMs} ms.

Milliseconds, p50 / p99 / max:

${table(['backend', 'publisher', 'rung', 'fragments', 'arrival -> rung fragment published', 'arrival -> listed in the playlist (part)', 'capture -> rung fragment published'], rows)}

Target: p99 <= 250 ms to publish: worst rung p99 **${worstP99} ms** (napi, ${worstP99 <= 250 ? 'met' : 'missed'})${chromium === undefined ? '' : `; chromium backend: worst rung p99 ${worstP99Of(chromium)} ms`} (both with one fragment per frame). LVQR: >= 2,000 ms by construction (GOP-sized bursts).
${
  gop === undefined
    ? ''
    : `What the publisher's fragments add: capture -> published p50 (worst rung) ${captureP50(measured[0]!)} ms with one fragment per frame, ${captureP50(gop)} ms with GOP-sized fragments: a frame waits at the publisher until its fragment is complete (up to a GOP), which is why the README's publish command fragments per frame. With GOP-sized fragments the last frames of each fragment also come out of the rungs only when the next fragment arrives (arrival -> published p99 about one GOP): the decoder returns a frame once later ones are handed to it.
`
}Listing adds the part accumulation (a part is listed when complete, up to the ${partTargetMs} ms part target).
Service as shipped: ${trims}.
RSS (napi run): ${rss[0]?.toFixed(0)} MB at start, ${warm.toFixed(0)} MB warmed up, ${last.toFixed(0)} MB at the end (${(((last - warm) / warm) * 100).toFixed(1)} % after warm-up).`;
console.log(text);
if (MEMORY) {
  const minutes = rss.filter((_, i) => i % 60 === 0).map((v, i) => [`${i} min`, v.toFixed(0)]);
  // Warmed up = the HLS DVR window (source, rungs and audio) has filled: it holds that much media
  // by design, so growth is measured from then on.
  const warmAt = Math.min(rss.length - 1, Math.round(dvrWindowMs / 1000) + 30);
  const filled = rss[warmAt]!;
  const growth = ((last - filled) / filled) * 100;
  const memText = `Command: \`npm run bench:memory\` (${seconds} s paced run; \`-- --seconds 3600\` for the 60-minute option). Machine: ${machine()}. Date: ${today()}.
Same paced 720p30 source and default ladder as the latency benchmark; RSS sampled every second; ${trims}.

${table(['time', 'RSS MB'], minutes)}

Warmed up (${warmAt} s: the ${dvrWindowMs / 1000} s DVR window of source, rungs and audio is full and is then held at that size): ${filled.toFixed(0)} MB; end: ${last.toFixed(0)} MB; growth after warm-up **${growth.toFixed(1)} %** (target < 5 %: ${growth < 5 ? 'met' : 'missed'}).`;
  console.log(memText);
  writeSection('Memory (paced run)', memText);
} else {
  writeSection('Added latency (paced 720p30 source)', text);
}
process.exit(0);
