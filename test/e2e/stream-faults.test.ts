/**
 * The bad-input matrix, part 2, against the real service (see matrix.ts): streams that are valid
 * but unusual (zero-duration samples, a codec the ladder cannot decode, a resolution change on one
 * connection) and publishers that misbehave (vanish mid-fragment, send nothing, compete for a
 * name). Each case is checked over POST and over WebSocket where both apply, while a healthy
 * broadcast publishing meanwhile loses nothing; at the end nothing of those publishers is still
 * live and the heap is back near its baseline.
 */

import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/container/boxes.ts';
import { Fmp4StreamParser, readSamples } from '../../src/container/index.ts';
import { fixtureInfo, readFixture } from '../../testkit/fixtures.ts';
import { getJson, getText } from '../../testkit/server.ts';
import { FREE_BOX, sampleDurationsOf, splitFmp4, trackIdsOf, withZeroDurations } from '../support/mp4-edit.ts';
import { waitFor } from '../support/wait.ts';
import { parseM3u8, rawRequest, refusedUpgrade, trackSummary, type WsPublisher } from './helpers.ts';
import {
  expectCleanAfterMatrix,
  expectJsonError,
  expectWsClosedWith,
  GRACE_S,
  HEALTHY,
  IDLE_S,
  matrix,
  post,
  publishers,
  rejectedCount,
  setupMatrix,
  wsPublisher,
} from './matrix.ts';

setupMatrix();

/** One source of `GET /api/v1/transcode`. */
type TranscodeSource = {
  broadcast: string;
  codec: string;
  width?: number;
  height?: number;
  decoderState: string;
  reason?: string;
  plan?: Array<{ rendition: string; width: number; height: number }>;
  rungs: unknown[];
};

async function transcodeSource(name: string): Promise<TranscodeSource | undefined> {
  const api = await getJson<{ sources: TranscodeSource[] }>(`${matrix().http}/api/v1/transcode`);
  return api.sources.find((s) => s.broadcast === name);
}

/** How often a held-open publisher sends an 8-byte `free` box so the idle timeout leaves it alone. */
const KEEPALIVE_MS = 400;

/** A POST body that sends `first`, then keeps the request open (with `free` boxes) until released. */
function heldBody(first: Uint8Array): { body: ReadableStream<Uint8Array>; release(): void } {
  let timer: ReturnType<typeof setInterval> | undefined;
  let release = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(first);
      timer = setInterval(() => controller.enqueue(FREE_BOX), KEEPALIVE_MS);
      release = () => {
        clearInterval(timer);
        controller.close();
      };
    },
    cancel() {
      clearInterval(timer);
    },
  });
  matrix().cleanup.push(() => clearInterval(timer));
  return { body, release: () => release() };
}

/** Keeps a WebSocket publisher active with `free` boxes; returns the function that stops it. */
function keepAlive(publisher: WsPublisher): () => void {
  const timer = setInterval(() => publisher.send(FREE_BOX), KEEPALIVE_MS);
  matrix().cleanup.push(() => clearInterval(timer));
  return () => clearInterval(timer);
}

