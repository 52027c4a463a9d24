/**
 * The bad-input matrix, part 1, against the real service (see matrix.ts): malformed streams, bad
 * names, oversized messages and HLS clients that never read. Every case checks the exact HTTP
 * status or WebSocket close code (4000 + status) and the JSON error code, over POST and over
 * WebSocket where both apply, while a healthy broadcast publishing meanwhile loses nothing; at the
 * end nothing of the refused publishers remains and the heap is back near its baseline. Part 2
 * (codecs, format changes, disconnects, idle and competing publishers) is stream-faults.test.ts.
 */

import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { concatBytes } from '../../src/container/boxes.ts';
import { readBoxes } from '../../src/container/index.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { getText } from '../../testkit/server.ts';
import { boxHeader, splitFmp4, withDataOffsetMoved, withHandlers } from '../support/mp4-edit.ts';
import { waitFor } from '../support/wait.ts';
import { randomBytes, rawRequest, rawWsRefusal, trackSummary } from './helpers.ts';
import {
  expectCleanAfterMatrix,
  expectHealthyBroadcastIntact,
  expectJsonError,
  expectWsClosedWith,
  HEALTHY,
  health,
  matrix,
  post,
  publishers,
  rejectedCount,
  setupMatrix,
  wsPublish,
  wsPublisher,
} from './matrix.ts';

setupMatrix();

const small = splitFmp4(readFixture('360p30.mp4'));

type MalformedCase = {
  title: string;
  bytes: () => Uint8Array;
  status: number;
  code: string;
  /** Video fragments of the valid part before the fault, which are published (default 0). */
  publishedFirst?: number;
};

const MALFORMED: MalformedCase[] = [
  {
    title: 'random bytes',
    bytes: () => randomBytes(64 * 1024, 1),
    status: 400,
    code: 'ingest.malformed_box',
  },
  {
    title: 'a box header announcing 2 GiB after the init',
    bytes: () => concatBytes([small.init, boxHeader('moof', 0x7fff_fff0)]),
    status: 413,
    code: 'ingest.box_too_large',
  },
  {
    title: 'a moov cut short, followed by the rest of the stream',
    bytes: () => concatBytes([small.ftyp, small.moov.subarray(0, small.moov.length >> 1), ...small.fragments]),
    status: 400,
    code: 'ingest.malformed_box',
  },
  {
    title: 'a moof before any moov',
    bytes: () => concatBytes([small.ftyp, small.fragments[0]!]),
    status: 400,
    code: 'ingest.no_init',
  },
  {
    title: 'an mdat without a moof',
    bytes: () => concatBytes([small.init, readBoxes(small.fragments[0]!).find((b) => b.type === 'mdat')!.bytes]),
    status: 400,
    code: 'ingest.mdat_without_moof',
  },
  {
    title: 'a trun pointing outside its mdat',
    bytes: () => concatBytes([small.init, withDataOffsetMoved(small.fragments[0]!, 1_000_000)]),
    status: 400,
    code: 'ingest.bad_sample_table',
  },
  {
    title: 'decode times going backwards',
    // The second second of media, then the first again, on the same init.
    bytes: () => concatBytes([small.init, small.fragments[1]!, small.fragments[0]!]),
    status: 400,
    code: 'ingest.timestamp_regression',
    publishedFirst: 1,
  },
  {
    title: 'an init with neither video nor audio',
    bytes: () => concatBytes([small.ftyp, withHandlers(small.moov, 'text'), ...small.fragments]),
    status: 400,
    code: 'ingest.no_tracks',
  },
];

