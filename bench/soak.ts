/**
 * Soak: N paced live broadcasts against the real server (the CLI in a child process, as deployed)
 * for a chosen time, with publishers that drop and come back and LL-HLS players that come and go.
 *   npm run soak -- [--broadcasts 2] [--minutes 10] [--seed 1] [--players 6] [--hls-dvr-window 120] [--smoke]
 *
 * Source: bench/out/source-720p30-ll.mp4 (1280x720 30 fps, no B-frames, 2 s GOP, AAC, one fragment
 * per frame), looped with its timestamps running on, paced in real time; default ladder.
 *
 * Broadcast roles:
 * - healthy (broadcast 0 when N >= 2): one HTTP POST for the whole run that never drops, ended
 *   cleanly at the end. Loss is judged on it: every video and audio sample the publisher sent must
 *   be in a source segment (`seg-<msn>.m4s` of playlist.m3u8 / audio.m3u8), matched by track and
 *   decode time. An auditor follows those playlists and the rung playlists with blocking reloads
 *   and downloads every segment. Per rung it reports the source GOPs the rung is missing (the
 *   overload policy drops whole GOPs): shown, not counted as loss.
 * - flaky (the others): each connection lasts a random time, over HTTP POST or WebSocket at
 *   random, then breaks off (between fragments or in the middle of one) or ends cleanly, and a new
 *   connection comes within the grace period (5 s) after a random gap. It sends the init again,
 *   then either restarts its clock at 0 (an encoder restart) or goes on with the running clock from
 *   the next keyframe (a network blip). A refused reconnect (409: the server has not yet seen the
 *   old connection go) is retried and counted.
 * Players: `--players` slots; each runs sessions of random length on a random broadcast and a
 * random variant of its master: blocking playlist reloads for the next part (sometimes as delta
 * updates), fetching every new part and init. Statuses other than 200 are counted by kind; a 503
 * (blocking request timed out) or a 404 (a hinted part that never came) is expected on a flaky
 * broadcast and on a rung (the overload policy may pause it), and an error anywhere else.
 *
 * Windows: as the publishers stop, every broadcast's tracks from /api/v1/broadcasts (fragments kept
 * and dropped, MB held) and its target duration, which must stay at the source's 2 s (a segment cut
 * late raises it for good, and what the windows keep with it).
 * Timelines: every 10 s, each broadcast's master and every playlist it lists are read and each
 * segment compared with the source video's segment of the same MSN: it must be on the same
 * timeline (Discontinuity Sequence Number; RFC 8216 6.2.4), flaky broadcasts included.
 * Memory: RSS, JavaScript heap, ArrayBuffers and the DVR windows' bytes from /metrics every 5 s, the resident pages by kind of
 * mapping from /proc/PID/smaps (main arena, codec threads' arenas, other anonymous, files), with the
 * overload actions so far. Warmed up = once the DVR window has filled (window + 30 s);
 * the warmed-up level is the median over the 30 s from then, the end level the median over the last
 * 30 s; the acceptance is end <= warmed-up + 5 % (the memory target: over 60 minutes, with the
 * overload policy's sheds and encoder restarts, which two 720p30 broadcasts cause on 2 vCPU). `--hls-dvr-window` shortens the window (for
 * short runs; the results say which was used). `--smoke` runs ~20 s with a 6 s window and never
 * writes bench/RESULTS.md.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import WebSocket from 'ws';
import { describeInit, readBoxes, readSamples } from '../src/container/index.ts';
import { loopPieces, planPieces, streamedPostInit } from '../src/runtime/publish.ts';
// The soak drives the CLI exactly as the end-to-end tests do.
import { type RunningServer, startServer } from '../testkit/server.ts';
import { arg, ensureSources, machine, SMOKE, sourcePath, table, today, writeSection } from './lib.ts';

// ---- configuration -------------------------------------------------------------------------------

const BROADCASTS = Number(arg('broadcasts') ?? 2);
const MINUTES = Number(arg('minutes') ?? (SMOKE ? 0.35 : 10));
const SEED = Number(arg('seed') ?? 1);
const PLAYERS = Number(arg('players') ?? (SMOKE ? 2 : 6));
const DVR_WINDOW_S = Number(arg('hls-dvr-window') ?? (SMOKE ? 6 : 120));
/** The source's segment target duration (its 2 s GOP), which every playlist of a broadcast keeps. */
const SOURCE_TARGET_S = 2;
for (const [name, value, min] of [
  ['broadcasts', BROADCASTS, 1],
  ['minutes', MINUTES, 0.1],
  ['players', PLAYERS, 0],
  ['hls-dvr-window', DVR_WINDOW_S, 6],
] as const) {
  if (!(Number.isFinite(value) && value >= min)) throw new TypeError(`--${name}: expected a number >= ${min}`);
}
const RUN_MS = MINUTES * 60_000;
const GRACE_MS = 5000;
/** A flaky connection lasts this long (ms), then drops. */
const SESSION_MS: [number, number] = SMOKE ? [2500, 5000] : [10_000, 60_000];
/** Gap before the reconnect, well inside the grace period. */
const GAP_MS: [number, number] = SMOKE ? [200, 1000] : [200, 3000];
/** A player session lasts this long. */
const PLAYER_MS: [number, number] = SMOKE ? [3000, 8000] : [5000, 60_000];
const RSS_EVERY_MS = SMOKE ? 1000 : 5000;
/** How often every broadcast's playlists are read to compare their timelines. */
const TIMELINE_EVERY_MS = SMOKE ? 2000 : 10_000;
const WARM_AT_MS = (DVR_WINDOW_S + 30) * 1000;
const LEVEL_SPAN_MS = 30_000;
const RUNGS = ['720p', '480p', '240p'];

/** A seeded generator of floats in [0, 1) (splitmix32), so a run can be replayed with `--seed`. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296;
  };
}
const random = seeded(SEED);
const between = ([lo, hi]: [number, number]) => lo + random() * (hi - lo);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the source ----------------------------------------------------------------------------------

ensureSources();
const planned = planPieces(new Uint8Array(readFileSync(sourcePath('source-720p30-ll.mp4'))));
const initBytes = planned.pieces[0]!.bytes;
const kindOf = new Map(describeInit(initBytes).map((t) => [t.mp4TrackId, t.kind]));

type Piece = { bytes: Uint8Array; timeS: number };
type PieceInfo = { kind: string; samples: Array<{ dts: number; keyframe: boolean }> };

/** Track kind and samples of one `moof`+`mdat` piece of the source (one track per moof). */
function describePiece(bytes: Uint8Array): PieceInfo {
  let trackId = 0;
  for (const moof of readBoxes(bytes).filter((b) => b.type === 'moof')) {
    for (const traf of readBoxes(moof.body).filter((b) => b.type === 'traf')) {
      const tfhd = readBoxes(traf.body).find((b) => b.type === 'tfhd');
      if (tfhd !== undefined) trackId = new DataView(tfhd.body.buffer, tfhd.body.byteOffset).getUint32(4);
    }
  }
  return { kind: kindOf.get(trackId) ?? 'unknown', samples: readSamples(bytes) };
}

// ---- the server ----------------------------------------------------------------------------------

