/**
 * End to end over a real socket: WebSocket ingest (the `ws` client, binary messages in random
 * chunks), the one-publisher rule on both transports, malformed and oversized input, and the
 * `lvqr-transcode publish` command over ws:// and http:// (including a non-fragmented MP4).
 */

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBoxes } from '../../src/container/index.ts';
import { ffmpeg } from '../support/ffprobe.ts';
import { fixtureInfo, fixturePath, readFixture } from '../support/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../support/server.ts';
import { waitFor } from '../support/wait.ts';
import { cliPublish, lastPart, openWsPublisher, type Proc, parseM3u8, randomBytes, run, WsRefused } from './helpers.ts';

const RUNGS = ['720p', '480p', '240p'];

type Broadcasts = {
  broadcasts: Array<{
    name: string;
    tracks: Array<{ track: string; fragments: number; codec: string; width?: number }>;
  }>;
  publishers: Array<{ broadcast: string; state: string; fragments: number }>;
};

let server: RunningServer;
let http: string;
let ws: string;
let tmp: string;
const cleanup: Array<() => void> = [];

/** Video fragments the HLS layer took for `name`'s source track. */
async function videoFragments(name: string): Promise<number | undefined> {
  const api = await getJson<Broadcasts>(`${http}/api/v1/broadcasts`);
  return api.broadcasts.find((b) => b.name === name)?.tracks.find((t) => t.track === '0.mp4')?.fragments;
}

