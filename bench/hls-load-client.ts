/**
 * Load client of hls-load.ts (a separate process, so client work does not slow the server's event
 * loop): holds N blocking playlist requests for the next part, again and again, and reports when
 * each answer arrived; then measures plain playlist and segment requests per second.
 * Input (argv): base URL, N, rounds, rps seconds (0: none), client for the held requests
 * (`request`: undici's `request()`, the default; `fetch`: WHATWG fetch; `raw`: a minimal HTTP/1.1
 * reader on plain sockets, so the client's own cost per answer stays small next to the server's).
 * Output: one JSON line.
 */

import { connect, type Socket } from 'node:net';
import { Agent, request, setGlobalDispatcher } from 'undici';

const [base, nArg, roundsArg, rpsArg, clientArg] = process.argv.slice(2);
const useFetch = clientArg === 'fetch';
const useRaw = clientArg === 'raw';
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

/** An answer to a held request: when its last byte arrived, and its body. */
type Answer = { at: number; body: () => string };

/**
 * One keep-alive HTTP/1.1 connection with one request in flight; understands only what the server
 * sends here (Content-Length bodies). The arrival time is taken when the last byte is read.
 */
class RawConnection {
  readonly #socket: Socket;
  readonly #host: string;
  #buffer: Buffer = Buffer.alloc(0);
  #pending: { resolve: (answer: Answer) => void; reject: (error: Error) => void } | undefined;

  constructor(url: URL) {
    this.#host = url.host;
    this.#socket = connect({ host: url.hostname, port: Number(url.port) });
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('error', (error) => this.#pending?.reject(error));
  }

  get(path: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.#host}\r\n\r\n`);
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const headEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headEnd === -1) return;
    const head = this.#buffer.toString('latin1', 0, headEnd);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    const end = headEnd + 4 + length;
    if (this.#buffer.length < end) return;
    const at = now();
    const bytes = this.#buffer.subarray(headEnd + 4, end);
    this.#buffer = this.#buffer.subarray(end);
    const pending = this.#pending;
    this.#pending = undefined;
    if (head.slice(9, 12) !== '200') pending?.reject(new Error(`playlist ${head.slice(9, 12)}`));
    else pending?.resolve({ at, body: () => bytes.toString('utf8') });
  }
}

const raw = useRaw ? Array.from({ length: n }, () => new RawConnection(new URL(base!))) : [];
const playlistPath = `${new URL(base!).pathname}/playlist.m3u8`;

/** N held requests for the same part, each answer timed. */
function holdAll(query: string): Promise<PromiseSettledResult<Answer>[]> {
  if (useRaw) return Promise.allSettled(raw.map((c) => c.get(`${playlistPath}${query}`)));
  return Promise.allSettled(
    Array.from({ length: n }, async () => {
      const body = await playlist(query);
      return { at: now(), body: () => body };
    }),
  );
}

const batches: Array<{ msn: number; part: number; arrivals: number[]; failures: number }> = [];
let target = nextPart(await playlist());
const cpuBefore = process.cpuUsage();
const heldStart = now();
for (let r = 0; r < rounds; r++) {
  const results = await holdAll(`?_HLS_msn=${target.msn}&_HLS_part=${target.part}`);
  const ok = results.filter((x): x is PromiseFulfilledResult<Answer> => x.status === 'fulfilled');
  batches.push({ msn: target.msn, part: target.part, arrivals: ok.map((x) => x.value.at), failures: n - ok.length });
  if (ok.length === 0) break;
  target = nextPart(ok[0]!.value.body());
}
for (const c of raw) c.close();

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