let stopping = false;
let crash: string | undefined;
const server: RunningServer = await startServer([
  '--test-pattern',
  'off',
  '--hls-dvr-window',
  String(DVR_WINDOW_S),
  '--log-level',
  'warn',
]);
void server.exited.then((status) => {
  if (!stopping) crash = `exited during the run: ${JSON.stringify(status)}\n${server.stdout().slice(-4000)}`;
});
const startedAt = Date.now();
const loadAtStart = loadavg()[0]!;
const elapsedMs = () => Date.now() - startedAt;
const names = Array.from({ length: BROADCASTS }, (_, i) => `soak/b${i}`);
const healthyNames = new Set(BROADCASTS >= 2 ? [names[0]!] : []);

// ---- publishers ----------------------------------------------------------------------------------

type Transport = 'http' | 'ws';

/** One publisher connection. */
type Sink = {
  readonly transport: Transport;
  write(bytes: Uint8Array): void;
  /** Ends the stream cleanly; resolves with what the server answered. */
  end(): Promise<string>;
  /** Breaks the connection off (the server sees the transport go away). */
  cut(): void;
  /** Set when the server answered or closed early: refused (409) or an error. */
  early(): { status: number; text: string } | undefined;
};

class Refused extends Error {}

/** Opens an ingest connection; throws `Refused` on a 409 and an Error on any other refusal. */
async function connect(name: string, transport: Transport): Promise<Sink> {
  const url = `${server.url}/ingest/${name}`;
  let early: { status: number; text: string } | undefined;
  if (transport === 'ws') {
    const ws = new WebSocket(url.replace('http:', 'ws:'));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        reject(status === 409 ? new Refused('409') : new Error(`WebSocket upgrade refused with ${status}`));
      });
      ws.once('error', reject);
    });
    ws.on('error', () => {});
    ws.on('message', (data) => {
      early ??= { status: 0, text: String(data) };
    });
    let closing = false;
    const closed = new Promise<string>((resolve) => {
      ws.once('close', (code, reason) => {
        if (!closing) early ??= { status: code >= 4000 ? code - 4000 : 0, text: `closed ${code} ${reason}` };
        resolve(`close ${code}`);
      });
    });
    // A refusal (409 while the old connection is still live) comes as a message and close 4409 at once.
    await Promise.race([closed, sleep(50)]);
    if (early !== undefined && (early.status === 409 || early.text.includes('ingest.already_publishing'))) {
      throw new Refused('409');
    }
    return {
      transport,
      write: (bytes) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
      },
      end: async () => {
        closing = true;
        ws.close(1000);
        return closed;
      },
      cut: () => {
        closing = true;
        ws.terminate();
      },
      early: () => early,
    };
  }
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  const abort = new AbortController();
  let cut = false;
  const response = fetch(url, streamedPostInit(body, { signal: abort.signal })).then(
    async (res) => {
      const text = await res.text();
      early = { status: res.status, text };
      return `${res.status} ${text}`;
    },
    (error: unknown) => {
      if (!cut) early = { status: 0, text: String(error) };
      return `failed: ${String(error)}`;
    },
  );
  // A refusal comes back at once; a live POST is answered only when its body ends.
  await Promise.race([response, sleep(50)]);
  if (early?.status === 409) throw new Refused('409');
  return {
    transport,
    write: (bytes) => {
      if (!cut && early === undefined) controller.enqueue(bytes);
    },
    end: async () => {
      controller.close();
      return response;
    },
    cut: () => {
      cut = true;
      abort.abort();
    },
    early: () => early,
  };
}

/** What a publisher did and saw. */
type PublisherStats = {
  name: string;
  healthy: boolean;
  connections: number;
  byTransport: Record<Transport, number>;
  cleanEnds: number;
  cutsBetween: number;
  cutsMidFragment: number;
  restartsAtZero: number;
  continues: number;
  refused409: number;
  piecesSent: number;
  errors: string[];
  /** Healthy only: decode times of every sample sent, per track kind, and the video keyframes. */
  sent: { video: number[]; audio: number[]; keyframes: number[] };
  finalAnswer: string | undefined;
};

function newStats(name: string): PublisherStats {
  return {
    name,
    healthy: healthyNames.has(name),
    connections: 0,
    byTransport: { http: 0, ws: 0 },
    cleanEnds: 0,
    cutsBetween: 0,
    cutsMidFragment: 0,
    restartsAtZero: 0,
    continues: 0,
    refused409: 0,
    piecesSent: 0,
    errors: [],
    sent: { video: [], audio: [], keyframes: [] },
    finalAnswer: undefined,
  };
}

/** Connects, retrying a 409 until the grace period would be over. */
async function connectWithRetry(stats: PublisherStats, transport: Transport): Promise<Sink | undefined> {
  const deadline = Date.now() + GRACE_MS;
  for (;;) {
    try {
      const sink = await connect(stats.name, transport);
      stats.connections += 1;
      stats.byTransport[transport] += 1;
      return sink;
    } catch (error) {
      if (error instanceof Refused && Date.now() < deadline) {
        stats.refused409 += 1;
        await sleep(100);
        continue;
      }
      stats.errors.push(`connect over ${transport} at ${(elapsedMs() / 1000).toFixed(1)} s: ${String(error)}`);
      return undefined;
    }
  }
}

/** Sends `piece` once it is due (`t0` + its media time); returns false when the connection failed. */
async function sendPaced(stats: PublisherStats, sink: Sink, piece: Piece, t0: number): Promise<boolean> {
  const wait = t0 + piece.timeS * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  const early = sink.early();
  if (early !== undefined) {
    stats.errors.push(
      `server ended the ${sink.transport} connection early: ${early.status} ${early.text.slice(0, 200)}`,
    );
    return false;
  }
  sink.write(piece.bytes);
  stats.piecesSent += 1;
  if (stats.healthy) {
    const info = describePiece(piece.bytes);
    for (const s of info.samples) {
      if (info.kind === 'video') {
        stats.sent.video.push(s.dts);
        if (s.keyframe) stats.sent.keyframes.push(s.dts);
      } else if (info.kind === 'audio') stats.sent.audio.push(s.dts);
    }
  }
  return true;
}

/** The healthy publisher: one POST for the whole run, ended cleanly. */
async function runHealthy(stats: PublisherStats, endAt: number): Promise<void> {
  const sink = await connectWithRetry(stats, 'http');
  if (sink === undefined) return;
  const t0 = Date.now();
  for (const piece of loopPieces(planned)) {
    if (piece.bytes === initBytes) {
      sink.write(piece.bytes);
      continue;
    }
    if (t0 + piece.timeS * 1000 > endAt) break;
    if (!(await sendPaced(stats, sink, piece, t0))) return;
  }
  stats.finalAnswer = await sink.end();
  if (!stats.finalAnswer.startsWith('200 ')) stats.errors.push(`the POST ended with ${stats.finalAnswer}`);
  stats.cleanEnds += 1;
}

