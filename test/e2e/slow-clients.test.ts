/**
 * Slow and greedy clients against the running service: connections whose request head never
 * completes are closed after --header-timeout, one address gets at most
 * --max-connections-per-client connections, a client that stops reading an answer is dropped after
 * --send-timeout while others are served, and none of this cuts a slow but live ingest POST or
 * keeps a stalled publisher from its idle timeout. The same on Node, Bun and Deno (the latter two
 * through their connection front).
 */

import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFixture } from '../../testkit/fixtures.ts';
import { getText, type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';
import { rawRequest } from './helpers.ts';

const FIXTURE = '720p30-nob-aac.mp4';
const HEADER_TIMEOUT_S = 2;
const SEND_TIMEOUT_S = 2;
const MAX_CONNECTIONS = 6;

/** A raw client connection and when it closed. */
type Raw = { socket: Socket; opened: number; closedAt?: number; received: string };

/** Opens a TCP connection to `port` from `localAddress` (a loopback address) and resolves once connected. */
function openRaw(port: number, localAddress = '127.0.0.1'): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const raw: Raw = { socket: connect({ host: '127.0.0.1', port, localAddress }), opened: Date.now(), received: '' };
    raw.socket.on('data', (chunk: Buffer) => {
      raw.received += chunk.toString('latin1');
    });
    raw.socket.on('close', () => {
      raw.closedAt = Date.now();
    });
    raw.socket.on('error', () => {});
    raw.socket.once('connect', () => resolve(raw));
    raw.socket.once('error', reject);
  });
}

/** Serves flags shared by every server here: no test pattern, no ladder, a broadcast that outlives its publisher. */
function serveArgs(): string[] {
  return [
    '--test-pattern',
    'off',
    '--transcode-rendition',
    'none',
    '--ingest-grace',
    '600',
    '--ingest-idle-timeout',
    '3',
    '--header-timeout',
    String(HEADER_TIMEOUT_S),
    '--send-timeout',
    String(SEND_TIMEOUT_S),
    '--max-connections-per-client',
    String(MAX_CONNECTIONS),
  ];
}