/** Sends `request` on a raw TCP connection and resolves with what comes back until the server closes. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(request));
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy());
  });
}

async function refusedUpgrade(url: string): Promise<WsRefused> {
  try {
    const p = await openWsPublisher(url);
    await p.close();
  } catch (error) {
    if (error instanceof WsRefused) return error;
    throw error;
  }
  throw new Error(`the upgrade of ${url} was accepted`);
}

beforeAll(async () => {
  server = await startServer(['--test-pattern', 'off']);
  http = server.url;
  ws = server.url.replace('http:', 'ws:');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'lvqr-e2e-ws-'));
});

afterAll(async () => {
  for (const c of cleanup) c();
  await server?.stop();
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
});

describe('WebSocket ingest', () => {
  it('a fixture sent as binary messages in random chunks reaches the master with every rung', async () => {
    const publisher = await openWsPublisher(`${ws}/ingest/live/ws`);
    cleanup.push(() => publisher.ws.terminate());
    await publisher.sendFile(readFixture('720p30-bframes-aac.mp4'), { seed: 7, paced: false });
    // The publisher stays connected (a rung leaves the master when its source ends).
    const text = await waitFor(
      async () => {
        const t = await getText(`${http}/hls/live/ws/master.m3u8`);
        return t !== undefined && RUNGS.every((r) => t.includes(`${r}/playlist.m3u8`)) ? t : undefined;
      },
      'the master to list every rung',
      { timeoutMs: 25_000, intervalMs: 100 },
    );
    const master = parseM3u8(text);
    expect(master.playlists.map((p: { uri: string }) => p.uri)).toEqual([
      'playlist.m3u8',
      ...RUNGS.map((r) => `${r}/playlist.m3u8`),
    ]);
    for (const p of master.playlists) expect(p.attributes.AUDIO).toBe('audio');
    expect(publisher.messages).toEqual([]);
    const closed = await publisher.close();
    expect(closed.code).toBe(1000);
  });

  it('a second publisher on a live name is refused with 409, over POST and over the WebSocket upgrade', async () => {
    const first = await openWsPublisher(`${ws}/ingest/live/busy`);
    cleanup.push(() => first.ws.terminate());
    const bytes = readFixture('360p30.mp4');
    first.send(bytes.subarray(0, 1000));

    const post = await fetch(`${http}/ingest/live/busy`, { method: 'POST', body: bytes as BodyInit });
    expect(post.status).toBe(409);
    expect(post.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await post.json()).toMatchObject({
      error: { code: 'ingest.already_publishing', message: expect.any(String) },
    });

    const refused = await refusedUpgrade(`${ws}/ingest/live/busy`);
    expect(refused.status).toBe(409);

    // The first publisher was not disturbed: it finishes its stream.
    first.send(bytes.subarray(1000));
    await waitFor(async () => (await getText(`${http}/hls/live/busy/playlist.m3u8`)) !== undefined, 'busy playlist');
    expect((await first.close()).code).toBe(1000);
  });

  it('random bytes get a 400 JSON error over POST and close code 4400 with a JSON error over WebSocket, while another broadcast publishing meanwhile loses nothing', async () => {
    const fixture = '720p30-frag-every-frame.mp4'; // one moof per video frame: fragments == frames
    const healthy = await openWsPublisher(`${ws}/ingest/live/healthy`);
    cleanup.push(() => healthy.ws.terminate());
    const sending = healthy.sendFile(readFixture(fixture), { seed: 3, paced: true });
    const playlistUrl = `${http}/hls/live/healthy/playlist.m3u8`;
    const before = await waitFor(
      async () => lastPart((await getText(playlistUrl)) ?? ''),
      'the healthy broadcast playlist',
      { timeoutMs: 10_000, intervalMs: 50 },
    );

    const bad = await fetch(`${http}/ingest/live/bad-post`, {
      method: 'POST',
      body: randomBytes(20_000, 1) as BodyInit,
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await bad.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toMatch(/^ingest\./);
    expect(body.error.message.length).toBeGreaterThan(0);

    const badWs = await openWsPublisher(`${ws}/ingest/live/bad-ws`);
    cleanup.push(() => badWs.ws.terminate());
    badWs.send(randomBytes(20_000, 2));
    const closed = await badWs.closed;
    expect(closed.code).toBe(4400);
    expect(closed.messages).toHaveLength(1);
    expect(JSON.parse(closed.messages[0]!)).toMatchObject({
      error: { code: expect.stringMatching(/^ingest\./), message: expect.any(String) },
    });

    // The server and the other broadcast carry on.
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
    await waitFor(
      async () => {
        const now = lastPart((await getText(playlistUrl)) ?? '');
        return now !== undefined && (now.msn > before.msn || (now.msn === before.msn && now.index > before.index));
      },
      'the healthy playlist to advance',
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    await sending;
    const frames = fixtureInfo(fixture).video.frameCount;
    await waitFor(async () => (await videoFragments('live/healthy')) === frames, `${frames} video fragments`, {
      timeoutMs: 5_000,
      intervalMs: 50,
    });
    expect(healthy.messages).toEqual([]);
    expect((await healthy.close()).code).toBe(1000);
    // Nothing of the refused publishers was published.
    const api = await getJson<Broadcasts>(`${http}/api/v1/broadcasts`);
    expect(api.broadcasts.map((b) => b.name)).not.toContain('live/bad-post');
    expect(api.broadcasts.map((b) => b.name)).not.toContain('live/bad-ws');
  });

  it('an upgrade with a malformed handshake is refused with 400 and does not reserve the name', async () => {
    const res = await rawRequest(
      server.port,
      'GET /ingest/live/handshake HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(res).toMatch(/^HTTP\/1\.1 400 /);
    const publisher = await openWsPublisher(`${ws}/ingest/live/handshake`);
    cleanup.push(() => publisher.ws.terminate());
    expect((await publisher.close()).code).toBe(1000);
  });

  it('a client that leaves in the middle of the handshake does not keep the name for long', async () => {
    // The request is answered by the router before the WebSocket opens; the client never reads it.
    const socket = connect({ host: '127.0.0.1', port: server.port });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      'GET /ingest/live/vanish HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    // The server took the name for the upgrade...
    await waitFor(
      async () =>
        (await getJson<Broadcasts>(`${http}/api/v1/broadcasts`)).publishers.some((p) => p.broadcast === 'live/vanish'),
      'the upgrade to take the name',
    );
    // ...and the client goes away before reading the answer.
    socket.destroy();
    const publisher = await waitFor(
      () => openWsPublisher(`${ws}/ingest/live/vanish`).catch(() => undefined),
      'the name to be free again',
      { timeoutMs: 8_000, intervalMs: 200 },
    );
    cleanup.push(() => publisher.ws.terminate());
    expect((await publisher.close()).code).toBe(1000);
  });

  it('a WebSocket message larger than the limit closes the socket with 1009 (or 4413), and the name can publish again', async () => {
    const big = await openWsPublisher(`${ws}/ingest/live/big`);
    cleanup.push(() => big.ws.terminate());
    big.send(new Uint8Array(9 * 1024 * 1024)); // the limit is 8 MiB
    const closed = await big.closed;
    expect([1009, 4413]).toContain(closed.code);
    const again = await waitFor(
      () => openWsPublisher(`${ws}/ingest/live/big`).catch(() => undefined),
      'a new publisher on the name',
    );
    again.send(readFixture('360p30.mp4'));
    await waitFor(async () => (await getText(`${http}/hls/live/big/playlist.m3u8`)) !== undefined, 'big playlist');
    expect((await again.close()).code).toBe(1000);
  });
});

describe('lvqr-transcode publish', () => {
  it('publishes a fragmented MP4 over ws:// and over http://, and remuxes a non-fragmented MP4 first', async () => {
    const fixture = '720p30-frag-every-frame.mp4';
    const plain = path.join(tmp, 'plain.mp4');
    await ffmpeg([
      '-i',
      fixturePath('720p30-nob-aac.mp4'),
      '-c',
      'copy',
      '-movflags',
      '+faststart',
      '-f',
      'mp4',
      plain,
    ]);
    const plainBoxes = readBoxes(new Uint8Array(readFileSync(plain))).map((b) => b.type);
    expect(plainBoxes).not.toContain('moof');
    expect(plainBoxes.indexOf('moov')).toBeLessThan(plainBoxes.indexOf('mdat'));

    const procs: Record<string, Proc> = {
      ws: cliPublish(fixturePath(fixture), `${ws}/ingest/live/cli-ws`),
      http: cliPublish(fixturePath(fixture), `${http}/ingest/live/cli-http`),
      plain: cliPublish(plain, `${http}/ingest/live/cli-plain`),
    };
    for (const p of Object.values(procs)) cleanup.push(() => p.kill());
    // Decode the remuxed broadcast live from its first segment until it ends (ffmpeg's HLS reader
    // needs a whole segment listed: it ignores LL-HLS parts).
    const playlist = `${http}/hls/live/cli-plain/playlist.m3u8`;
    await waitFor(async () => (await getText(playlist))?.includes('#EXTINF:'), 'a segment of the remuxed broadcast', {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    const decode = run('ffmpeg', [
      '-nostdin',
      '-v',
      'error',
      '-live_start_index',
      '0',
      '-i',
      playlist,
      '-map',
      '0:v:0',
      '-f',
      'null',
      '-progress',
      'pipe:1',
      '-',
    ]);
    cleanup.push(() => decode.kill());

    for (const [name, p] of Object.entries(procs)) expect(await p.exited, `${name}: ${p.output()}`).toBe(0);
    expect(procs['plain']!.output()).toMatch(/remuxing .* to fragmented MP4/);
    const frames = fixtureInfo(fixture).video.frameCount;
    expect(await videoFragments('live/cli-ws')).toBe(frames);
    expect(await videoFragments('live/cli-http')).toBe(frames);

    expect(await decode.exited, decode.output()).toBe(0);
    const decoded = Number([...decode.output().matchAll(/^frame=(\d+)$/gm)].at(-1)?.[1]);
    expect(decoded).toBe(fixtureInfo('720p30-nob-aac.mp4').video.frameCount);
    const api = await getJson<Broadcasts>(`${http}/api/v1/broadcasts`);
    const remuxed = api.broadcasts.find((b) => b.name === 'live/cli-plain')!;
    expect(remuxed.tracks.map((t) => t.track).sort()).toEqual(['0.mp4', '1.mp4']);
    expect(remuxed.tracks.find((t) => t.track === '0.mp4')).toMatchObject({ width: 1280 });
  }, 60_000);
});
