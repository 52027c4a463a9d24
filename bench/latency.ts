/**
 * Added latency of the live path: a paced (realtime) 720p30 source (no B-frames, one fragment per
 * frame, as low-latency publishers send) goes through ingest -> registry -> decode-once ladder ->
 * LL-HLS in one process. Per rung: time from the source fragment's arrival to the rung fragment
 * being published, and to the part that holds it being listed in the playlist (observed with
 * LL-HLS blocking playlist requests); p50 / p99 / max. RSS is sampled every second.
 *   node --expose-gc --import tsx bench/latency.ts [--seconds 60] [--smoke]
 */

import { readFileSync } from 'node:fs';
import { consoleLogger } from '../src/core/log.ts';
import { loopPieces, planPieces } from '../src/runtime/publish.ts';
import { loadVideoCodecs } from '../src/runtime/shared.ts';
import { parseServe } from '../src/server/config.ts';
import { createService } from '../src/server/service.ts';
import { arg, ensureSources, machine, percentile, SMOKE, sourcePath, table, today, writeSection } from './lib.ts';

const MEMORY = process.argv.includes('--memory');
const seconds = SMOKE ? 4 : Number(arg('seconds') ?? (MEMORY ? 600 : 60));
ensureSources();
const RUNGS = ['720p', '480p', '240p'];
/** The backends measured, one after the other in the same run (`--memory`: the default one only). */
const BACKENDS = MEMORY ? (['napi'] as const) : (['napi', 'chromium'] as const);
const logger = consoleLogger('warn');
const warmupS = SMOKE ? 1 : 10;

/** What one backend's paced run measured, ms per rung, and RSS samples. */
type Measured = {
  backend: string;
  publish: Map<string, number[]>;
  listed: Map<string, number[]>;
  rss: number[];
  partTargetMs: number;
  dvrWindowMs: number;
};

/** Runs the paced source through a service whose ladder uses `backend`. */
async function measureBackend(backend: 'napi' | 'chromium'): Promise<Measured> {
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
  });

  const source = 'bench/live';
  const publish = new Map<string, number[]>(RUNGS.map((r) => [r, []]));
  const listed = new Map<string, number[]>(RUNGS.map((r) => [r, []]));
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
        publish.get(rung)!.push(Date.now() - f.ingestTimeMs);
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

  const looped = () => loopPieces(planPieces(new Uint8Array(readFileSync(sourcePath('source-720p30-ll.mp4')))));
  const connection = service.ingest.open(source, 'internal');
  const rss: number[] = [];
  const t0 = performance.now();
  const sampler = setInterval(() => rss.push(process.memoryUsage().rss / 2 ** 20), 1000);
  setTimeout(() => {
    measuring = true;
  }, warmupS * 1000);
  for (const piece of looped()) {
    if (piece.timeS > seconds + warmupS) break;
    const wait = t0 + piece.timeS * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    connection.push(piece.bytes);
  }
  measuring = false;
  clearInterval(sampler);
  connection.end('eof');
  await new Promise((r) => setTimeout(r, 500));
  await service.close();
  await loaded.close?.();
  return {
    backend,
    publish,
    listed,
    rss,
    partTargetMs: config.hlsPartTargetMs,
    dvrWindowMs: config.hlsDvrWindowMs,
  };
}

const measured: Measured[] = [];
for (const backend of BACKENDS) measured.push(await measureBackend(backend));
const { rss, partTargetMs, dvrWindowMs } = measured[0]!;

const rows = measured.flatMap(({ backend, publish, listed }) =>
  RUNGS.map((r) => {
    const p = publish.get(r)!;
    const l = listed.get(r)!;
    return [
      backend,
      r,
      p.length,
      `${percentile(p, 50)} / ${percentile(p, 99)} / ${Math.max(...p)}`,
      `${percentile(l, 50)} / ${percentile(l, 99)} / ${Math.max(...l)}`,
    ];
  }),
);
const worstP99Of = (m: Measured) => Math.max(...RUNGS.map((r) => percentile(m.publish.get(r)!, 99)));
const worstP99 = worstP99Of(measured[0]!);
const warm = rss[Math.min(rss.length - 1, warmupS + 5)] ?? rss[0]!;
const last = rss.at(-1)!;
const text = `Command: \`npm run bench:latency\` (${seconds} s measured after ${warmupS} s warm-up). Machine: ${machine()}. Date: ${today()}.
Source: bench/out/source-720p30-ll.mp4, 1280x720 30 fps, no B-frames, one fragment per frame, pushed in real time into ingest; default ladder 720p/480p/240p; LL-HLS part target ${partTargetMs} ms.

Milliseconds, p50 / p99 / max:

${table(['backend', 'rung', 'fragments', 'arrival -> rung fragment published', 'arrival -> listed in the playlist (part)'], rows)}

Target: p99 <= 250 ms to publish: worst rung p99 **${worstP99} ms** (napi, ${worstP99 <= 250 ? 'met' : 'missed'})${measured.length > 1 ? `; chromium backend: worst rung p99 ${worstP99Of(measured[1]!)} ms` : ''}. LVQR: >= 2,000 ms by construction (GOP-sized bursts).
Listing adds the part accumulation (a part is listed when complete, up to the ${partTargetMs} ms part target).
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
Same paced 720p30 source and default ladder as the latency benchmark; RSS sampled every second.

${table(['time', 'RSS MB'], minutes)}

Warmed up (${warmAt} s: the ${dvrWindowMs / 1000} s DVR window of source, rungs and audio is full and is then held at that size): ${filled.toFixed(0)} MB; end: ${last.toFixed(0)} MB; growth after warm-up **${growth.toFixed(1)} %** (target < 5 %: ${growth < 5 ? 'met' : 'missed'}).`;
  console.log(memText);
  writeSection('Memory (paced run)', memText);
} else {
  writeSection('Added latency (paced 720p30 source)', text);
}
process.exit(0);
