/** Publishers (ffmpeg, WebSocket, the publish CLI), playlist parsing and metric reading for the end-to-end tests. */

import { type ChildProcess, spawn } from 'node:child_process';
import { Parser } from 'm3u8-parser';
import WebSocket from 'ws';
import { planPieces } from '../../src/runtime/publish.ts';
import { cliCommand, ROOT } from '../support/server.ts';

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

/** `lvqr-transcode publish <file> <url>` on Node. */
export function cliPublish(file: string, url: string): Proc {
  const { command, args } = cliCommand('node', ['publish', file, url]);
  return run(command, args);
}

/** A deterministic pseudo-random generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
      const random = rng(seed);
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
  const random = rng(seed);
  return new Uint8Array(length).map(() => Math.floor(random() * 256));
}