/** A flaky publisher: connections of random length that drop and come back within the grace period. */
async function runFlaky(stats: PublisherStats, endAt: number): Promise<void> {
  let pieces = loopPieces(planned);
  pieces.next(); // the init: sent at the start of every connection
  let t0 = Date.now();
  let continuing = false;
  while (Date.now() < endAt) {
    const transport: Transport = random() < 0.5 ? 'http' : 'ws';
    const sink = await connectWithRetry(stats, transport);
    if (sink === undefined) return;
    sink.write(initBytes);
    let failed = false;
    if (continuing) {
      // The clock ran on while away: go on from the next video keyframe that is not yet due.
      for (;;) {
        const next = pieces.next().value as Piece;
        const info = describePiece(next.bytes);
        if (info.kind === 'video' && info.samples[0]?.keyframe && t0 + next.timeS * 1000 >= Date.now()) {
          failed = !(await sendPaced(stats, sink, next, t0));
          break;
        }
      }
    }
    const sessionEnd = Math.min(endAt, Date.now() + between(SESSION_MS));
    while (!failed && Date.now() < sessionEnd) {
      if (!(await sendPaced(stats, sink, pieces.next().value as Piece, t0))) {
        failed = true;
        break;
      }
    }
    if (failed || Date.now() >= endAt) {
      if (!failed) {
        const answer = await sink.end();
        if (transport === 'http' && !answer.startsWith('200 ')) stats.errors.push(`a clean end got ${answer}`);
        stats.cleanEnds += 1;
      } else sink.cut();
      return;
    }
    const how = random();
    if (how < 1 / 3) {
      const answer = await sink.end();
      if (transport === 'http' && !answer.startsWith('200 ')) stats.errors.push(`a clean end got ${answer}`);
      stats.cleanEnds += 1;
    } else if (how < 2 / 3) {
      sink.cut();
      stats.cutsBetween += 1;
    } else {
      const next = pieces.next().value as Piece;
      sink.write(next.bytes.subarray(0, 1 + Math.floor(random() * (next.bytes.byteLength - 1))));
      await sleep(20);
      sink.cut();
      stats.cutsMidFragment += 1;
    }
    await sleep(between(GAP_MS));
    continuing = random() < 0.5;
    if (continuing) stats.continues += 1;
    else {
      stats.restartsAtZero += 1;
      pieces = loopPieces(planned);
      pieces.next();
      t0 = Date.now();
    }
  }
}

// ---- the auditor (healthy broadcasts) ------------------------------------------------------------

/** What following one media playlist segment by segment found. */
type Followed = {
  playlist: string;
  segments: number;
  /** `EXT-X-GAP` segments listed (not fetched). */
  gaps: number;
  /** MSNs that left the window before the auditor fetched them (the measure would be incomplete). */
  missed: number[];
  /** How many samples of every segment had each decode time. */
  dts: Map<number, number>;
  /** First sample decode time -> MSN of each segment. */
  firstDts: Map<number, number>;
  statuses: Map<string, number>;
  ended: boolean;
};

/**
 * The segments a media playlist lists, with whether each is an `EXT-X-GAP` segment (a rung the
 * overload policy shed or paused: its URI answers 404 by design, its frames are counted as dropped).
 */
function listedSegments(text: string): Array<{ msn: number; uri: string; gap: boolean }> {
  const out: Array<{ msn: number; uri: string; gap: boolean }> = [];
  let gap = false;
  for (const line of text.split('\n')) {
    if (line === '#EXT-X-GAP') gap = true;
    const m = /^(?:audio-)?seg-(\d+)\.m4s$/.exec(line);
    if (m === null) continue;
    out.push({ msn: Number(m[1]), uri: m[0], gap });
    gap = false;
  }
  return out;
}

/** Follows a media playlist with blocking reloads (`_HLS_msn`) and downloads every segment once. */
async function follow(url: string, until: () => boolean): Promise<Followed> {
  const out: Followed = {
    playlist: url.slice(server.url.length),
    segments: 0,
    gaps: 0,
    missed: [],
    dts: new Map(),
    firstDts: new Map(),
    statuses: new Map(),
    ended: false,
  };
  const count = (key: string) => {
    // After the run the broadcast waits out its grace period before its last segment closes.
    const when = elapsedMs() > RUN_MS ? `${key} after the end` : key;
    out.statuses.set(when, (out.statuses.get(when) ?? 0) + 1);
  };
  let next: number | undefined;
  while (!until()) {
    let res: Response;
    try {
      res = await fetch(next === undefined ? url : `${url}?_HLS_msn=${next}`);
    } catch (error) {
      count(`playlist: ${String(error)}`);
      await sleep(200);
      continue;
    }
    const text = await res.text();
    if (res.status !== 200) {
      count(`playlist ${res.status}`);
      await sleep(200);
      continue;
    }
    const listed = listedSegments(text);
    // Before the first complete segment there is nothing to block on yet.
    if (next === undefined && listed.length === 0) await sleep(200);
    for (const seg of listed) {
      next ??= seg.msn;
      if (seg.msn < next) continue;
      for (let m = next; m < seg.msn; m++) out.missed.push(m);
      if (seg.gap) {
        out.gaps += 1;
        next = seg.msn + 1;
        continue;
      }
      const media = await fetch(new URL(seg.uri, url));
      if (media.status !== 200) {
        count(`segment ${media.status}`);
        out.missed.push(seg.msn);
      } else {
        const samples = readSamples(new Uint8Array(await media.arrayBuffer()));
        if (samples[0] !== undefined) out.firstDts.set(samples[0].dts, seg.msn);
        for (const s of samples) out.dts.set(s.dts, (out.dts.get(s.dts) ?? 0) + 1);
        out.segments += 1;
      }
      next = seg.msn + 1;
    }
    if (text.includes('#EXT-X-ENDLIST')) {
      out.ended = true;
      break;
    }
  }
  return out;
}

// ---- timelines (every broadcast) -----------------------------------------------------------------

/** MSN -> Discontinuity Sequence Number of every segment a media playlist lists. */
function timelineOf(text: string): Map<number, number> {
  const out = new Map<number, number>();
  let msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  let sequence = Number(/#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  for (const line of text.split('\n')) {
    if (line === '#EXT-X-DISCONTINUITY') sequence += 1;
    else if (/^(?:audio-)?seg-\d+\.m4s$/.test(line)) out.set(msn++, sequence);
  }
  return out;
}

/**
 * Per broadcast and playlist: segments compared with the source video's segment of the same MSN,
 * and those on another timeline (matching content in variants must have matching Discontinuity
 * Sequence Numbers, RFC 8216 6.2.4: players map each variant's timestamps by them).
 */
const timelines = new Map<string, { compared: Set<number>; other: Set<number> }>();

/**
 * Where a failed check can be looked into: the server's log (`server.log`) and, for the first
 * timeline mismatch of each playlist and the first target duration above the source's in each
 * broadcast, the playlists as the auditor read them then (`evidence/`).
 */