describe('malformed streams', () => {
  it.each(MALFORMED.map((c, i) => [c.title, c.status, c.code, i] as const))(
    '%s: %i %s over POST, close 4000 + status with that JSON error over WebSocket',
    async (_title, status, code, index) => {
      const c = MALFORMED[index]!;
      const names = { post: `bad/post-${index}`, ws: `bad/ws-${index}` };
      matrix().caseNames.add(names.post).add(names.ws);
      const rejectedBefore = await rejectedCount(code);
      const [res, closed] = await Promise.all([post(names.post, c.bytes()), wsPublish(names.ws, c.bytes())]);
      await expectJsonError(res, status, code);
      expectWsClosedWith(closed, status, code);
      expect(await rejectedCount(code)).toBe(rejectedBefore + 2);
      // What came before the fault is published (however the stream was chunked), nothing after it.
      for (const name of [names.post, names.ws]) {
        expect((await trackSummary(matrix().http, name))?.fragments ?? 0, name).toBe(c.publishedFirst ?? 0);
      }
    },
  );

  it('a POST body that ends inside the moov gets 400 ingest.truncated; a WebSocket publisher that leaves there publishes nothing', async () => {
    const cut = concatBytes([small.ftyp, small.moov.subarray(0, small.moov.length - 100)]);
    matrix().caseNames.add('bad/cut-post').add('bad/cut-ws');
    await expectJsonError(await post('bad/cut-post', cut), 400, 'ingest.truncated');
    const publisher = await wsPublisher('bad/cut-ws');
    publisher.send(cut);
    // The publisher's own normal close: there is nobody left to answer; the partial box is dropped.
    expect((await publisher.close()).code).toBe(1000);
    await waitFor(
      async () => !(await publishers()).has('bad/cut-ws'),
      'the name to be released after the grace period',
    );
    expect(await trackSummary(matrix().http, 'bad/cut-ws')).toBeUndefined();
  });

  it('a WebSocket message over the 8 MiB limit closes the publisher with 1009 before it is buffered, counted as ingest.message_too_large', async () => {
    matrix().caseNames.add('bad/huge-message');
    const before = await rejectedCount('ingest.message_too_large');
    const publisher = await wsPublisher('bad/huge-message');
    publisher.send(small.init);
    publisher.send(new Uint8Array(8 * 1024 * 1024 + 1));
    const closed = await publisher.closed;
    // The WebSocket layer enforces the limit as the frame header arrives (RFC 6455 "Message Too Big").
    expect(closed.code).toBe(1009);
    expect(closed.messages).toEqual([]);
    await waitFor(
      async () => (await rejectedCount('ingest.message_too_large')) === before + 1,
      'the rejection to be counted',
    );
  });
});

describe('the wrong kind of request', () => {
  it('a text WebSocket message closes the publisher with 4415 ingest.text_message; a GET on an ingest path without an upgrade gets 426 ingest.upgrade_required', async () => {
    matrix().caseNames.add('bad/text-ws').add('bad/plain-get');
    const before = await rejectedCount('ingest.text_message');
    const publisher = await wsPublisher('bad/text-ws');
    publisher.send(small.init);
    publisher.ws.send('{"hello": "server"}');
    expectWsClosedWith(await publisher.closed, 415, 'ingest.text_message');
    await waitFor(
      async () => (await rejectedCount('ingest.text_message')) === before + 1,
      'the rejection to be counted',
    );
    await expectJsonError(await fetch(`${matrix().http}/ingest/bad/plain-get`), 426, 'ingest.upgrade_required');
    expect(await trackSummary(matrix().http, 'bad/plain-get')).toBeUndefined();
  });
});