/** The media playlist of `name` (the video track), parsed, once `ready` says it is. */
async function playlist(
  name: string,
  ready: (text: string) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<{ text: string; manifest: ReturnType<typeof parseM3u8> }> {
  const text = await waitFor(
    async () => {
      const t = await getText(`${matrix().http}/hls/${name}/playlist.m3u8`);
      return t !== undefined && ready(t) ? t : undefined;
    },
    what,
    { timeoutMs, intervalMs: 50 },
  );
  return { text, manifest: parseM3u8(text) };
}

/** Media sequence numbers of the segments a playlist lists (`seg-<msn>.m4s`). */
function segmentNumbers(text: string): number[] {
  return [...text.matchAll(/^seg-(\d+)\.m4s$/gm)].map((m) => Number(m[1]));
}

/** Video sample durations of an fMP4 file, as its own boxes state them. */
function videoDurations(bytes: Uint8Array): number[] {
  const parser = new Fmp4StreamParser();
  const out: number[] = [];
  for (const e of [...parser.push(bytes), ...parser.end()]) {
    if (e.type === 'fragment' && e.fragment.trackId === '0.mp4') out.push(...e.samples.map((s) => s.duration));
  }
  return out;
}

describe('unusual but valid streams', () => {
  it('zero-duration video samples are accepted over POST and WebSocket: each gets the time until the next decode time, so HLS serves the durations of the original', async () => {
    const original = readFixture('720p30-frag-every-frame.mp4');
    const pieces = splitFmp4(original);
    const zeroedPieces = pieces.fragments.map((f) => (trackIdsOf(f).includes(1) ? withZeroDurations(f, 1) : f));
    expect(zeroedPieces.flatMap((f) => sampleDurationsOf(f, 1)).every((d) => d === 0)).toBe(true);
    const zeroed = concatBytes([pieces.init, ...zeroedPieces]);
    const frames = fixtureInfo('720p30-frag-every-frame.mp4').video.frameCount;
    matrix().caseNames.add('zero/post').add('zero/ws');

    const ws = await wsPublisher('zero/ws');
    ws.send(zeroed);
    const res = await post('zero/post', zeroed);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ broadcast: 'zero/post', fragments: pieces.fragments.length });
    expect((await ws.close()).code).toBe(1000);

    const expected = videoDurations(original);
    for (const name of ['zero/post', 'zero/ws']) {
      // Ended after the grace period: every segment is listed.
      const { text } = await playlist(name, (t) => t.includes('#EXT-X-ENDLIST'), `${name} to end`);
      const track = (await trackSummary(matrix().http, name))!;
      expect(track.fragments).toBe(frames);
      expect(track.frameRate).toBe(30);
      const served: number[] = [];
      for (const msn of segmentNumbers(text)) {
        const seg = new Uint8Array(await (await fetch(`${matrix().http}/hls/${name}/seg-${msn}.m4s`)).arrayBuffer());
        served.push(...readSamples(seg).map((s) => s.duration));
      }
      expect(served, name).toEqual(expected);
      for (const m of text.matchAll(/#EXTINF:([\d.]+)/g)) expect(Number(m[1])).toBeGreaterThan(0.5);
    }
  });

  it('an HEVC source over POST and a VP9 source over WebSocket play as passthrough, and /api/v1/transcode says why they have no rungs', async () => {
    const { http } = matrix();
    matrix().caseNames.add('codec/hevc').add('codec/vp9');
    const hevc = heldBody(readFixture('hevc-360p30.mp4'));
    const posting = post('codec/hevc', hevc.body);
    const vp9 = await wsPublisher('codec/vp9');
    vp9.send(readFixture('vp9-opus-240p.mp4'));
    const stopVp9 = keepAlive(vp9);

    for (const [name, codec] of [
      ['codec/hevc', /^hvc1\./],
      ['codec/vp9', /^vp09/],
    ] as const) {
      const { text } = await playlist(name, (t) => t.includes('#EXT-X-PART:'), `a part of ${name}`);
      const part = /#EXT-X-PART:[^\n]*URI="([^"]+)"/.exec(text)![1]!;
      for (const file of ['init.mp4', part]) {
        const media = await fetch(`${http}/hls/${name}/${file}`);
        expect(media.status, `${name}/${file}`).toBe(200);
        expect((await media.arrayBuffer()).byteLength).toBeGreaterThan(100);
      }
      expect((await trackSummary(http, name))?.codec).toMatch(codec);
      const source = await waitFor(() => transcodeSource(name), `${name} in /api/v1/transcode`);
      expect(source.decoderState).toBe('unsupported');
      expect(source.reason).toMatch(/cannot be decoded here \(H\.264 only\)/);
      expect(source.rungs).toEqual([]);
    }

    hevc.release();
    const res = await posting;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ broadcast: 'codec/hevc', fragments: 2 });
    stopVp9();
    expect((await vp9.close()).code).toBe(1000);
    // Once ended, the whole segment is served too, and the master lists the source alone (it has
    // no complete segment before: a master answers 404 until then).
    for (const name of ['codec/hevc', 'codec/vp9']) {
      await playlist(name, (t) => t.includes('#EXT-X-ENDLIST'), `${name} to end`, 20_000);
      const master = (await getText(`${http}/hls/${name}/master.m3u8`))!;
      // (Listed once more with the audio ladder's Opus where the source's audio is AAC.)
      const uris = parseM3u8(master).playlists.map((p: { uri: string }) => p.uri);
      expect([...new Set(uris)]).toEqual(['playlist.m3u8']);
    }
    expect((await fetch(`${http}/hls/codec/hevc/seg-0.m4s`)).status).toBe(200);
  });

  it('a new init with another resolution on the same connection re-plans the ladder; the playlists get a discontinuity and media sequence numbers keep rising', async () => {
    const { http } = matrix();
    const landscape = readFixture('360p30.mp4');
    const portrait = readFixture('portrait-720x1280.mp4');
    matrix().caseNames.add('resize/ws').add('resize/post');
    // Over POST, both inits in one body.
    const posted = post('resize/post', concatBytes([landscape, portrait]));

    const ws = await wsPublisher('resize/ws');
    const stop = keepAlive(ws);
    ws.send(landscape);
    const first = await waitFor(async () => {
      const s = await transcodeSource('resize/ws');
      return s?.width === 640 ? s : undefined;
    }, 'the 640x360 plan');
    expect(first.plan).toEqual([expect.objectContaining({ rendition: '240p', width: 426, height: 240 })]);
    const before = await playlist('resize/ws', (t) => segmentNumbers(t).length > 0, 'a first segment');
    await waitFor(
      async () => (await getText(`${http}/hls/resize/ws/240p/playlist.m3u8`))?.includes('#EXT-X-PART:'),
      'the 240p rung of the landscape source',
      { timeoutMs: 20_000, intervalMs: 100 },
    );

    ws.send(portrait);
    const second = await waitFor(
      async () => {
        const s = await transcodeSource('resize/ws');
        return s?.width === 720 && s.height === 1280 ? s : undefined;
      },
      'the 720x1280 plan',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    // Portrait source, portrait rung.
    expect(second.plan).toEqual([expect.objectContaining({ rendition: '240p', width: 240, height: 426 })]);
    const after = await playlist(
      'resize/ws',
      (t) => t.includes('#EXT-X-DISCONTINUITY') && segmentNumbers(t).length > segmentNumbers(before.text).length + 1,
      'segments after the discontinuity',
      20_000,
    );
    const numbers = segmentNumbers(after.text);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(new Set(numbers).size).toBe(numbers.length);
    expect(after.manifest.mediaSequence).toBeGreaterThanOrEqual(before.manifest.mediaSequence);
    expect(after.manifest.segments.some((s: { discontinuity?: boolean }) => s.discontinuity)).toBe(true);
    expect((await trackSummary(http, 'resize/ws'))?.width).toBe(720);
    await waitFor(
      async () => (await getText(`${http}/hls/resize/ws/240p/playlist.m3u8`))?.includes('#EXT-X-DISCONTINUITY'),
      'a discontinuity in the rung playlist',
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    stop();
    expect((await ws.close()).code).toBe(1000);

    const res = await posted;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ fragments: 12 });
    await playlist('resize/post', (t) => t.includes('#EXT-X-DISCONTINUITY'), 'the POST broadcast discontinuity');
  });
});