/** Publishes the fixture as `name` and resolves with the URL of its first segment. */
async function publishAndFindSegment(base: string, name: string): Promise<string> {
  const res = await fetch(`${base}/ingest/${name}`, { method: 'POST', body: readFixture(FIXTURE) as BodyInit });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  const playlistUrl = `${base}/hls/${name}/playlist.m3u8`;
  const playlist = await waitFor(async () => getText(playlistUrl), `the playlist of ${name}`, {
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  const segment = playlist.split('\n').find((line) => line !== '' && !line.startsWith('#'));
  expect(segment).toBeDefined();
  return new URL(segment!, playlistUrl).toString();
}

/**
 * A client pipelines many requests for a segment and reads nothing: it is dropped after the send
 * timeout, and another client gets the whole segment meanwhile.
 */
async function nonReadingClientIsDropped(server: RunningServer, localAddress: string): Promise<void> {
  const segmentUrl = await publishAndFindSegment(server.url, 'live/noread');
  const whole = new Uint8Array(await (await fetch(segmentUrl)).arrayBuffer());
  expect(whole.byteLength).toBeGreaterThan(64 * 1024);
  const path = new URL(segmentUrl).pathname;
  const raw = await openRaw(server.port, localAddress);
  raw.socket.pause();
  // Far more than the socket buffers of both ends hold.
  const copies = Math.ceil((48 * 1024 * 1024) / whole.byteLength);
  raw.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(copies));
  const started = Date.now();
  // Another client is served in full while the first one stalls.
  const other = new Uint8Array(await (await fetch(segmentUrl)).arrayBuffer());
  expect(other.byteLength).toBe(whole.byteLength);
  expect(raw.socket.destroyed).toBe(false);
  // The client reads nothing, so it sees the server's reset only when it writes: more requests,
  // which the server leaves unread behind the stalled answer.
  await waitFor(
    () => {
      if (!raw.socket.destroyed) raw.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      return raw.socket.destroyed;
    },
    'the non-reading client to be dropped',
    { timeoutMs: (SEND_TIMEOUT_S + 8) * 1000, intervalMs: 100 },
  );
  expect(Date.now() - started).toBeGreaterThanOrEqual(SEND_TIMEOUT_S * 1000 - 500);
  // The server is still fine.
  expect((await fetch(segmentUrl)).status).toBe(200);
}

describe.each<Runtime>(['node', 'bun', 'deno'])('slow clients (%s)', (runtime) => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer(serveArgs(), { runtime });
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('closes connections whose request head is not complete after --header-timeout: silent, one line, a line every 500 ms, the second head on a keep-alive connection', async () => {
    const silent = await openRaw(server.port);
    const partial = await openRaw(server.port);
    partial.socket.write('GET /healthz HTTP/1.1\r\n');
    const drip = await openRaw(server.port);
    drip.socket.write('GET /healthz HTTP/1.1\r\n');
    let line = 0;
    const dripping = setInterval(() => {
      if (!drip.socket.destroyed) drip.socket.write(`X-Slow-${line++}: a\r\n`);
    }, 500);
    // On a keep-alive connection, a complete request (a body included) is answered; the next head
    // then has its own deadline.
    const second = await openRaw(server.port);
    second.socket.write('POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
    await waitFor(() => /^HTTP\/1\.1 \d{3} /.test(second.received), 'the answer to the first request', {
      timeoutMs: 3000,
      intervalMs: 20,
    });
    const secondHeadAt = Date.now();
    second.socket.write('GET /healthz HTTP/1.1\r\n');
    try {
      // A complete request is answered meanwhile.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      await waitFor(
        () => [silent, partial, drip, second].every((raw) => raw.closedAt !== undefined),
        'all four closed',
        { timeoutMs: (HEADER_TIMEOUT_S + 4) * 1000, intervalMs: 50 },
      );
    } finally {
      clearInterval(dripping);
    }
    for (const raw of [silent, partial, drip]) {
      expect(raw.closedAt! - raw.opened).toBeGreaterThanOrEqual(HEADER_TIMEOUT_S * 1000 - 200);
      expect(raw.received).toMatch(/^HTTP\/1\.1 408 /);
    }
    expect(second.closedAt! - secondHeadAt).toBeGreaterThanOrEqual(HEADER_TIMEOUT_S * 1000 - 200);
    expect(second.received).toMatch(/HTTP\/1\.1 408 /);
  });

  it('one client address gets at most --max-connections-per-client connections; others are served, and a closed one frees a place', async () => {
    const address = '127.0.0.2';
    const held: Raw[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const raw = await openRaw(server.port, address);
      // A complete request: the connection then idles under keep-alive, not the head deadline.
      raw.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      held.push(raw);
    }
    await waitFor(() => held.every((raw) => /^HTTP\/1\.1 200 /.test(raw.received)), 'answers on the held connections', {
      timeoutMs: 3000,
      intervalMs: 20,
    });
    const extra = await Promise.all([0, 1, 2].map(() => openRaw(server.port, address)));
    await waitFor(() => extra.every((raw) => raw.closedAt !== undefined), 'the connections over the cap closed', {
      timeoutMs: 1500,
      intervalMs: 20,
    });
    for (const raw of extra) expect(raw.received).toBe('');
    expect(held.every((raw) => raw.closedAt === undefined)).toBe(true);
    // Another address is not affected.
    expect(
      (await rawRequest(server.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status,
    ).toBe(200);
    // One of the held connections leaves: a new one from the same address is served.
    held[0]!.socket.destroy();
    await waitFor(
      async () => {
        const next = await openRaw(server.port, address);
        next.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        await waitFor(() => next.closedAt !== undefined, 'the probe to finish', { timeoutMs: 2000, intervalMs: 10 });
        return /^HTTP\/1\.1 200 /.test(next.received);
      },
      'a place for the address once one connection closed',
      { timeoutMs: 3000, intervalMs: 50 },
    );
    for (const raw of held) raw.socket.destroy();
  });

  it('a slow but live chunked ingest POST outlasts the head deadline and is accepted', async () => {
    const bytes = readFixture(FIXTURE);
    const chunks = 8;
    const size = Math.ceil(bytes.byteLength / chunks);
    const started = Date.now();
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${server.url}/ingest/live/slow-post`,
        { method: 'POST', headers: { 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      let sent = 0;
      const next = () => {
        req.write(bytes.subarray(sent * size, (sent + 1) * size));
        sent += 1;
        if (sent < chunks) setTimeout(next, 700);
        else req.end();
      };
      next();
    });
    expect(status).toBe(200);
    expect(Date.now() - started).toBeGreaterThan(HEADER_TIMEOUT_S * 2000);
  });

  it('a publisher that stalls mid-body still meets the ingest idle timeout (408 ingest.idle_timeout)', async () => {
    const head = Buffer.from(
      'POST /ingest/live/stalled HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
      'latin1',
    );
    const first = readFixture(FIXTURE).subarray(0, 4096);
    const chunk = Buffer.concat([Buffer.from(`${first.byteLength.toString(16)}\r\n`), first, Buffer.from('\r\n')]);
    const started = Date.now();
    const response = await rawRequest(server.port, Buffer.concat([head, chunk]), 10_000);
    expect(response.status).toBe(408);
    expect(response.body).toContain('ingest.idle_timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
  });

  it('a client that stops reading is dropped after --send-timeout while another is served', async () => {
    await nonReadingClientIsDropped(server, '127.0.0.3');
  }, 30_000);
});
