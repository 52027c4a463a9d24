/**
 * The harness of the bad-input matrix (bad-input.test.ts, stream-faults.test.ts): one real server
 * per file (the CLI on loopback, Node) with short grace and idle timeouts, and a healthy broadcast
 * publishing across every case. After each case the server must answer /healthz and the healthy
 * broadcast must hold every video fragment sent so far; `expectCleanAfterMatrix` (the last test of a
 * file) checks that nothing of the refused publishers remains and the heap is back near its
 * warmed-up baseline.
 */

import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { streamedPostInit } from '../../src/runtime/publish.ts';
import { fixtureInfo, readFixture } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';
import {
  type BroadcastsApi,
  type LoopingPublisher,
  metricSum,
  openWsPublisher,
  randomBytes,
  startLoopingPublisher,
  trackSummary,
  type WsOutcome,
  type WsPublisher,
} from './helpers.ts';

/** The broadcast publishing across every case; it must lose no fragment. */
export const HEALTHY = 'live/healthy';
/** One moof per video frame, so the healthy broadcast's fragment count is its frame count. */
const HEALTHY_FIXTURE = '720p30-frag-every-frame.mp4';
/** How far above the warmed-up baseline the heap may stay once the cases are over. */
export const HEAP_TOLERANCE_BYTES = 32 * 1024 * 1024;
/** Grace period and idle timeout the server runs with, seconds. */
export const GRACE_S = 1;
export const IDLE_S = 2;

/** `GET /healthz` with the memory fields. */
export type Health = { status: string; rssBytes: number; heapUsedBytes: number };

/** The running matrix: the server, its URLs and helpers bound to it. */
export type Matrix = {
  readonly server: RunningServer;
  readonly http: string;
  readonly wsBase: string;
  readonly healthy: LoopingPublisher;
  /** Broadcast names the cases published to: at the end none may still publish or be live. */
  readonly caseNames: Set<string>;
  /** Run at the end of the current test (sockets to drop, publishers to stop). */
  readonly cleanup: Array<() => void>;
};

let current: Matrix | undefined;
let baseline: Health | undefined;

/** The matrix of the current file (after `setupMatrix`'s beforeAll). */
export function matrix(): Matrix {
  if (current === undefined) throw new Error('setupMatrix() has not started the server');
  return current;
}

/** `GET /healthz`. */
export function health(): Promise<Health> {
  return getJson<Health>(`${matrix().http}/healthz`);
}

/**
 * Registers the hooks of a matrix file: starts the server (with `serveArgs` added) and the healthy
 * broadcast, warms up (its rung is listed, one refused publisher per transport), takes the memory
 * baseline; checks the healthy broadcast after every test; stops everything at the end.
 */
