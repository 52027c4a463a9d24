/** Publishers (ffmpeg, WebSocket, the publish CLI), playlist parsing and metric reading for the end-to-end tests. */

import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { Parser } from 'm3u8-parser';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { Fmp4StreamParser } from '../../src/container/index.ts';
import { loopPieces, planPieces } from '../../src/runtime/publish.ts';
import { seededRandom } from '../../testkit/fmp4.ts';
import { cliCommand, getJson, getText, ROOT } from '../../testkit/server.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { trackIdsOf } from '../support/mp4-edit.ts';
import { waitFor } from '../support/wait.ts';

/** A child process with its captured output. */
export type Proc = {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  kill(): void;
};

/** Runs `command` in the repository root, capturing stdout and stderr. */
export function run(command: string, args: readonly string[]): Proc {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (error) => {
      out += `\n[spawn error] ${error.message}`;
      resolve(-1);
    });
  });
  return {
    child,
    output: () => out,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** `ffmpeg -re [-stream_loop N] -i <file> -c copy -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof <url>`. */
export function ffmpegPublish(file: string, url: string, { loops = 0 }: { loops?: number } = {}): Proc {
  return run('ffmpeg', [
    '-nostdin',
    '-v',
    'error',
    '-re',
    ...(loops > 0 ? ['-stream_loop', String(loops)] : []),
    '-i',
    file,
    '-c',
    'copy',
    '-f',
    'mp4',
    '-movflags',
    'frag_keyframe+empty_moov+default_base_moof',
    url,
  ]);
}

/**
 * `ffmpeg -v error -live_start_index 0 -i <playlist> -map 0:v:0 -f null -progress pipe:1 -`: decodes
 * a live media playlist from its first segment until its end; read the result with `decodedFrames`
 * and `decodeErrorLines`.
 */
export function ffmpegDecodeLive(playlistUrl: string): Proc {
  return run('ffmpeg', [
    '-nostdin',
    '-v',
    'error',
    '-live_start_index',
    '0',
    '-i',
    playlistUrl,
    '-map',
    '0:v:0',
    '-f',
    'null',
    '-progress',
    'pipe:1',
    '-',
  ]);
}

/** Frames an `ffmpegDecodeLive` run decoded (its last `frame=` progress line). */
export const decodedFrames = (progress: string): number =>
  Number([...progress.matchAll(/^frame=(\d+)$/gm)].at(-1)?.[1] ?? Number.NaN);

/** The lines of an `ffmpegDecodeLive` run that are not progress lines: its errors. */
export const decodeErrorLines = (progress: string): string[] =>
  progress.split('\n').filter((l) => l.trim() !== '' && !/^[a-z_0-9]+=/.test(l.trim()));

/**
 * Judges the `ffmpegDecodeLive` runs in `decodes` (keys `source` and each rung's name) once the
 * broadcast at `base` ended: each exits 0 with no decode error, the source decodes
 * `sourceFrames` frames, every rung as many, at its planned size (ffprobe of its playlist).
 */
export async function judgeLiveDecodes(
  decodes: ReadonlyMap<string, Proc>,
  base: string,
  rungs: ReadonlyArray<{ name: string; width: number; height: number }>,
  sourceFrames: number,
): Promise<void> {
  const results = new Map<string, { code: number | null; output: string }>();
  for (const [name, proc] of decodes) results.set(name, { code: await proc.exited, output: proc.output() });
  const source = results.get('source')!;
  expect(source.code, source.output).toBe(0);
  expect(decodeErrorLines(source.output)).toEqual([]);
  expect(decodedFrames(source.output)).toBe(sourceFrames);
  for (const r of rungs) {
    const { code, output } = results.get(r.name)!;
    expect(code, `${r.name}: ${output}`).toBe(0);
    expect(decodeErrorLines(output), r.name).toEqual([]);
    expect(decodedFrames(output), r.name).toBe(sourceFrames);
    const [video] = (await probeStreams(`${base}/${r.name}/playlist.m3u8`)).filter((s) => s.codecType === 'video');
    expect({ codec: video?.codecName, width: video?.width, height: video?.height }, r.name).toEqual({
      codec: 'h264',
      width: r.width,
      height: r.height,
    });
  }
}

/** Polls `<base>/master.m3u8` until it lists `<rung>/playlist.m3u8` for every rung name; returns its text. */
export function waitForMasterListing(base: string, rungs: readonly string[], timeoutMs: number): Promise<string> {
  return waitFor(
    async () => {
      const t = await getText(`${base}/master.m3u8`);
      return t !== undefined && rungs.every((r) => t.includes(`${r}/playlist.m3u8`)) ? t : undefined;
    },
    `the master at ${base} to list ${rungs.join(', ')}`,
    { timeoutMs, intervalMs: 100 },
  );
}

/** `lvqr-transcode publish <file> <url>` on Node. */
export function cliPublish(file: string, url: string): Proc {
  const { command, args } = cliCommand('node', ['publish', file, url]);
  return run(command, args);
}

/** Splits `bytes` into chunks of 1 .. maxChunk bytes. */
export function randomChunks(bytes: Uint8Array, random: () => number, maxChunk = 64 * 1024): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    out.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

/** What a WebSocket publisher saw from the server. */
export type WsOutcome = { code: number; reason: string; messages: string[] };

/** An open WebSocket publisher. */
export type WsPublisher = {
  readonly ws: WebSocket;
  readonly messages: string[];
  /** Resolves when the socket closes. */
  readonly closed: Promise<WsOutcome>;
  send(chunk: Uint8Array): void;
  /**
   * Sends a fragmented MP4 file in random chunks (binary messages). With `paced`, each
   * `moof`+`mdat` goes out at its media time (like `ffmpeg -re`); else everything at once.
   */
  sendFile(bytes: Uint8Array, options: { seed: number; paced: boolean }): Promise<void>;
  close(): Promise<WsOutcome>;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a WebSocket publisher on `url` (`ws://.../ingest/<name>`); rejects with the HTTP status if refused. */
export async function openWsPublisher(url: string): Promise<WsPublisher> {
  const ws = new WebSocket(url);
  ws.binaryType = 'nodebuffer';
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(String(data)));
  const closed = new Promise<WsOutcome>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), messages }));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      res.on('end', () => reject(new WsRefused(res.statusCode ?? 0, body)));
    });
    ws.once('error', (error) => reject(error));
  });
  ws.on('error', () => {});
  const send = (chunk: Uint8Array) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(chunk, { binary: true });
  };
  return {
    ws,
    messages,
    closed,
    send,
    async sendFile(bytes, { seed, paced }) {
      const random = seededRandom(seed);
      if (!paced) {
        for (const chunk of randomChunks(bytes, random)) send(chunk);
        return;
      }
      const { pieces } = planPieces(bytes);
      const start = performance.now();
      for (const piece of pieces) {
        const wait = start + piece.timeS * 1000 - performance.now();
        if (wait > 0) await sleep(wait);
        for (const chunk of randomChunks(piece.bytes, random)) send(chunk);
      }
    },
    async close() {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      return closed;
    },
  };
}

