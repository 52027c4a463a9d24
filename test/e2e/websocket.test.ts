/**
 * End to end over a real socket: WebSocket ingest (the `ws` client, binary messages in random
 * chunks), handshakes that fail or are abandoned, an oversized message, and the
 * `lvqr-transcode publish` command over ws:// and http:// (including a non-fragmented MP4).
 * Malformed input and competing publishers are in the bad-input matrix (bad-input.test.ts,
 * stream-faults.test.ts).
 */

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBoxes } from '../../src/container/index.ts';
import { fixtureInfo, fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { ffmpeg } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';
import {
  type BroadcastsApi,
  cliPublish,
  decodedFrames,
  ffmpegDecodeLive,
  openWsPublisher,
  type Proc,
  parseM3u8,
  rawRequest,
} from './helpers.ts';

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
        const listed = t !== undefined && RUNGS.every((r) => t.includes(`${r}/playlist.m3u8`));
        return listed && t.split('AUDIO="audio-opus-64k"').length === RUNGS.length + 1 ? t : undefined;
      },
      'the master to list every rung, with AAC and with Opus',
      { timeoutMs: 25_000, intervalMs: 100 },
    );
    const master = parseM3u8(text);
    // The 720p rung (below the 1280x720 source's bitrate) takes the source variant's place.
    // Each video variant is listed with AAC, then once more with the audio ladder's Opus.
    const uris = RUNGS.map((r) => `${r}/playlist.m3u8`);
    expect(master.playlists.map((p: { uri: string }) => p.uri)).toEqual([...uris, ...uris]);
    for (const p of master.playlists) expect(master.mediaGroups.AUDIO[p.attributes.AUDIO], p.uri).toBeDefined();
    expect(publisher.messages).toEqual([]);
    const closed = await publisher.close();
    expect(closed.code).toBe(1000);
  });

  it('an upgrade with a malformed handshake is refused with 400 and does not reserve the name', async () => {
    const res = await rawRequest(
      server.port,
      'GET /ingest/live/handshake HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(res.status).toBe(400);
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
    await waitFor(
      async () =>
        !(await getJson<Broadcasts>(`${http}/api/v1/broadcasts`)).publishers.some(
          (p) => p.broadcast === 'live/vanish' && p.state === 'live',
        ),
      'the name to be free again',
      { timeoutMs: 8_000, intervalMs: 200 },
    );
    const publisher = await openWsPublisher(`${ws}/ingest/live/vanish`);
    cleanup.push(() => publisher.ws.terminate());
    expect((await publisher.close()).code).toBe(1000);
  });

  it('a WebSocket message larger than the limit closes the socket with 1009 (or 4413), and the name can publish again', async () => {
    const big = await openWsPublisher(`${ws}/ingest/live/big`);
    cleanup.push(() => big.ws.terminate());
    big.send(new Uint8Array(9 * 1024 * 1024)); // the limit is 8 MiB
    const closed = await big.closed;
    expect([1009, 4413]).toContain(closed.code);
    // Once the server has let the old socket go (the name waits in its grace period), a new
    // publisher continues it; before that it would be refused with 4409.
    await waitFor(
      async () =>
        !(await getJson<BroadcastsApi>(`${http}/api/v1/broadcasts`)).publishers.some(
          (p) => p.broadcast === 'live/big' && p.state === 'live',
        ),
      'the old publisher to be gone',
    );
    const again = await openWsPublisher(`${ws}/ingest/live/big`);
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
    const decode = ffmpegDecodeLive(playlist);
    cleanup.push(() => decode.kill());

    for (const [name, p] of Object.entries(procs)) expect(await p.exited, `${name}: ${p.output()}`).toBe(0);
    expect(procs['plain']!.output()).toMatch(/remuxing .* to fragmented MP4/);
    const frames = fixtureInfo(fixture).video.frameCount;
    // The publisher exits once its last bytes are written; the server may still be reading them
    // (74 of 90 counted at that moment once, under the full suite's load): every frame must arrive.
    for (const name of ['live/cli-ws', 'live/cli-http']) {
      await waitFor(async () => (await videoFragments(name)) === frames, `${name}: all ${frames} frames ingested`, {
        timeoutMs: 10_000,
        intervalMs: 50,
      }).catch(async (error) => {
        throw new Error(`${String(error)} (${await videoFragments(name)} counted)`);
      });
    }

    expect(await decode.exited, decode.output()).toBe(0);
    const decoded = decodedFrames(decode.output());
    expect(decoded).toBe(fixtureInfo('720p30-nob-aac.mp4').video.frameCount);
    const api = await getJson<Broadcasts>(`${http}/api/v1/broadcasts`);
    const remuxed = api.broadcasts.find((b) => b.name === 'live/cli-plain')!;
    expect(remuxed.tracks.map((t) => t.track).sort()).toEqual(['0.mp4', '1.mp4']);
    expect(remuxed.tracks.find((t) => t.track === '0.mp4')).toMatchObject({ width: 1280 });
  }, 60_000);
});