describe('broadcast names', () => {
  const BAD_NAMES: Array<[string, string]> = [
    ['live/..', 'a dot segment'],
    ['live/../other', 'a dot segment that URL normalisation would turn into "other"'],
    ['live/%2e%2e/other', 'an escaped dot segment'],
    ['live//x', 'an empty segment'],
    ['/live', 'a leading slash'],
    ['live/x/', 'a trailing slash'],
    ['a'.repeat(201), 'over 200 characters'],
    ['a/b/c/d/e/f/g/h/i', 'more than 8 segments'],
    ['live/x%20y', 'a space'],
    ['live/a.b', 'a dot'],
    ['live/%C3%BC', 'a non-ASCII letter'],
  ];

  it('bad names get 400 ingest.bad_name with the reason over POST, and close 4400 with it over the WebSocket, and publish nothing', async () => {
    const { server, http } = matrix();
    const before = await rejectedCount('ingest.bad_name');
    const body = String.fromCharCode(...small.ftyp);
    for (const [name, why] of BAD_NAMES) {
      const target = `/ingest/${name}`;
      // Raw requests: a URL client would normalise the dot segments away before sending.
      const [postRes, upgrade] = await Promise.all([
        rawRequest(
          server.port,
          `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        ),
        rawWsRefusal(server.port, target),
      ]);
      const expected = {
        error: { code: 'ingest.bad_name', message: expect.stringContaining('invalid broadcast name') },
      };
      expect(postRes.status, `POST, ${why}: ${postRes.head}`).toBe(400);
      expect(JSON.parse(postRes.body), `POST, ${why}`).toEqual(expected);
      expect(upgrade.status, `upgrade, ${why}: ${upgrade.head}`).toBe(101);
      expect(upgrade.closeCode, `upgrade, ${why}`).toBe(4400);
      expect(upgrade.closeReason).toBe('ingest.bad_name');
      expect(JSON.parse(upgrade.message), `upgrade, ${why}`).toEqual(expected);
    }
    expect(await rejectedCount('ingest.bad_name')).toBe(before + 2 * BAD_NAMES.length);
    // No publisher appeared under any name (earlier cases' names may still be in their grace period).
    expect([...(await publishers()).keys()].filter((n) => !matrix().caseNames.has(n))).toEqual([HEALTHY]);
    expect(await trackSummary(http, 'other')).toBeUndefined();
  });
});

describe('HLS clients that never read', () => {
  it('pipelined segment requests that are never read leave others served and memory bounded; the server keeps one answer per socket until the client leaves', async () => {
    const { server, http } = matrix();
    const playlist = (await getText(`${http}/hls/${HEALTHY}/playlist.m3u8`))!;
    const segment = [...playlist.matchAll(/^(seg-\d+\.m4s)$/gm)].at(-1)?.[1];
    expect(segment).toBeDefined();
    const size = (await (await fetch(`${http}/hls/${HEALTHY}/${segment}`)).arrayBuffer()).byteLength;
    expect(size).toBeGreaterThan(200_000);
    const before = await health();
    const SOCKETS = 20;
    const PIPELINED = 50; // 20 x 50 answers of that segment: about 1 GB if they were all buffered
    const slow = Array.from({ length: SOCKETS }, () => {
      const socket = connect({ host: '127.0.0.1', port: server.port });
      matrix().cleanup.push(() => socket.destroy());
      const state = { socket, answered: false };
      socket.once('data', () => {
        // The first answer has started: never read again.
        state.answered = true;
        socket.pause();
      });
      socket.on('error', () => {});
      socket.write(`GET /hls/${HEALTHY}/${segment} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(PIPELINED));
      return state;
    });
    await waitFor(() => slow.every((s) => s.answered), 'every slow client to get the start of an answer');
    // Others are served promptly meanwhile.
    const started = performance.now();
    expect((await fetch(`${http}/hls/${HEALTHY}/${segment}`)).status).toBe(200);
    expect(await getText(`${http}/hls/${HEALTHY}/playlist.m3u8`)).toContain('#EXTINF');
    expect(performance.now() - started).toBeLessThan(1_000);
    await expectHealthyBroadcastIntact();
    // Node reads no further pipelined request while an answer is unsent: one answer per socket.
    const during = await health();
    expect(during.rssBytes - before.rssBytes).toBeLessThan(SOCKETS * size + 64 * 1024 * 1024);
    // There is no send timeout: the sockets stay open, harmless while their memory is bounded.
    expect(slow.every((s) => !s.socket.destroyed && s.socket.readyState === 'open')).toBe(true);
    for (const s of slow) s.socket.destroy();
  });
});

describe('after the matrix', () => {
  it('no refused publisher remains, the heap returns to its baseline and the healthy broadcast lost no fragment', async () => {
    await expectCleanAfterMatrix();
  });
});