/** A refused WebSocket upgrade. */
export class WsRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`WebSocket upgrade refused with HTTP ${status}: ${body}`);
  }
}

/** Parses a playlist with m3u8-parser (a real HLS parser); throws on parser warnings. */
// biome-ignore lint/suspicious/noExplicitAny: m3u8-parser's manifest is a loose JSON tree.
export function parseM3u8(text: string): any {
  const parser = new Parser();
  const warnings: string[] = [];
  parser.on('warn', (w) => warnings.push(w.message));
  parser.push(text);
  parser.end();
  if (warnings.length > 0) throw new Error(`m3u8-parser warnings: ${warnings.join('; ')}\n${text}`);
  return parser.manifest;
}

/** The last `part-<msn>-<i>.m4s` listed in a media playlist (undefined when none). */
export function lastPart(playlist: string): { msn: number; index: number } | undefined {
  let last: { msn: number; index: number } | undefined;
  for (const m of playlist.matchAll(/#EXT-X-PART:[^\n]*URI="part-(\d+)-(\d+)\.m4s"/g)) {
    last = { msn: Number(m[1]), index: Number(m[2]) };
  }
  return last;
}

/** Sum of every sample of metric `name` (any labels) in Prometheus text, or undefined when absent. */
export function metricSum(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** `length` pseudo-random bytes (deterministic per seed). */
export function randomBytes(length: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  return new Uint8Array(length).map(() => Math.floor(random() * 256));
}

/**
 * Opens a WebSocket publisher on `url` that the server refuses. The refusal arrives on the open
 * socket (browsers cannot read an HTTP refusal of an upgrade): one JSON error message, then close
 * code 4000 + HTTP status. Returned as that status and body; an HTTP refusal fails.
 */
export async function refusedUpgrade(url: string): Promise<WsRefused> {
  const publisher = await openWsPublisher(url);
  const closed = await publisher.closed;
  if (closed.code < 4000) throw new Error(`the WebSocket of ${url} was not refused: it closed with ${closed.code}`);
  expect(closed.messages).toHaveLength(1);
  expect(closed.reason).toBe(JSON.parse(closed.messages[0]!).error.code);
  return new WsRefused(closed.code - 4000, closed.messages[0]!);
}

/** One track of `GET /api/v1/broadcasts`. */
export type TrackSummary = {
  track: string;
  codec?: string;
  width?: number;
  height?: number;
  frameRate?: number;
  fragments: number;
  droppedFragments: number;
  lagGaps: number;
  mediaSequence: number;
  discontinuitySequence: number;
  ended: boolean;
};

/** `GET /api/v1/broadcasts`. */
export type BroadcastsApi = {
  broadcasts: Array<{ name: string; origin: string; ended: boolean; inMaster: boolean; tracks: TrackSummary[] }>;
  publishers: Array<{ broadcast: string; state: string; fragments: number; connections: number }>;
};

/** The summary of `track` (default the video track) of broadcast `name`, or undefined. */
export async function trackSummary(base: string, name: string, track = '0.mp4'): Promise<TrackSummary | undefined> {
  const api = await getJson<BroadcastsApi>(`${base}/api/v1/broadcasts`);
  return api.broadcasts.find((b) => b.name === name)?.tracks.find((t) => t.track === track);
}

/** A publisher that plays a fragmented MP4 in a loop as one continuous live stream. */
export type LoopingPublisher = {
  readonly publisher: WsPublisher;
  /** Video fragments sent so far. */
  readonly videoSent: number;
  /** Stops after the fragment in flight; resolves once nothing more will be sent. */
  stop(): Promise<void>;
};

/**
 * Publishes `bytes` (a fragmented MP4) over WebSocket at `url` in real time as one endless live
 * stream (`loopPieces`: the init once, then the fragments again and again with their `tfdt`s moved
 * on, so the server sees no new init and no discontinuity).
 */
export async function startLoopingPublisher(url: string, bytes: Uint8Array): Promise<LoopingPublisher> {
  const planned = planPieces(bytes);
  const init = new Fmp4StreamParser().push(planned.pieces[0]!.bytes).find((e) => e.type === 'init');
  const video = init?.tracks.find((t) => t.kind === 'video')?.mp4TrackId;
  const publisher = await openWsPublisher(url);
  let videoSent = 0;
  let stopped = false;
  const started = performance.now();
  const done = (async () => {
    let first = true;
    for (const piece of loopPieces(planned)) {
      const wait = started + piece.timeS * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      if (stopped || publisher.ws.readyState !== WebSocket.OPEN) return;
      publisher.send(piece.bytes);
      if (!first && video !== undefined && trackIdsOf(piece.bytes).includes(video)) videoSent += 1;
      first = false;
    }
  })();
  return {
    publisher,
    get videoSent() {
      return videoSent;
    },
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** An HTTP response read off a raw socket. */
export type RawResponse = { status: number; head: string; body: string };

/**
 * Sends `request` as-is on a new TCP connection (no URL normalisation, any method or header; a
 * string is sent as latin1) and resolves with the first response once its `Content-Length` body is
 * in, or when the server closes. The request may leave its body unfinished: the connection stays
 * open until the answer comes.
 */
export function rawRequest(port: number, request: string | Uint8Array, timeoutMs = 5000): Promise<RawResponse> {
  const bytes = typeof request === 'string' ? Buffer.from(request, 'latin1') : request;
  const line = Buffer.from(bytes.subarray(0, 200)).toString('latin1').split('\r\n')[0];
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    let text = '';
    const parsed = (): RawResponse | undefined => {
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const head = text.slice(0, end);
      const body = text.slice(end + 4);
      const length = /^content-length:\s*(\d+)/im.exec(head);
      if (length !== null && body.length < Number(length[1])) return undefined;
      return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), head, body };
    };
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const response = parsed();
      if (response !== undefined && /^content-length:/im.test(response.head)) {
        socket.destroy();
        resolve(response);
      }
    });
    socket.on('close', () => {
      const response = parsed();
      if (response === undefined) reject(new Error(`no HTTP response to ${line}: ${text}`));
      else resolve(response);
    });
    socket.on('error', reject);
    socket.setTimeout(timeoutMs, () => socket.destroy());
  });
}

