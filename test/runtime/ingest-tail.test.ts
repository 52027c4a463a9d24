/**
 * The tail of an HTTP ingest body: a publisher that closes its socket right after its last chunk
 * (as ffmpeg does) gets every fragment it sent published, on Node, Bun and Deno (`Deno.serve`
 * drops request body bytes it has not handed over yet once it reads the client's FIN; the
 * connection front holds the FIN back until the request was read). The CLI server runs as a child
 * process; the judge is ffprobe's packet count of the ended source playlist.
 */

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureInfo, fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { topLevelBoxes } from '../../testkit/fmp4.ts';
import { type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { cliPublish, ffmpegPublish } from '../e2e/helpers.ts';
import { probePackets } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';

const FIXTURE = '720p30-nob-aac.mp4';
/** Small HTTP chunks: the body arrives far faster than it is parsed, as a fast publisher's does. */
const CHUNK_BYTES = 4096;

/**
 * Sends `POST <path>` with `body` as chunked transfer coding in one write (with the terminating
 * chunk when `terminate`), closes the socket at once, and resolves when the server closes it.
 */
function postAndClose(port: number, path: string, body: Uint8Array, terminate: boolean): Promise<void> {
  const parts: Buffer[] = [
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n`),
  ];
  for (let at = 0; at < body.byteLength; at += CHUNK_BYTES) {
    const chunk = body.subarray(at, at + CHUNK_BYTES);
    parts.push(Buffer.from(`${chunk.byteLength.toString(16)}\r\n`), Buffer.from(chunk), Buffer.from('\r\n'));
  }
  if (terminate) parts.push(Buffer.from('0\r\n\r\n'));
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(Buffer.concat(parts)));
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

/** Video packets of the source playlist of `broadcast`, once the broadcast has ended. */
async function endedSourcePackets(server: RunningServer, broadcast: string): Promise<number> {
  const url = `${server.url}/hls/${broadcast}/playlist.m3u8`;
  await waitFor(
    async () => {
      const res = await fetch(url);
      return res.ok && (await res.text()).includes('#EXT-X-ENDLIST');
    },
    `EXT-X-ENDLIST in ${url}`,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  return (await probePackets(url)).length;
}

const fixture = readFixture(FIXTURE);
const frameCount = fixtureInfo(FIXTURE).video.frameCount;
const boxes = topLevelBoxes(fixture);
const lastMoof = boxes.filter((b) => b.type === 'moof').at(-1)!;
const lastMdat = boxes.filter((b) => b.type === 'mdat').at(-1)!;
/** The fixture cut inside the mdat of its last fragment. */
const cutInLastBox = fixture.subarray(0, lastMdat.offset + lastMdat.size / 2);

/** Frames of the fixture's fragments before its last one. */
const framesBeforeLastFragment = (): Promise<number> =>
  probePackets(fixture.subarray(0, lastMoof.offset)).then((packets) => packets.length);

/** The CLI server on `runtime`, sources only; no grace, so a broadcast ends as soon as its publisher is gone. */
const startSourceServer = (runtime: Runtime): Promise<RunningServer> =>
  startServer(['--test-pattern', 'off', '--transcode-rendition', 'none', '--ingest-grace', '0'], { runtime });

describe.each<Runtime>(['node', 'bun', 'deno'])('the end of an ingest POST on %s', (runtime) => {
  let server: RunningServer;
  let completeFramesBeforeLast = 0;

  beforeAll(async () => {
    server = await startSourceServer(runtime);
    completeFramesBeforeLast = await framesBeforeLastFragment();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('ffmpeg publishing a clip and closing right after it: every frame is in the ended source playlist', async () => {
    // Several rounds: whether a runtime had handed the last burst over before it read the FIN is a
    // matter of timing.
    for (const round of [1, 2, 3]) {
      const publisher = ffmpegPublish(fixturePath(FIXTURE), `${server.url}/ingest/live/ffmpeg-${round}`);
      expect(await publisher.exited, publisher.output()).toBe(0);
      expect(await endedSourcePackets(server, `live/ffmpeg-${round}`), `round ${round}`).toBe(frameCount);
    }
  }, 60_000);

  it('a whole chunked body, terminating chunk included, sent at once and the socket closed: every frame is published', async () => {
    for (const round of [1, 2, 3]) {
      await postAndClose(server.port, `/ingest/live/whole-${round}`, fixture, true);
      expect(await endedSourcePackets(server, `live/whole-${round}`), `round ${round}`).toBe(frameCount);
    }
  }, 60_000);

  it('a whole body without the terminating chunk, then the socket closed: every complete fragment is published', async () => {
    await postAndClose(server.port, '/ingest/live/unterminated', fixture, false);
    expect(await endedSourcePackets(server, 'live/unterminated')).toBe(frameCount);
  }, 30_000);

  it('a body cut inside its last box: everything before that box is published, nothing of it', async () => {
    expect(completeFramesBeforeLast).toBeGreaterThan(0);
    expect(completeFramesBeforeLast).toBeLessThan(frameCount);
    await postAndClose(server.port, '/ingest/live/cut', cutInLastBox, false);
    expect(await endedSourcePackets(server, 'live/cut')).toBe(completeFramesBeforeLast);
  }, 30_000);
});

describe('the publish command on deno', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startSourceServer('deno');
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('the publish command (one POST that waits for the answer, or WebSocket) gets every frame published', async () => {
    const wsUrl = server.url.replace('http:', 'ws:');
    for (const [broadcast, url] of [
      ['live/cli-post', `${server.url}/ingest/live/cli-post`],
      ['live/cli-ws', `${wsUrl}/ingest/live/cli-ws`],
    ] as const) {
      const publisher = cliPublish(fixturePath(FIXTURE), url);
      expect(await publisher.exited, publisher.output()).toBe(0);
      expect(await endedSourcePackets(server, broadcast), broadcast).toBe(frameCount);
    }
  }, 60_000);
});