export function setupMatrix(serveArgs: readonly string[] = []): void {
  beforeAll(async () => {
    const server = await startServer([
      '--test-pattern',
      'off',
      '--transcode-rendition',
      '240p',
      '--ingest-grace',
      String(GRACE_S),
      '--ingest-idle-timeout',
      String(IDLE_S),
      '--hls-dvr-window',
      '12',
      ...serveArgs,
    ]);
    const http = server.url;
    const wsBase = http.replace('http:', 'ws:');
    const healthy = await startLoopingPublisher(`${wsBase}/ingest/${HEALTHY}`, readFixture(HEALTHY_FIXTURE));
    current = { server, http, wsBase, healthy, caseNames: new Set(), cleanup: [] };
    await waitFor(
      async () => (await getText(`${http}/hls/${HEALTHY}/master.m3u8`))?.includes('240p/playlist.m3u8'),
      'the healthy broadcast rung in the master playlist',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await post('warmup/post', randomBytes(4096, 99));
    await wsPublish('warmup/ws', randomBytes(4096, 98));
    current.caseNames.add('warmup/post').add('warmup/ws');
    baseline = await health();
  }, 60_000);

  afterEach(async () => {
    for (const c of matrix().cleanup.splice(0)) c();
    await expectHealthyBroadcastIntact();
  });

  afterAll(async () => {
    const m = current;
    current = undefined;
    if (m === undefined) return;
    for (const c of m.cleanup.splice(0)) c();
    await m.healthy.stop();
    m.healthy.publisher.ws.terminate();
    await m.server.stop();
  });
}

/** The server is up and the healthy broadcast holds exactly the video fragments sent so far, none dropped. */
export async function expectHealthyBroadcastIntact(): Promise<void> {
  const { http, healthy } = matrix();
  expect((await health()).status).toBe('ok');
  expect(healthy.publisher.ws.readyState).toBe(WebSocket.OPEN);
  expect(healthy.publisher.messages).toEqual([]);
  const track = await waitFor(
    async () => {
      const sent = healthy.videoSent;
      const t = await trackSummary(http, HEALTHY);
      return t !== undefined && t.fragments === sent && healthy.videoSent === sent ? t : undefined;
    },
    'the healthy broadcast to hold every video fragment sent so far',
    { timeoutMs: 5_000, intervalMs: 10 },
  );
  expect(track.droppedFragments).toBe(0);
  expect(track.lagGaps).toBe(0);
}

/**
 * The end of a matrix file: no publisher of the cases publishes or waits in its grace period and
 * none of their broadcasts is live; the heap returns within `HEAP_TOLERANCE_BYTES` of the baseline; the
 * healthy broadcast, stopped, holds every video fragment it sent.
 */
export async function expectCleanAfterMatrix(): Promise<void> {
  const { http, healthy, caseNames } = matrix();
  await waitFor(
    async () => {
      const api = await getJson<BroadcastsApi>(`${http}/api/v1/broadcasts`);
      const publishing = api.publishers.filter((p) => caseNames.has(p.broadcast));
      const live = api.broadcasts.filter((b) => caseNames.has(b.name) && !b.ended);
      return publishing.length === 0 && live.length === 0;
    },
    'every publisher of the cases to be gone',
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  const metrics = (await getText(`${http}/metrics`)) ?? '';
  expect(metricSum(metrics, 'lvqr_process_memory_bytes')).toBeGreaterThan(0);
  expect(metrics).toMatch(/^lvqr_process_memory_bytes\{kind="heap_used"\} \d+/m);
  expect(metrics).toMatch(/^lvqr_process_memory_bytes\{kind="heap_total"\} \d+/m);
  const base = baseline!.heapUsedBytes;
  const limit = base + HEAP_TOLERANCE_BYTES;
  let last = 0;
  await waitFor(
    async () => {
      last = (await health()).heapUsedBytes;
      return last <= limit;
    },
    `heap used within ${HEAP_TOLERANCE_BYTES >> 20} MiB of its ${mib(base)} MiB baseline`,
    { timeoutMs: 30_000, intervalMs: 250 },
  ).catch((error: unknown) => {
    throw new Error(`${String(error)} (last ${mib(last)} MiB)`);
  });
  await healthy.stop();
  const sent = healthy.videoSent;
  // It went round its clip more than once: the loops joined into one timeline.
  expect(sent).toBeGreaterThan(fixtureInfo(HEALTHY_FIXTURE).video.frameCount);
  await waitFor(async () => (await trackSummary(http, HEALTHY))?.fragments === sent, `${sent} healthy fragments`);
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

/** POSTs `body` to `/ingest/<name>` (a stream is sent as it comes). */
export function post(name: string, body: Uint8Array | ReadableStream<Uint8Array>): Promise<Response> {
  const url = `${matrix().http}/ingest/${name}`;
  // A stream goes as the publish command sends it (not kept whole for a redirect).
  if (body instanceof ReadableStream) return fetch(url, streamedPostInit(body));
  return fetch(url, { method: 'POST', body: body as BodyInit });
}

/** Expects `res` to be the JSON error `{error: {code, message}}` with `status`. */
export async function expectJsonError(res: Response, status: number, code: string): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(JSON.parse(text)).toEqual({ error: { code, message: expect.stringMatching(/\S/) } });
}

/** Expects the server to have closed a WebSocket with 4000 + `status` after one JSON error message. */
export function expectWsClosedWith(outcome: WsOutcome, status: number, code: string): void {
  expect(outcome.code, JSON.stringify(outcome)).toBe(4000 + status);
  expect(outcome.reason).toBe(code);
  expect(outcome.messages.map((m) => JSON.parse(m))).toEqual([
    { error: { code, message: expect.stringMatching(/\S/) } },
  ]);
}

/** Opens a WebSocket publisher on `/ingest/<name>`, terminated at the end of the test. */
export async function wsPublisher(name: string): Promise<WsPublisher> {
  const publisher = await openWsPublisher(`${matrix().wsBase}/ingest/${name}`);
  matrix().cleanup.push(() => publisher.ws.terminate());
  return publisher;
}

/** Publishes `bytes` over WebSocket in one message and waits for the server to close the socket. */
export async function wsPublish(name: string, bytes: Uint8Array): Promise<WsOutcome> {
  const publisher = await wsPublisher(name);
  publisher.send(bytes);
  return publisher.closed;
}

/** `lvqr_ingest_rejected_total{code}` now. */
export async function rejectedCount(code: string): Promise<number> {
  const text = (await getText(`${matrix().http}/metrics`)) ?? '';
  const line = text.split('\n').find((l) => l.startsWith(`lvqr_ingest_rejected_total{code="${code}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

/** The publishers in `/api/v1/broadcasts` by name. */
export async function publishers(): Promise<Map<string, BroadcastsApi['publishers'][number]>> {
  const api = await getJson<BroadcastsApi>(`${matrix().http}/api/v1/broadcasts`);
  return new Map(api.publishers.map((p) => [p.broadcast, p]));
}