/** What a raw WebSocket upgrade got: the status line, then (after a 101) the text message and close frame. */
export type RawWsRefusal = { status: number; head: string; message: string; closeCode: number; closeReason: string };

/**
 * Sends a WebSocket upgrade for `target` as-is on a new TCP connection (no URL normalisation) and
 * reads the server's frames until its close frame: how a refusal on the open socket looks on the wire.
 */
export function rawWsRefusal(port: number, target: string, timeoutMs = 5000): Promise<RawWsRefusal> {
  const request =
    `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(Buffer.from(request, 'latin1')));
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close frame for the upgrade of ${target}: ${data.toString('latin1')}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1');
      let message = '';
      // Server frames are unmasked: opcode, 7-bit length (126: 16-bit length follows), payload.
      for (let at = end + 4; at + 2 <= data.length; ) {
        const opcode = data[at]! & 0x0f;
        let length = data[at + 1]! & 0x7f;
        let start = at + 2;
        if (length === 126) {
          if (start + 2 > data.length) return;
          length = data.readUInt16BE(start);
          start += 2;
        }
        if (start + length > data.length) return;
        const payload = data.subarray(start, start + length);
        if (opcode === 1) message = payload.toString('utf8');
        if (opcode === 8) {
          clearTimeout(timer);
          socket.destroy();
          resolve({
            status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
            head,
            message,
            closeCode: payload.readUInt16BE(0),
            closeReason: payload.subarray(2).toString('utf8'),
          });
          return;
        }
        at = start + length;
      }
    });
    socket.on('error', reject);
  });
}

/**
 * The init and the first or last complete segment of a live media playlist, joined: a file ffprobe
 * reads to its end (a live playlist it would follow until the broadcast ends).
 */
export async function segmentWithInit(playlistUrl: string, which: 'first' | 'last'): Promise<Uint8Array> {
  const text = (await getText(playlistUrl))!;
  const lines = text.split('\n');
  const segments = lines.flatMap((line, i) => (/^seg-\d+\.m4s$/.test(line) ? [i] : []));
  const at = which === 'first' ? segments[0]! : segments.at(-1)!;
  const map = lines
    .slice(0, at)
    .reverse()
    .find((line) => line.startsWith('#EXT-X-MAP:'))!;
  const fetchBytes = async (uri: string) =>
    new Uint8Array(await (await fetch(new URL(uri, playlistUrl))).arrayBuffer());
  const init = await fetchBytes(/URI="([^"]+)"/.exec(map)![1]!);
  const media = await fetchBytes(lines[at]!);
  const joined = new Uint8Array(init.byteLength + media.byteLength);
  joined.set(init);
  joined.set(media, init.byteLength);
  return joined;
}