const EVIDENCE_DIR = sourcePath('soak');
/** The same, as the report names it. */
const EVIDENCE_SHOWN = `bench/out/${SMOKE ? 'smoke/' : ''}soak`;
const evidenceSaved = new Set<string>();
/** What the auditor saw first, per check: `<what> at <s> s: <file>`. */
const evidence: string[] = [];
/** Saves `body` as the evidence named `key` unless it was saved before, and lists it as `what`. */
function saveEvidenceOnce(key: string, what: string, body: string): void {
  if (evidenceSaved.has(key)) return;
  evidenceSaved.add(key);
  const file = `evidence/${key.replace(/[^A-Za-z0-9.-]+/g, '_')}.txt`;
  mkdirSync(`${EVIDENCE_DIR}/evidence`, { recursive: true });
  writeFileSync(`${EVIDENCE_DIR}/${file}`, body);
  evidence.push(`${what} at ${(elapsedMs() / 1000).toFixed(0)} s: ${EVIDENCE_SHOWN}/${file}`);
}
const targetOf = (playlist: string): number => Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(playlist)?.[1] ?? 0);

/** Reads every playlist a broadcast's master lists (and the source video's) and compares their timelines. */
async function auditTimelines(name: string): Promise<void> {
  const base = `${server.url}/hls/${name}/`;
  const text = async (path: string) => {
    const res = await fetch(new URL(path, base));
    return res.status === 200 ? res.text() : undefined;
  };
  const master = await text('master.m3u8');
  if (master === undefined) return;
  const paths = new Set([
    ...[...master.matchAll(/^#EXT-X-STREAM-INF:[^\n]*\n([^\n#]+)$/gm)].map((m) => m[1]!),
    ...[...master.matchAll(/#EXT-X-MEDIA:[^\n]*URI="([^"]+)"/g)].map((m) => m[1]!),
  ]);
  paths.delete('playlist.m3u8');
  paths.add('audio.m3u8'); // the source's own audio, whether or not the master lists it
  const sourceText = await text('playlist.m3u8');
  if (sourceText === undefined) return;
  const source = timelineOf(sourceText);
  if (targetOf(sourceText) > SOURCE_TARGET_S) {
    saveEvidenceOnce(`${name} target`, `${name} playlist.m3u8 target ${targetOf(sourceText)} s`, sourceText);
  }
  for (const path of paths) {
    const other = await text(path);
    if (other === undefined) continue;
    const key = `${name} ${path}`;
    const seen = timelines.get(key) ?? { compared: new Set(), other: new Set() };
    timelines.set(key, seen);
    const before = seen.other.size;
    for (const [msn, sequence] of timelineOf(other)) {
      const expected = source.get(msn);
      if (expected === undefined) continue;
      seen.compared.add(msn);
      if (expected !== sequence) seen.other.add(msn);
    }
    if (before === 0 && seen.other.size > 0) {
      const first = Math.min(...seen.other);
      saveEvidenceOnce(
        `${key} timeline`,
        `${key} off the source's timeline from MSN ${first}`,
        `# ${path}\n${other}\n# playlist.m3u8 (the source video)\n${sourceText}`,
      );
    }
    if (targetOf(other) > SOURCE_TARGET_S)
      saveEvidenceOnce(`${name} target`, `${key} target ${targetOf(other)} s`, other);
  }
}

// ---- players -------------------------------------------------------------------------------------

type PlayerTotals = {
  sessions: number;
  requests: number;
  bytes: number;
  parts: number;
  /** `<role> <variant> <resource> <status>` -> count, for every answer that was not a 200. */
  other: Map<string, number>;
  unexpected: string[];
};
const players: PlayerTotals = { sessions: 0, requests: 0, bytes: 0, parts: 0, other: new Map(), unexpected: [] };
/** Broadcasts whose master a player has read. */
const mastersSeen = new Set<string>();

/**
 * One player session until `leaveAt` (or the run ends), with a signal of its own: undici keeps a
 * fetch's abort listener on its signal until the request is collected, so one signal shared by
 * every request of the run gathered thousands of them (MaxListenersExceededWarning).
 */
async function playerSession(leaveAt: number, signal: AbortSignal): Promise<void> {
  const session = new AbortController();
  const stop = () => session.abort();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await playSession(leaveAt, session.signal);
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/** One player session on a random broadcast and variant until `leaveAt` or `signal`. */
async function playSession(leaveAt: number, signal: AbortSignal): Promise<void> {
  players.sessions += 1;
  const name = names[Math.floor(random() * names.length)]!;
  const role = healthyNames.has(name) ? 'healthy' : 'flaky';
  const masterUrl = `${server.url}/hls/${name}/master.m3u8`;
  let variant = 'master';
  const get = async (url: string | URL, resource: string): Promise<Response | undefined> => {
    players.requests += 1;
    try {
      const res = await fetch(url, { signal });
      if (res.status !== 200) {
        await res.arrayBuffer();
        const key = `${role} ${variant} ${resource} ${res.status}`;
        players.other.set(key, (players.other.get(key) ?? 0) + 1);
        const tolerated =
          // A player that comes before the broadcast's first media finds no master yet.
          (res.status === 404 && resource === 'master' && !mastersSeen.has(name)) ||
          ((role === 'flaky' || variant !== 'source') &&
            ((res.status === 503 && resource === 'blocking playlist') || (res.status === 404 && resource === 'part')));
        if (!tolerated) players.unexpected.push(`${key} at ${(elapsedMs() / 1000).toFixed(1)} s: ${url}`);
        return undefined;
      }
      return res;
    } catch (error) {
      if (!signal.aborted) players.unexpected.push(`${role} ${variant} ${resource}: ${String(error)} (${url})`);
      return undefined;
    }
  };
  const master = await get(masterUrl, 'master');
  if (master === undefined) return;
  mastersSeen.add(name);
  const uris = [...(await master.text()).matchAll(/^#EXT-X-STREAM-INF:[^\n]*\n([^\n#]+)$/gm)].map((m) => m[1]!);
  const uri = uris[Math.floor(random() * uris.length)];
  if (uri === undefined) return;
  variant = uri === 'playlist.m3u8' ? 'source' : uri.split('/')[0]!;
  const playlistUrl = new URL(uri, masterUrl);
  let last: { msn: number; index: number } | undefined;
  const maps = new Set<string>();
  let query = '';
  while (Date.now() < leaveAt && !signal.aborted) {
    const res = await get(`${playlistUrl}${query}`, query === '' ? 'playlist' : 'blocking playlist');
    if (res === undefined) {
      query = '';
      await sleep(500);
      continue;
    }
    const text = await res.text();
    players.bytes += text.length;
    for (const m of text.matchAll(/#EXT-X-MAP:URI="([^"]+)"/g)) {
      if (maps.has(m[1]!)) continue;
      maps.add(m[1]!);
      const init = await get(new URL(m[1]!, playlistUrl), 'init');
      if (init !== undefined) players.bytes += (await init.arrayBuffer()).byteLength;
    }
    const parts = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="((?:audio-)?part-(\d+)-(\d+)\.m4s)"/g)].map((m) => ({
      uri: m[1]!,
      msn: Number(m[2]),
      index: Number(m[3]),
    }));
    // A player joins near the live edge: the last three parts, then every new one.
    const fresh =
      last === undefined
        ? parts.slice(-3)
        : parts.filter((p) => p.msn > last!.msn || (p.msn === last!.msn && p.index > last!.index));
    for (const part of fresh) {
      const media = await get(new URL(part.uri, playlistUrl), 'part');
      if (media !== undefined) {
        players.bytes += (await media.arrayBuffer()).byteLength;
        players.parts += 1;
      }
      last = part;
    }
    if (text.includes('#EXT-X-ENDLIST')) return;
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(?:audio-)?part-(\d+)-(\d+)\.m4s"/.exec(text);
    query = hint === null ? '' : `?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}${random() < 0.2 ? '&_HLS_skip=YES' : ''}`;
    if (hint === null) await sleep(200);
  }
}

/** One player slot: sessions one after another with random pauses, until the run ends. */
async function playerSlot(endAt: number, signal: AbortSignal): Promise<void> {
  await sleep(between([1000, 5000]));
  while (Date.now() < endAt && !signal.aborted) {
    await playerSession(Math.min(endAt, Date.now() + between(PLAYER_MS)), signal);
    await sleep(between([0, 3000]));
  }
}

// ---- memory --------------------------------------------------------------------------------------

/**
 * One memory sample: RSS, the JavaScript heap in use, ArrayBuffers (mostly the media the DVR
 * windows hold) and the overload policy's actions so far, from the server's own /metrics.
 */
type MemorySample = {
  atMs: number;
  mb: number;
  heapMb: number;
  /** V8's committed heap (its pages, used or not). */
  heapTotalMb: number;
  buffersMb: number;
  /** Of the ArrayBuffers: what the DVR windows hold (`lvqr_retained_bytes`: their arrays, and the blocks behind them), and the registry's queues. */
  windowsMb: number;
  windowBlocksMb: number;
  queuesMb: number;
  actions: number;
  /** Source decoders renewed after a backlog so far (`lvqr_transcode_decoder_renewals_total`). */
  renewals: number;
  /** `lvqr_transcode_held_frames` summed over rungs: frames queued so far with at most `le` held, by `le`. */
  held: Map<string, number>;
  /** Where the resident pages are, from the server's /proc/PID/smaps (undefined off Linux). */
  maps: MapsBreakdown | undefined;
};
const rss: MemorySample[] = [];

/**
 * Resident MB by kind of mapping: glibc's main arena (`[heap]`: what the JavaScript thread and
 * V8's backing stores malloc below the mmap threshold), the codec threads' arenas (anonymous
 * read-write mappings at a 64 MiB boundary: glibc's per-thread heaps on 64-bit), the other
 * anonymous mappings (V8's heap pages, blocks at or above the mmap threshold such as decoded
 * frames, thread stacks) and file mappings (code).
 */
type MapsBreakdown = { mainArenaMb: number; threadArenasMb: number; otherAnonMb: number; filesMb: number };
const ARENA_ALIGN = 64n * 2n ** 20n;
async function mapsOf(pid: number): Promise<MapsBreakdown | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const mb: MapsBreakdown = { mainArenaMb: 0, threadArenasMb: 0, otherAnonMb: 0, filesMb: 0 };
  let kind: keyof MapsBreakdown = 'otherAnonMb';
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const [start, perms, path] = [header[1]!, header[2]!, header[3]!];
      kind =
        path === '[heap]'
          ? 'mainArenaMb'
          : path.startsWith('/')
            ? 'filesMb'
            : path === '' && perms.startsWith('rw') && BigInt(`0x${start}`) % ARENA_ALIGN === 0n
              ? 'threadArenasMb'
              : 'otherAnonMb';
      continue;
    }
    const rssKb = /^Rss:\s+(\d+) kB/.exec(line);
    if (rssKb !== null) mb[kind] += Number(rssKb[1]) / 1024;
  }
  return mb;
}
/** Samples of `name` in Prometheus exposition `text`, as `labels -> value`. */
function samplesOf(text: string, name: string): Array<{ labels: string; value: number }> {
  const out: Array<{ labels: string; value: number }> = [];
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    out.push({ labels: m[1] ?? '', value: Number(m[2]) });
  }
  return out;
}
/** The value of `key` in a sample's `{...}` labels. */
function label(labels: string, key: string): string | undefined {
  return new RegExp(`${key}="([^"]*)"`).exec(labels)?.[1];
}
const rssTimer = setInterval(() => {
  void fetch(`${server.url}/metrics`)
    .then((r) => r.text())
    .then(async (text) => {
      const atMs = elapsedMs();
      const memory = samplesOf(text, 'lvqr_process_memory_bytes');
      const mb = (kind: string) =>
        (memory.find((m) => label(m.labels, 'kind') === kind)?.value ?? Number.NaN) / 2 ** 20;
      if (!Number.isFinite(mb('rss'))) return;
      const actions = samplesOf(text, 'lvqr_transcode_overload_actions_total').reduce((n, m) => n + m.value, 0);
      const retained = samplesOf(text, 'lvqr_retained_bytes');
      const storeMb = (store: string) =>
        (retained.find((m) => label(m.labels, 'store') === store)?.value ?? Number.NaN) / 2 ** 20;
      rss.push({
        atMs,
        mb: mb('rss'),
        heapMb: mb('heap_used'),
        heapTotalMb: mb('heap_total'),
        buffersMb: mb('array_buffers'),
        windowsMb: storeMb('hls_media'),
        windowBlocksMb: storeMb('hls_buffers'),
        queuesMb: storeMb('subscriber_queues'),
        actions,
        renewals: samplesOf(text, 'lvqr_transcode_decoder_renewals_total').reduce((n, m) => n + m.value, 0),
        held: samplesOf(text, 'lvqr_transcode_held_frames_bucket').reduce((byLe, m) => {
          const le = label(m.labels, 'le') ?? '';
          return byLe.set(le, (byLe.get(le) ?? 0) + m.value);
        }, new Map<string, number>()),
        maps: await mapsOf(server.pid),
      });
    })
    .catch(() => {});
}, RSS_EVERY_MS);

// ---- the run -------------------------------------------------------------------------------------

console.log(
  `soak: ${BROADCASTS} broadcast(s) (${healthyNames.size} healthy), ${MINUTES} min, seed ${SEED}, ${PLAYERS} player slot(s), DVR window ${DVR_WINDOW_S} s, server ${server.url}`,
);
const endAt = startedAt + RUN_MS;
let auditing = true;
const audits = [...healthyNames].map((name) =>
  Promise.all(
    ['playlist.m3u8', 'audio.m3u8', ...RUNGS.map((r) => `${r}/playlist.m3u8`)].map((p) =>
      follow(`${server.url}/hls/${name}/${p}`, () => !auditing || crash !== undefined),
    ),
  ),
);
const timelineTimer = setInterval(() => {
  for (const name of names) void auditTimelines(name).catch(() => {});
}, TIMELINE_EVERY_MS);
const publisherStats = names.map(newStats);
const publishing = publisherStats.map((s) => (s.healthy ? runHealthy(s, endAt) : runFlaky(s, endAt)));
const leave = new AbortController();
const playing = Array.from({ length: PLAYERS }, () => playerSlot(endAt, leave.signal));
const progress = setInterval(() => {
  if (!process.stderr.isTTY) return;
  const mb = rss.at(-1)?.mb.toFixed(0) ?? '?';
  process.stderr.write(`\r${(elapsedMs() / 1000).toFixed(0)} / ${(RUN_MS / 1000).toFixed(0)} s  RSS ${mb} MB  `);
}, 1000);

await Promise.all(publishing);
// Every broadcast's windows as the publishers stop: fragments kept and dropped per track, and the
// target duration each playlist advertises (it never shrinks: a segment cut late raises it for good).
type TrackSummary = {
  kind: string;
  fragments: number;
  droppedFragments: number;
  retainedBytes: number;
  segments: number;
};
type BroadcastSummary = { name: string; targetDurationS: number; tracks: TrackSummary[] };
const windowsAtEnd: BroadcastSummary[] =
  crash === undefined
    ? ((await (await fetch(`${server.url}/api/v1/broadcasts`)).json()) as { broadcasts: BroadcastSummary[] }).broadcasts
    : [];
leave.abort();
await Promise.all(playing);
clearInterval(rssTimer);
clearInterval(timelineTimer);
// The broadcasts end after their grace period; then every playlist gets EXT-X-ENDLIST.
const auditDeadline = setTimeout(() => {
  auditing = false;
}, GRACE_MS + 60_000);
const audited = await Promise.all(audits);
clearTimeout(auditDeadline);
clearInterval(progress);
if (process.stderr.isTTY) process.stderr.write('\n');
const metricsText = crash === undefined ? await (await fetch(`${server.url}/metrics`)).text() : '';
stopping = true;
const exit = await server.stop();
const loadAtEnd = loadavg()[0]!;
const serverLog = server.stdout();
mkdirSync(EVIDENCE_DIR, { recursive: true });
writeFileSync(`${EVIDENCE_DIR}/server.log`, serverLog);
/** The server's warnings and errors counted by message (`<time> <level> <message> key=value ...`). */
const logCounts = new Map<string, number>();
for (const line of serverLog.split('\n')) {
  const m = /^\S+ (warn|error) +(.*?)(?= [A-Za-z_]+=|$)/.exec(line);
  if (m !== null) logCounts.set(`${m[1]} ${m[2]}`, (logCounts.get(`${m[1]} ${m[2]}`) ?? 0) + 1);
}
const logSummary = [...logCounts]
  .sort((a, b) => b[1] - a[1])
  .slice(0, 12)
  .map(([message, n]) => `${message} (${n})`);

// ---- figures -------------------------------------------------------------------------------------

/** Samples of `name` in the server's last /metrics. */
const metric = (name: string) => samplesOf(metricsText, name);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const runEndMs = RUN_MS;
const warm = rss.filter((s) => s.atMs >= WARM_AT_MS && s.atMs < WARM_AT_MS + LEVEL_SPAN_MS).map((s) => s.mb);
const tail = rss.filter((s) => s.atMs >= runEndMs - LEVEL_SPAN_MS && s.atMs <= runEndMs).map((s) => s.mb);
const rssJudged =
  !SMOKE && warm.length > 0 && tail.length > 0 && WARM_AT_MS + LEVEL_SPAN_MS <= runEndMs - LEVEL_SPAN_MS;
const warmMb = median(warm);
const endMb = median(tail);
const growth = warmMb !== undefined && endMb !== undefined ? ((endMb - warmMb) / warmMb) * 100 : Number.NaN;
const afterWarm = rss.filter((s) => s.atMs >= WARM_AT_MS).map((s) => s.mb);

type Loss = { name: string; track: string; sent: number; listed: number; lost: number; extra: number };
const losses: Loss[] = [];
const rungRows: Array<Array<string | number>> = [];
const auditProblems: string[] = [];
/** What the auditor saw of rungs that is not loss (see the rung table). */
const auditNotes: string[] = [];
audited.forEach((followed, i) => {
  const name = [...healthyNames][i]!;
  const stats = publisherStats.find((s) => s.name === name)!;
  const [video, audio, ...rungs] = followed as [Followed, Followed, ...Followed[]];
  for (const [track, sent, seen] of [
    ['video', stats.sent.video, video],
    ['audio', stats.sent.audio, audio],
  ] as const) {
    // Counted per decode time: a muxer may write two samples with one time (ffmpeg's AAC flush does).
    const sentCount = new Map<number, number>();
    for (const d of sent) sentCount.set(d, (sentCount.get(d) ?? 0) + 1);
    let lost = 0;
    let extra = 0;
    let listed = 0;
    for (const [d, n] of sentCount) lost += Math.max(0, n - (seen.dts.get(d) ?? 0));
    for (const [d, n] of seen.dts) {
      listed += n;
      extra += Math.max(0, n - (sentCount.get(d) ?? 0));
    }
    losses.push({ name, track, sent: sent.length, listed, lost, extra });
  }
  for (const f of followed) {
    // A rung's segments the auditor could not fetch (its playlist paused by the overload policy, then
    // moved on past them) are a note: what a rung dropped is shown in its table, not counted as loss.
    const rung = f !== video && f !== audio;
    if (f.missed.length > 0) {
      (rung ? auditNotes : auditProblems).push(`${f.playlist}: segments ${f.missed.join(', ')} were never fetched`);
    }
    if (!f.ended) auditProblems.push(`${f.playlist}: no EXT-X-ENDLIST within ${GRACE_MS / 1000 + 60} s of the end`);
  }
  // Per rung: the source GOPs (keyframe to keyframe) of which the rung lacks any frame.
  const sourceFrames = [...stats.sent.video].sort((a, b) => a - b);
  const keys = [...stats.sent.keyframes].sort((a, b) => a - b);
  rungs.forEach((rung, r) => {
    let gopsMissing = 0;
    let gopsPartial = 0;
    let framesMissing = 0;
    let frame = 0;
    for (let k = 0; k < keys.length; k++) {
      const from = keys[k]!;
      const to = keys[k + 1] ?? Number.POSITIVE_INFINITY;
      let total = 0;
      let have = 0;
      while (frame < sourceFrames.length && sourceFrames[frame]! < to) {
        if (sourceFrames[frame]! >= from) {
          total += 1;
          if (rung.dts.has(sourceFrames[frame]!)) have += 1;
        }
        frame += 1;
      }
      framesMissing += total - have;
      if (have === 0 && total > 0) gopsMissing += 1;
      else if (have < total) gopsPartial += 1;
    }
    // Shared boundaries: a rung segment starting at a source segment's first frame has its MSN.
    let aligned = 0;
    let misaligned = 0;
    for (const [dts, msn] of rung.firstDts) {
      const sourceMsn = video.firstDts.get(dts);
      if (sourceMsn === undefined) continue;
      if (sourceMsn === msn) aligned += 1;
      else misaligned += 1;
    }
    rungRows.push([
      `${name} ${RUNGS[r]}`,
      [...rung.dts.values()].reduce((a, n) => a + n, 0),
      sourceFrames.length,
      framesMissing,
      `${gopsMissing} / ${keys.length}`,
      gopsPartial,
      `${aligned} / ${misaligned}`,
    ]);
  });
});

const overloadRows = metric('lvqr_transcode_overload_actions_total').map((m) => [
  label(m.labels, 'rendition') ?? '',
  label(m.labels, 'action') ?? '',
  m.value,
]);
const droppedRows = metric('lvqr_transcode_dropped_fragments_total').map((m) => [
  label(m.labels, 'rendition') ?? '',
  m.value,
]);
const lagged = metric('lvqr_fragment_lagged_skips_total').reduce((a, m) => a + m.value, 0);
const restarts = metric('lvqr_transcode_restarts_total').reduce((a, m) => a + m.value, 0);
const renewals = metric('lvqr_transcode_decoder_renewals_total').reduce((a, m) => a + m.value, 0);
/** `--malloc-trim`: how many trims ran, their mean time and the bucket that holds the slowest. */
function trimsText(): string {
  const count = metric('lvqr_process_malloc_trim_seconds_count')[0]?.value ?? 0;
  if (count === 0) return 'none';
  const sum = metric('lvqr_process_malloc_trim_seconds_sum')[0]?.value ?? 0;
  const slowest = metric('lvqr_process_malloc_trim_seconds_bucket').find((m) => m.value === count);
  const le = label(slowest?.labels ?? '', 'le');
  return `${count}, ${((sum / count) * 1000).toFixed(1)} ms each on average, the slowest ${le === '+Inf' || le === undefined ? 'over 1 s' : `<= ${Number(le) * 1000} ms`}`;
}
const rejected = metric('lvqr_ingest_rejected_total').map((m) => `${label(m.labels, 'code')}: ${m.value}`);

const windowRows = windowsAtEnd.flatMap((b) =>
  b.tracks.map((t) => [
    `${b.name} ${t.kind}`,
    t.fragments,
    t.droppedFragments,
    t.segments,
    (t.retainedBytes / 2 ** 20).toFixed(1),
    b.targetDurationS,
  ]),
);
const windowTable = table(
  ['broadcast track', 'fragments kept', 'fragments dropped', 'segments listed', 'MB held', 'target duration (s)'],
  windowRows,
);
/** The soak's source cuts 2 s segments: a longer target duration means a segment was cut late. */
const longTargets = windowsAtEnd.filter((b) => b.targetDurationS > SOURCE_TARGET_S);

const auditStatuses = audited.flat().flatMap((f) => [...f.statuses].map(([key, n]) => `${f.playlist} ${key}: ${n}`));
const lostTotal = losses.reduce((a, l) => a + l.lost, 0);
const publisherErrors = publisherStats.flatMap((s) => s.errors.map((e) => `${s.name}: ${e}`));
const timelineRows = [...timelines]
  .sort(([a], [b]) => a.localeCompare(b))
  .map(([key, t]) => [key, t.compared.size, t.other.size]);
const offTimeline = timelineRows.filter((r) => (r[2] as number) > 0);
const pass = {
  crash: crash === undefined,
  timelines: timelineRows.length > 0 && offTimeline.length === 0,
  targets: windowsAtEnd.length > 0 && longTargets.length === 0,
  loss: healthyNames.size > 0 && lostTotal === 0 && auditProblems.length === 0,
  rss: rssJudged && growth <= 5,
};

const publisherTable = table(
  [
    'broadcast',
    'role',
    'connections (http / ws)',
    'clean ends',
    'cut between / mid-fragment',
    'clock restarts / continues',
    '409 retries',
    'fragments sent',
    'errors',
  ],
  publisherStats.map((s) => [
    s.name,
    s.healthy ? 'healthy' : 'flaky',
    `${s.connections} (${s.byTransport.http} / ${s.byTransport.ws})`,
    s.cleanEnds,
    `${s.cutsBetween} / ${s.cutsMidFragment}`,
    `${s.restartsAtZero} / ${s.continues}`,
    s.refused409,
    s.piecesSent,
    s.errors.length,
  ]),
);
const lossTable = table(
  ['broadcast', 'track', 'samples sent', 'in source segments', 'lost', 'not sent (extra)'],
  losses.map((l) => [l.name, l.track, l.sent, l.listed, l.lost, l.extra]),
);
const rungTable = table(
  [
    'rung',
    'frames in segments',
    'source frames',
    'frames missing',
    'GOPs missing / source GOPs',
    'GOPs partly missing',
    'segments aligned / misaligned with the source MSN',
  ],
  rungRows,
);
const playerOther = [...players.other].sort((a, b) => b[1] - a[1]);
const playerTable = table(
  ['answer (role variant resource status)', 'count'],
  playerOther.length === 0 ? [['(every answer was 200)', 0]] : playerOther,
);
const rssStepMs = RUN_MS >= 30 * 60_000 ? 5 * 60_000 : RUN_MS >= 5 * 60_000 ? 60_000 : 15_000;
const rssRows: Array<Array<string | number>> = [];
let actionsBefore = 0;
let renewalsBefore = 0;
let heldBefore = new Map<string, number>();
/**
 * The most frames a rung held in a span, as the histogram's bucket (`<= 4`, `> 64`), and how many
 * frames were queued with more than 8 held (what grows a decoder's picture pool).
 */
function heldInSpan(before: Map<string, number>, after: Map<string, number>): string {
  const delta = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const all = delta('+Inf');
  if (all === 0) return '-';
  const bounds = [...after.keys()].filter((le) => le !== '+Inf').sort((a, b) => Number(a) - Number(b));
  const most = bounds.find((le) => delta(le) === all);
  return `${most === undefined ? `> ${bounds.at(-1)}` : `<= ${most}`} / ${all - delta('8')}`;
}
for (let from = 0; from < RUN_MS; from += rssStepMs) {
  const span = rss.filter((s) => s.atMs >= from && s.atMs < from + rssStepMs);
  if (span.length === 0) continue;
  const mbs = span.map((s) => s.mb);
  const actionsAfter = span.at(-1)!.actions;
  const renewalsAfter = span.at(-1)!.renewals;
  rssRows.push([
    `${(from / 60_000).toFixed(rssStepMs >= 60_000 ? 0 : 2)}-${((from + rssStepMs) / 60_000).toFixed(rssStepMs >= 60_000 ? 0 : 2)} min`,
    `${median(mbs)!.toFixed(0)} (${Math.min(...mbs).toFixed(0)}-${Math.max(...mbs).toFixed(0)})`,
    `${median(span.map((s) => s.heapMb))!.toFixed(0)} / ${median(span.map((s) => s.heapTotalMb))!.toFixed(0)}`,
    median(span.map((s) => s.buffersMb))!.toFixed(0),
    `${median(span.map((s) => s.windowsMb))!.toFixed(0)} / ${median(span.map((s) => s.windowBlocksMb))!.toFixed(0)}`,
    median(span.map((s) => s.queuesMb))!.toFixed(0),
    median(span.map((s) => s.mb - s.heapMb - s.buffersMb))!.toFixed(0),
    ...(['mainArenaMb', 'threadArenasMb', 'otherAnonMb', 'filesMb'] as const).map((k) => {
      const mbs = span.flatMap((s) => (s.maps === undefined ? [] : [s.maps[k]]));
      return mbs.length === 0 ? '-' : median(mbs)!.toFixed(0);
    }),
    `${actionsAfter - actionsBefore} / ${renewalsAfter - renewalsBefore}`,
    heldInSpan(heldBefore, span.at(-1)!.held),
  ]);
  actionsBefore = actionsAfter;
  renewalsBefore = renewalsAfter;
  heldBefore = span.at(-1)!.held;
}
const rssTable = table(
  [
    'time',
    'RSS MB, median (min-max)',
    'JS heap used / committed MB',
    'ArrayBuffers MB (media held)',
    'of which DVR windows MB (arrays / blocks behind them)',
    'of which registry queues MB',
    'the rest MB (native: codecs, frames, allocator)',
    'main arena MB ([heap])',
    "codec threads' arenas MB",
    'other anonymous MB (V8 pages, frames, stacks)',
    'files MB (code)',
    'overload actions / decoder renewals',
    'most frames a rung held / frames queued with > 8 held',
  ],
  rssRows,
);
const verdict = (ok: boolean) => (ok ? 'pass' : 'FAIL');
const command = `npm run soak -- --broadcasts ${BROADCASTS} --minutes ${MINUTES} --seed ${SEED} --players ${PLAYERS}${DVR_WINDOW_S === 120 ? '' : ` --hls-dvr-window ${DVR_WINDOW_S}`}`;

/** The allocator settings the server inherited (glibc reads them at start; the Docker image sets one). */
function allocator(): string {
  const set = Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_') || k === 'LD_PRELOAD');
  return set.length > 0 ? set.map(([k, v]) => `\`${k}=${v}\``).join(', ') : "glibc's defaults";
}

const report = `Command: \`${command}\`. Machine: ${machine()}; load average (1 min) ${loadAtStart.toFixed(1)} at the start, ${loadAtEnd.toFixed(1)} at the end. Date: ${today()}.
Server: the CLI (\`node bin/lvqr-transcode.mjs serve\`, compiled JavaScript) in a child process, default ladder 720p/480p/240p, ${DVR_WINDOW_S} s DVR window${DVR_WINDOW_S === 120 ? '' : ' (shortened from 120 s for this run)'}, 5 s grace, allocator ${allocator()}. Source: bench/out/source-720p30-ll.mp4 looped, paced in real time. Healthy broadcast: one POST that never drops; the others drop every ${SESSION_MS[0] / 1000}-${SESSION_MS[1] / 1000} s (clean end, cut between fragments or mid-fragment, at random) and reconnect after ${GAP_MS[0] / 1000}-${GAP_MS[1] / 1000} s, restarting their clock at 0 or going on from the next keyframe. ${PLAYERS} player slots: LL-HLS sessions of ${PLAYER_MS[0] / 1000}-${PLAYER_MS[1] / 1000} s on random variants.

Publishers:

${publisherTable}

Fragments lost on the healthy broadcast (every sample the publisher sent, looked up by decode time in the source segments):

${lossTable}

Rungs of the healthy broadcast (what the overload policy dropped is shown here, not counted as loss):

${rungTable}

Every broadcast's windows as the publishers stopped (fragments dropped: before an init or a keyframe, or late for media already listed as GAP):

${windowTable}

Timelines: every ${TIMELINE_EVERY_MS / 1000} s each broadcast's master and the playlists it lists were read, and each segment compared with the source video's segment of the same MSN (matching content in variants must carry matching Discontinuity Sequence Numbers, RFC 8216 6.2.4):

${table(['broadcast playlist', 'segments compared', 'on another timeline than the source video'], timelineRows)}

Server counters: dropped rung frames ${droppedRows.map((r) => `${r[0]} ${r[1]}`).join(', ') || 'none'} (all broadcasts); overload steps ${overloadRows.map((r) => `${r[0]} ${r[1]} ${r[2]}`).join(', ') || 'none'}; encoder or decoder restarts ${restarts}; decoders renewed after a backlog ${renewals}; malloc_trim runs ${trimsText()}; lagged registry skips ${lagged}; ingest refusals ${rejected.join(', ') || 'none'}.

Players: ${players.sessions} sessions, ${players.requests} requests, ${players.parts} parts, ${(players.bytes / 2 ** 20).toFixed(0)} MiB. Answers other than 200 (503 on a blocking reload and 404 on a hinted part are expected on a flaky broadcast and on rungs, 404 on a master before the broadcast's first media anywhere; anything else is an error):

${playerTable}

Memory (\`lvqr_process_memory_bytes\` from /metrics every ${RSS_EVERY_MS / 1000} s, and where the resident pages are from the server's /proc/PID/smaps: the main arena is glibc's \`[heap]\`, which the JavaScript thread and V8's media buffers below the mmap threshold allocate from; the codec threads' arenas are glibc's per-thread heaps; medians per span):

${rssTable}

Warmed up (median of ${WARM_AT_MS / 1000}-${(WARM_AT_MS + LEVEL_SPAN_MS) / 1000} s: the DVR window is full): ${warmMb?.toFixed(0) ?? '-'} MB; end (median of the last ${LEVEL_SPAN_MS / 1000} s): ${endMb?.toFixed(0) ?? '-'} MB; max after warm-up ${afterWarm.length > 0 ? Math.max(...afterWarm).toFixed(0) : '-'} MB; growth **${Number.isFinite(growth) ? growth.toFixed(1) : '-'} %**.
Server exit: ${crash === undefined ? `no crash; stopped with ${JSON.stringify(exit)}` : `CRASH ${crash.split('\n')[0]}`}.
Auditor answers other than 200: ${auditStatuses.join(', ') || 'none'} (404 until a playlist exists; 503 when a paused rung has nothing new, or after the end while the broadcast waits out its grace period).
Errors: ${publisherErrors.length} publisher, ${players.unexpected.length} player, ${auditProblems.length} auditor.${
  [...publisherErrors, ...players.unexpected, ...auditProblems].length > 0
    ? `\n\n${[...publisherErrors, ...players.unexpected, ...auditProblems]
        .slice(0, 20)
        .map((e) => `- ${e}`)
        .join('\n')}`
    : ''
}
Rung segments the auditor could not fetch (not loss): ${auditNotes.join('; ') || 'none'}.
Server warnings and errors by message: ${logSummary.join('; ') || 'none'} (the whole log: \`${EVIDENCE_SHOWN}/server.log\`, not committed).
What the auditor saw first of each failed check (saved under \`${EVIDENCE_SHOWN}/evidence/\`): ${evidence.join('; ') || 'nothing'}.

Acceptance: no crash: **${verdict(pass.crash)}**; every variant's segments on its source's timelines: **${verdict(pass.timelines)}**${offTimeline.length > 0 ? ` (${offTimeline.map((r) => `${r[0]}: ${r[2]}`).join(', ')})` : ''}; every playlist's target duration stays at the source's ${SOURCE_TARGET_S} s: **${verdict(pass.targets)}**${longTargets.length > 0 ? ` (${longTargets.map((b) => `${b.name} ${b.targetDurationS} s`).join(', ')})` : ''}; 0 lost fragments on the healthy broadcast: **${verdict(pass.loss)}** (${lostTotal} lost); RSS within 5 % of its warmed-up level: **${rssJudged ? verdict(pass.rss) : 'not judged (run too short)'}**.`;

console.log(report);
writeSection('Soak', report);
const failed = !pass.crash || !pass.timelines || !pass.targets || !pass.loss || (rssJudged && !pass.rss);
process.exit(failed ? 1 : 0);
