/**
 * Load client of hls-load.ts (a separate process, so client work does not slow the server's event
 * loop): holds N blocking playlist requests for the next part, again and again, and reports when
 * each answer arrived; then measures plain playlist and segment requests per second.
 * Input (argv): base URL, N, rounds, rps seconds (0: none), client (`request`: undici's
 * `request()`, the default; `fetch`: WHATWG fetch, about three times the client CPU per answer).
 * Output: one JSON line.
 */

import { Agent, request, setGlobalDispatcher } from 'undici';

const [base, nArg, roundsArg, rpsArg, clientArg] = process.argv.slice(2);
const useFetch = clientArg === 'fetch';
const n = Number(nArg);
const rounds = Number(roundsArg);
const rpsSeconds = Number(rpsArg);
// pipelining 1 = keep-alive with one request in flight per connection (0 would send `Connection: close`).
setGlobalDispatcher(new Agent({ connections: n + 64, pipelining: 1, keepAliveTimeout: 30_000 }));
const now = () => performance.timeOrigin + performance.now();

/** GETs `url`: the status and the body read to its end. */
async function get(url: string): Promise<{ status: number; body: string }> {
  if (useFetch) {
    const res = await fetch(url);
    return { status: res.status, body: await res.text() };
  }
  const res = await request(url);
  return { status: res.statusCode, body: await res.body.text() };
}

async function playlist(query = ''): Promise<string> {
  const res = await get(`${base}/playlist.m3u8${query}`);
  if (res.status !== 200) throw new Error(`playlist ${res.status}`);
  return res.body;
}

function nextPart(body: string): { msn: number; part: number } {
  const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)\.m4s"/.exec(body);
  if (hint === null) throw new Error('no preload hint');
  return { msn: Number(hint[1]), part: Number(hint[2]) };
}

const batches: Array<{ msn: number; part: number; arrivals: number[]; failures: number }> = [];
let target = nextPart(await playlist());
const cpuBefore = process.cpuUsage();
const heldStart = now();
for (let r = 0; r < rounds; r++) {
  const q = `?_HLS_msn=${target.msn}&_HLS_part=${target.part}`;
  const results = await Promise.allSettled(
    Array.from({ length: n }, async () => {
      const body = await playlist(q);
      return { at: now(), body };
    }),
  );
  const ok = results.filter((x): x is PromiseFulfilledResult<{ at: number; body: string }> => x.status === 'fulfilled');
  batches.push({ msn: target.msn, part: target.part, arrivals: ok.map((x) => x.value.at), failures: n - ok.length });
  if (ok.length === 0) break;
  target = nextPart(ok[0]!.value.body);
}

const heldEnd = now();
const cpu = process.cpuUsage(cpuBefore);
const heldCpuS = (cpu.user + cpu.system) / 1e6;

async function rps(path: string): Promise<number> {
  const end = performance.now() + rpsSeconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (performance.now() < end) {
        const res = await get(`${base}/${path}`);
        if (res.status === 200) count += 1;
      }
    }),
  );
  return count / rpsSeconds;
}
const body = await playlist();
const segment = /(seg-\d+\.m4s)/.exec(body)?.[1] ?? 'init.mp4';
// Zero seconds skips the requests-per-second phase (profiling the held rounds alone).
const playlistRps = rpsSeconds > 0 ? await rps('playlist.m3u8') : Number.NaN;
const segmentRps = rpsSeconds > 0 ? await rps(segment) : Number.NaN;
// Exit only once the (large) line is flushed: a pipe write is asynchronous.
process.stdout.write(`${JSON.stringify({ batches, heldStart, heldEnd, heldCpuS, playlistRps, segmentRps })}\n`, () =>
  process.exit(0),
);
