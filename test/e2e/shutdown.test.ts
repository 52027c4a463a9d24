import { afterEach, describe, expect, it } from 'vitest';
import { streamedPostInit } from '../../src/runtime/publish.ts';
import { fixturePath, readFixture } from '../../testkit/fixtures.ts';
import { type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { splitFmp4 } from '../support/mp4-edit.ts';
import { waitFor } from '../support/wait.ts';
import { ffmpegPublish, lastPart, openWsPublisher, type Proc } from './helpers.ts';

const FIXTURE = '720p30-nob-aac.mp4';

describe.each<Runtime>(['node', 'bun', 'deno'])('graceful shutdown on %s', (runtime) => {
  let server: RunningServer | undefined;
  let publisher: Proc | undefined;
  afterEach(async () => {
    publisher?.kill();
    await server?.stop({ signal: 'SIGKILL' });
  });

  it('SIGTERM ends held LL-HLS requests and publishers, then the process exits 0 within 10 s', async () => {
    server = await startServer(['--test-pattern', 'off', '--transcode-rendition', '240p'], { runtime });
    const { url } = server;
    const wsUrl = url.replace('http:', 'ws:');

    // A WebSocket publisher that stays connected, and a long ffmpeg POST.
    const ws = await openWsPublisher(`${wsUrl}/ingest/live/sd-ws`);
    await ws.sendFile(readFixture(FIXTURE), { seed: 1, paced: false });
    publisher = ffmpegPublish(fixturePath(FIXTURE), `${url}/ingest/live/sd-post`, { loops: 20 });
    // The WebSocket publisher sent its whole file at once: wait until ingest has worked it off (the
    // playlist's last part has not moved for a second), so that the reload below asks for a part
    // that never comes. On a loaded machine the playlist first read can still be growing.
    let last = { part: '', since: Date.now() };
    const playlist = await waitFor(
      async () => {
        const res = await fetch(`${url}/hls/live/sd-ws/playlist.m3u8`);
        const text = await res.text();
        const part = lastPart(text);
        if (!res.ok || part === undefined) return undefined;
        const key = `${part.msn}.${part.index}`;
        if (key !== last.part) last = { part: key, since: Date.now() };
        return Date.now() - last.since >= 1000 ? text : undefined;
      },
      'the WebSocket broadcast playlist to stop growing',
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    await waitFor(async () => (await fetch(`${url}/hls/live/sd-post/playlist.m3u8`)).ok, 'the POST broadcast', {
      timeoutMs: 15_000,
      intervalMs: 50,
    });
    // A POST publisher whose body is still open at shutdown (its answer is read below).
    const clip = splitFmp4(readFixture(FIXTURE));
    const open = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(clip.init);
        for (const fragment of clip.fragments.slice(0, 2)) controller.enqueue(fragment);
      },
    });
    const streamed = fetch(`${url}/ingest/live/sd-open`, streamedPostInit(open)).then(
      async (res) => ({ status: res.status, body: await res.text() }),
      (error: unknown) => ({ status: 0, body: String(error) }),
    );
    await waitFor(async () => (await fetch(`${url}/hls/live/sd-open/playlist.m3u8`)).ok, 'the open POST broadcast', {
      timeoutMs: 15_000,
      intervalMs: 50,
    });

    // A blocking reload for a part that will not come (the WS publisher sent everything already).
    const next = lastPart(playlist)!.msn + 1;
    const heldStarted = Date.now();
    const held = fetch(`${url}/hls/live/sd-ws/playlist.m3u8?_HLS_msn=${next}&_HLS_part=0`).then(
      async (res) => ({ status: res.status, body: await res.text(), ms: Date.now() - heldStarted }),
      (error: unknown) => ({ status: 0, body: String(error), ms: Date.now() - heldStarted }),
    );
    await waitFor(
      async () => {
        const api = (await (await fetch(`${url}/api/v1/broadcasts`)).json()) as {
          broadcasts: Array<{ name: string; tracks: Array<{ track: string; heldRequests: number }> }>;
        };
        const b = api.broadcasts.find((x) => x.name === 'live/sd-ws');
        return b?.tracks.find((t) => t.track === '0.mp4')?.heldRequests === 1;
      },
      'the request to be held',
      { intervalMs: 20 },
    );

    const signalled = Date.now();
    const status = await server.stop({ signal: 'SIGTERM', timeoutMs: 10_000 });
    const exitMs = Date.now() - signalled;
    expect(status, server.stdout()).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(10_000);
    expect(server.stdout()).toContain('shutting down');

    // The held request ended (answered or cut) instead of hanging until its timeout.
    const answer = await held;
    // The source ended at shutdown: the held reload is answered with the final playlist (ENDLIST), or
    // with 503 when the HLS layer closed first, or the connection is cut; it never waits out its timeout.
    const endedPlaylist = answer.status === 200 && answer.body.includes('#EXT-X-ENDLIST');
    expect(endedPlaylist || answer.status === 503 || answer.status === 0, `${answer.status} ${answer.body}`).toBe(true);
    console.log(
      `${runtime}: exit ${exitMs} ms after SIGTERM; held reload answered ${answer.status} after ${answer.ms} ms`,
    );
    // The publishers were let go: the open POST with 503 ingest.shutdown.
    const postAnswer = await streamed;
    expect(postAnswer.status, postAnswer.body).toBe(503);
    expect(JSON.parse(postAnswer.body)).toMatchObject({ error: { code: 'ingest.shutdown' } });
    const closed = await Promise.race([ws.closed, new Promise<undefined>((r) => setTimeout(r, 5000))]);
    expect(closed, 'the WebSocket publisher was closed').toBeDefined();
    expect([1001, 1006]).toContain(closed!.code);
    const ffmpegCode = await Promise.race([publisher.exited, new Promise<'hung'>((r) => setTimeout(r, 5000, 'hung'))]);
    expect(ffmpegCode).not.toBe('hung');
  }, 60_000);
});
