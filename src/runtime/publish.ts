/**
 * `lvqr-transcode publish <file.mp4> <url>`: pushes an MP4 file to an ingest URL in real time, for
 * users without ffmpeg. A non-fragmented MP4 is remuxed to fragmented MP4 first (no
 * re-encoding, see `container/remux.ts`). `http(s)://` URLs get one streamed POST; `ws(s)://` URLs get binary messages.
 * Runs on Node, Bun and Deno (node:fs, fetch, ws).
 */

import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { describeInit, Fmp4StreamParser, readBoxes, toFragmentedMp4 } from '../container/index.ts';
import { concatBytes } from '../core/bytes.ts';
import { ContainerError, errorMessage } from '../core/errors.ts';

/** One unit to send: the init, or a `moof`+`mdat` pair with its media time in seconds. */
export type Piece = { bytes: Uint8Array; timeS: number };

/** Splits a fragmented MP4 into init + fragments with their media times. */
export function planPieces(bytes: Uint8Array): { pieces: Piece[]; durationS: number } {
  const boxes = readBoxes(bytes);
  const pieces: Piece[] = [];
  const parser = new Fmp4StreamParser();
  let pending: Uint8Array[] = [];
  let initDone = false;
  let durationS = 0;
  const timescales = new Map<string, number>();
  for (const box of boxes) {
    if (box.type === 'mfra' || box.type === 'sidx') continue;
    pending.push(box.bytes);
    if (!initDone && box.type === 'moov') {
      const init = concatBytes(pending);
      for (const event of parser.push(init)) {
        if (event.type === 'init') for (const t of event.tracks) timescales.set(t.trackId, t.timescale);
      }
      pieces.push({ bytes: init, timeS: 0 });
      pending = [];
      initDone = true;
    } else if (initDone && box.type === 'mdat') {
      const chunk = concatBytes(pending);
      pending = [];
      let timeS = Number.POSITIVE_INFINITY;
      for (const event of parser.push(chunk)) {
        if (event.type !== 'fragment') continue;
        const track = timescales.get(event.fragment.trackId) ?? 90_000;
        timeS = Math.min(timeS, event.fragment.dts / track);
        durationS = Math.max(durationS, (event.fragment.dts + event.fragment.duration) / track);
      }
      pieces.push({ bytes: chunk, timeS: Number.isFinite(timeS) ? timeS : (pieces.at(-1)?.timeS ?? 0) });
    }
  }
  if (!initDone) throw new ContainerError('ingest.no_init', 'no moov box: not an MP4 file');
  const t0 = pieces[1]?.timeS ?? 0;
  for (const p of pieces) p.timeS = Math.max(0, p.timeS - t0);
  return { pieces, durationS: durationS - t0 };
}

/**
 * The planned file played in a loop, as one endless live stream: the init once, then the fragments
 * again and again, each pass shifting every `tfdt` by the file's duration so time keeps running.
 */
export function* loopPieces(planned: { pieces: readonly Piece[]; durationS: number }): Generator<Piece> {
  const [init, ...fragments] = planned.pieces;
  if (init === undefined) return;
  yield init;
  if (fragments.length === 0) return;
  const timescales = new Map(describeInit(init.bytes).map((t) => [t.mp4TrackId, t.timescale]));
  for (let pass = 0; ; pass++) {
    for (const piece of fragments) {
      if (pass === 0) {
        yield piece;
        continue;
      }
      const bytes = piece.bytes.slice();
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (const moof of readBoxes(bytes).filter((b) => b.type === 'moof')) {
        for (const traf of readBoxes(moof.body).filter((b) => b.type === 'traf')) {
          const boxes = readBoxes(traf.body);
          const tfhd = boxes.find((b) => b.type === 'tfhd');
          const tfdt = boxes.find((b) => b.type === 'tfdt');
          if (tfhd === undefined || tfdt === undefined) continue;
          const trackId = view.getUint32(tfhd.body.byteOffset - bytes.byteOffset + 4);
          const shift = Math.round(pass * planned.durationS * (timescales.get(trackId) ?? 90_000));
          const at = tfdt.body.byteOffset - bytes.byteOffset + 4;
          if (tfdt.body[0] === 1) view.setBigUint64(at, view.getBigUint64(at) + BigInt(shift));
          else view.setUint32(at, view.getUint32(at) + shift);
        }
      }
      yield { bytes, timeS: piece.timeS + pass * planned.durationS };
    }
  }
}