describe('misbehaving publishers', () => {
  const clip = splitFmp4(readFixture('360p30.mp4'));
  const half = (piece: Uint8Array) => piece.subarray(0, piece.length >> 1);

  it('a WebSocket publisher that vanishes mid-fragment publishes only its whole fragments, and the broadcast ends after the grace period', async () => {
    matrix().caseNames.add('cut/ws');
    const ws = await wsPublisher('cut/ws');
    ws.send(concatBytes([clip.init, clip.fragments[0]!, clip.fragments[1]!, half(clip.fragments[2]!)]));
    await waitFor(async () => (await trackSummary(matrix().http, 'cut/ws'))?.fragments === 2, 'two whole fragments');
    ws.ws.terminate();
    const cutAt = performance.now();
    await waitFor(async () => (await publishers()).get('cut/ws')?.state === 'grace', 'the grace period');
    await playlist('cut/ws', (t) => t.includes('#EXT-X-ENDLIST'), 'the broadcast to end', 5_000);
    expect(performance.now() - cutAt).toBeGreaterThanOrEqual(GRACE_S * 1000 - 100);
    expect((await publishers()).has('cut/ws')).toBe(false);
    expect((await trackSummary(matrix().http, 'cut/ws'))?.fragments).toBe(2);
    expect((await trackSummary(matrix().http, 'cut/ws', '1.mp4'))?.fragments).toBe(2);
  });

  it('a POST publisher cut mid-fragment that reconnects within the grace period continues the same broadcast without a discontinuity', async () => {
    const { server, http } = matrix();
    matrix().caseNames.add('cut/post');
    const socket = connect({ host: '127.0.0.1', port: server.port });
    matrix().cleanup.push(() => socket.destroy());
    socket.on('error', () => {});
    const sent = concatBytes([clip.init, clip.fragments[0]!, half(clip.fragments[1]!)]);
    socket.write(
      'POST /ingest/cut/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${sent.length.toString(16)}\r\n`,
    );
    socket.write(sent);
    socket.write('\r\n');
    await waitFor(async () => (await trackSummary(http, 'cut/post'))?.fragments === 1, 'the whole fragment');
    socket.destroy();
    await waitFor(async () => (await publishers()).get('cut/post')?.state === 'grace', 'the grace period', {
      intervalMs: 5,
    });
    // The reconnect sends the cut fragment again from its start, then the rest.
    const res = await post('cut/post', concatBytes([clip.fragments[1]!, clip.fragments[2]!]));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ fragments: 4 });
    const publisher = (await publishers()).get('cut/post');
    expect(publisher?.connections).toBe(2);
    const { text } = await playlist('cut/post', (t) => t.includes('#EXT-X-ENDLIST'), 'the broadcast to end', 5_000);
    expect(text).not.toContain('#EXT-X-DISCONTINUITY');
    expect((await trackSummary(http, 'cut/post'))?.fragments).toBe(3);
  });

  it(`a publisher that sends nothing is closed after the ${IDLE_S} s idle timeout: 408 ingest.idle_timeout over POST, close 4408 with that JSON error over WebSocket`, async () => {
    matrix().caseNames.add('idle/post-empty').add('idle/post-init').add('idle/ws-empty').add('idle/ws-init');
    const before = await rejectedCount('ingest.idle_timeout');
    const started = performance.now();
    const { port } = matrix().server;
    // Raw requests: fetch shows no answer while its request body is still open.
    const head = (name: string) => `POST /ingest/${name} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const chunk = (bytes: Uint8Array) =>
      concatBytes([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
    const wsEmpty = await wsPublisher('idle/ws-empty');
    const wsInit = await wsPublisher('idle/ws-init');
    wsInit.send(clip.init);
    const timeoutMs = (IDLE_S + 3) * 1000;
    const [postEmpty, postInit, closedEmpty, closedInit] = await Promise.all([
      rawRequest(port, head('idle/post-empty'), timeoutMs),
      rawRequest(port, concatBytes([Buffer.from(head('idle/post-init')), chunk(clip.init)]), timeoutMs),
      wsEmpty.closed,
      wsInit.closed,
    ]);
    const elapsedS = (performance.now() - started) / 1000;
    expect(elapsedS).toBeGreaterThanOrEqual(IDLE_S - 0.1);
    expect(elapsedS).toBeLessThan(IDLE_S + 3);
    for (const res of [postEmpty, postInit]) {
      expect(res.status, res.head).toBe(408);
      expect(JSON.parse(res.body)).toEqual({ error: { code: 'ingest.idle_timeout', message: expect.any(String) } });
    }
    expectWsClosedWith(closedEmpty, 408, 'ingest.idle_timeout');
    expectWsClosedWith(closedInit, 408, 'ingest.idle_timeout');
    expect(await rejectedCount('ingest.idle_timeout')).toBe(before + 4);
  });

  it('a second publisher on a live name, or on a rung, gets 409 ingest.already_publishing over POST and over the WebSocket upgrade; the first carries on', async () => {
    const { http, wsBase } = matrix();
    matrix().caseNames.add('busy/name');
    const first = await wsPublisher('busy/name');
    first.send(concatBytes([clip.init, clip.fragments[0]!]));
    await waitFor(async () => (await trackSummary(http, 'busy/name'))?.fragments === 1, 'the first fragment');
    for (const name of ['busy/name', `${HEALTHY}/240p`]) {
      await expectJsonError(await post(name, clip.init), 409, 'ingest.already_publishing');
      const refused = await refusedUpgrade(`${wsBase}/ingest/${name}`);
      expect(refused.status).toBe(409);
      expect(JSON.parse(refused.body)).toEqual({
        error: { code: 'ingest.already_publishing', message: expect.stringContaining(name) },
      });
    }
    first.send(concatBytes([clip.fragments[1]!, clip.fragments[2]!]));
    await waitFor(async () => (await trackSummary(http, 'busy/name'))?.fragments === 3, 'the rest of the first');
    expect(first.messages).toEqual([]);
    expect((await first.close()).code).toBe(1000);
  });
});

describe('after the matrix', () => {
  it('nothing of those publishers is live, the heap returns to its baseline and the healthy broadcast lost no fragment', async () => {
    await expectCleanAfterMatrix();
  });
});