/** True when the file already is fragmented (has a moof after the moov). */
export function isFragmented(bytes: Uint8Array): boolean {
  return readBoxes(bytes).some((b) => b.type === 'moof');
}

function progressBar(fraction: number, label: string): string {
  const width = 30;
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${label}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `fetch` options for a POST whose body is `body`, a stream. `redirect: 'error'` is what keeps
 * memory flat: with any other redirect mode Node's fetch (undici) tees the body and holds one branch
 * for a redirect it might follow, so a publisher kept everything it had sent (188 MB sent, 188 MB
 * held; a looping `publish` or an in-process benchmark publisher grew by the stream's bitrate).
 * Our ingest never redirects.
 */
export function streamedPostInit(body: ReadableStream<Uint8Array>, init: RequestInit = {}): RequestInit {
  return { ...init, method: 'POST', body, redirect: 'error', duplex: 'half' } as RequestInit;
}

/**
 * POSTs `chunks` to `url` as one streamed request body, each chunk sent when the iterator yields
 * it (the iterator does the pacing); resolves with the answer.
 */
export function postStreamed(
  url: string | URL,
  chunks: AsyncIterable<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<Response> {
  const iterator = chunks[Symbol.asyncIterator]();
  // Pulled: the next chunk is taken only when the connection has taken the previous ones.
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done === true) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
  return fetch(url, streamedPostInit(body, { headers }));
}

/** Runs the publish command; returns the process exit code. */
export async function runPublish(command: {
  file: string;
  url: string;
  loop: boolean;
  token: string | undefined;
}): Promise<number> {
  const write = (s: string) => process.stderr.write(s);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(command.file));
    if (!isFragmented(bytes)) {
      write(`remuxing ${command.file} to fragmented MP4 (no re-encoding)...\n`);
      bytes = await toFragmentedMp4(bytes);
    }
  } catch (error) {
    write(`error: cannot read ${command.file}: ${errorMessage(error)}\n`);
    return 1;
  }
  const { pieces, durationS } = planPieces(bytes);
  const url = new URL(command.url);
  const headers: Record<string, string> =
    command.token === undefined ? {} : { authorization: `Bearer ${command.token}` };
  write(`publishing ${command.file} (${durationS.toFixed(1)} s, ${pieces.length - 1} fragments) to ${url.href}\n`);

  let stopped = false;
  process.once('SIGINT', () => {
    stopped = true;
  });

  async function* paced(): AsyncGenerator<Uint8Array> {
    // Looping plays the file as one endless live stream (timestamps keep running, one init), not
    // as a restart per pass.
    const source = command.loop ? loopPieces({ pieces, durationS }) : pieces;
    const start = performance.now();
    let sent = 0;
    for (const piece of source) {
      if (stopped) return;
      const wait = start + piece.timeS * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      sent += piece.bytes.byteLength;
      const loop = durationS > 0 ? Math.floor(piece.timeS / durationS) : 0;
      const inPassS = piece.timeS - loop * durationS;
      write(
        progressBar(
          durationS > 0 ? inPassS / durationS : 1,
          `${inPassS.toFixed(1)}/${durationS.toFixed(1)} s  ${(sent / 1e6).toFixed(1)} MB${command.loop ? `  loop ${loop + 1}` : ''}`,
        ),
      );
      yield piece.bytes;
    }
  }

  try {
    if (url.protocol === 'ws:' || url.protocol === 'wss:') {
      const ws = new WebSocket(url, { headers });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`server answered ${res.statusCode}`)));
      });
      let closedEarly: string | undefined;
      ws.on('message', (data) => {
        closedEarly = String(data);
      });
      ws.on('close', (code, reason) => {
        if (code >= 4000) closedEarly = `${code} ${reason.toString()}`;
        stopped = true;
      });
      for await (const chunk of paced()) ws.send(chunk);
      ws.close(1000);
      write('\n');
      if (closedEarly !== undefined) {
        write(`error: server closed the stream: ${closedEarly}\n`);
        return 1;
      }
      return 0;
    }
    const response = await postStreamed(url, paced(), headers);
    write('\n');
    const text = await response.text();
    if (!response.ok) {
      write(`error: server answered ${response.status}: ${text}\n`);
      return 1;
    }
    write(`done: ${text}\n`);
    return 0;
  } catch (error) {
    write(`\nerror: ${errorMessage(error)}\n`);
    return 1;
  }
}
