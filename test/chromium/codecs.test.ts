/**
 * The service side of the chromium backend against a scripted page (the protocol's messages, no
 * browser): frame handles are counted (one release when the last clone closes), a browser that goes
 * fails every decoder and encoder once with their pending calls, a page that goes (one per worker)
 * fails only its worker's, every message is sent to its worker's page, and a socket that is
 * already closing never makes a close or a release throw into the ladder.
 */

import { describe, expect, it } from 'vitest';
import { ChromiumCodecs, type PageConnection } from '../../src/transcode/chromium/codecs.ts';
import { decodeMessage, encodeMessage, type Message, OP } from '../../src/transcode/chromium/protocol.ts';
import type { VideoFrameLike } from '../../src/transcode/codecs.ts';
import { waitFor } from '../support/wait.ts';

/** A browser that records what it gets (and for which worker's page) and lets the test answer. */
function scriptedPage(): {
  connection: PageConnection;
  sent: Message[];
  /** The worker (page) each message of `sent` went to. */
  to: number[];
  broken: { now: boolean };
  kills: string[];
  released: number[];
} {
  const sent: Message[] = [];
  const to: number[] = [];
  const kills: string[] = [];
  const released: number[] = [];
  const broken = { now: false };
  return {
    sent,
    to,
    broken,
    kills,
    released,
    connection: {
      send(bytes, worker) {
        if (broken.now) throw new Error('socket closed');
        sent.push(decodeMessage(bytes)!);
        to.push(worker);
      },
      kill: (reason, worker) => kills.push(`${worker}: ${reason}`),
      release: (worker) => released.push(worker),
    },
  };
}

/** Codecs attached to a scripted page, with a call timeout. */
function attached(callTimeoutMs: number): { codecs: ChromiumCodecs; page: ReturnType<typeof scriptedPage> } {
  const codecs = new ChromiumCodecs({
    backend: 'chromium-software',
    hardwareAcceleration: 'no-preference',
    callTimeoutMs,
  });
  const page = scriptedPage();
  codecs.attach(page.connection);
  return { codecs, page };
}

const DECODER = { codec: 'avc1.64001f', description: new Uint8Array([1, 100, 0, 31]) };

describe('chromium codecs (service side)', () => {
  it('a decoded frame stays in the page until its last handle closes: one release, and close never throws', async () => {
    const codecs = new ChromiumCodecs({ backend: 'chromium-software', hardwareAcceleration: 'no-preference' });
    const page = scriptedPage();
    codecs.attach(page.connection);
    const frames: VideoFrameLike[] = [];
    const decoder = codecs.createDecoder(
      DECODER,
      (f) => frames.push(f),
      () => {},
    );
    await waitFor(() => page.sent.some((m) => m.op === OP.decoderConfigure), 'the configure message');
    const id = page.sent[0]!.id;
    codecs.receive(encodeMessage({ op: OP.frame, id, ref: 7, timestampUs: 33_333 }));
    expect(frames.map((f) => f.timestamp)).toEqual([33_333]);
    const a = frames[0]!;
    const b = a.clone();
    const c = b.clone();
    a.close();
    b.close();
    a.close();
    expect(page.sent.filter((m) => m.op === OP.frameRelease)).toEqual([]);
    c.close();
    expect(page.sent.filter((m) => m.op === OP.frameRelease).map((m) => m.ref)).toEqual([7]);
    // A socket that is closing: releases and closes are dropped, never thrown.
    codecs.receive(encodeMessage({ op: OP.frame, id, ref: 8, timestampUs: 66_666 }));
    page.broken.now = true;
    expect(() => frames[1]!.close()).not.toThrow();
    expect(() => decoder.close()).not.toThrow();
    await new Promise((resolve) => setImmediate(resolve));
    codecs.close();
  });

  it('a page that goes fails each decoder and encoder once, rejects their pending calls, and the next page serves new ones', async () => {
    const codecs = new ChromiumCodecs({ backend: 'chromium-software', hardwareAcceleration: 'no-preference' });
    const page = scriptedPage();
    codecs.attach(page.connection);
    const errors: string[] = [];
    const decoder = codecs.createDecoder(
      DECODER,
      () => {},
      (e) => errors.push(`decoder: ${String(e)}`),
    );
    const encoder = codecs.createEncoder(
      { width: 426, height: 240, bitrateBps: 400_000, framerate: 30 },
      () => {},
      (e) => errors.push(`encoder: ${String(e)}`),
    );
    const decoding = decoder.decode({
      data: new Uint8Array([0, 0, 0, 1, 5]),
      timestampUs: 0,
      durationUs: 1,
      keyframe: true,
    });
    await waitFor(() => page.sent.some((m) => m.op === OP.decode), 'the decode call');
    codecs.detach('killed');
    await expect(decoding).rejects.toThrow(/chromium page gone: killed/);
    expect(errors.sort()).toEqual([
      'decoder: CodecError: chromium page gone: killed',
      'encoder: CodecError: chromium page gone: killed',
    ]);
    await expect(encoder.flush()).rejects.toThrow(/chromium page gone/);
    // A decoder created while no page is connected waits for the next one.
    const next = scriptedPage();
    const later = codecs.createDecoder(
      DECODER,
      () => {},
      () => {},
    );
    const flushed = later.flush();
    codecs.attach(next.connection);
    await waitFor(() => next.sent.some((m) => m.op === OP.decoderFlush), 'the flush on the new page');
    const flush = next.sent.find((m) => m.op === OP.decoderFlush)!;
    codecs.receive(encodeMessage({ op: OP.done, id: flush.id, seq: flush.seq }));
    await flushed;
    expect(page.kills).toEqual([]);
    expect(next.kills).toEqual([]);
    codecs.close();
  });

  it('each decoder runs in a worker of its own, an encoder in the worker of its first frame; a hung worker is ended alone', async () => {
    const { codecs, page } = attached(300);
    const errors: string[] = [];
    const frames: VideoFrameLike[][] = [[], []];
    const decoders = [0, 1].map((i) =>
      codecs.createDecoder(
        DECODER,
        (f) => frames[i]!.push(f),
        (e) => errors.push(`decoder ${i}: ${String(e)}`),
      ),
    );
    await waitFor(() => page.sent.filter((m) => m.op === OP.decoderConfigure).length === 2, 'both configures');
    const [a, b] = page.sent.filter((m) => m.op === OP.decoderConfigure);
    expect(a!.ref).not.toBe(b!.ref);
    expect(codecs.workerIds()).toEqual([a!.ref, b!.ref]);
    codecs.receive(encodeMessage({ op: OP.frame, id: a!.id, ref: 1, timestampUs: 0 }));
    codecs.receive(encodeMessage({ op: OP.frame, id: b!.id, ref: 1, timestampUs: 0 }));
    const encoder = codecs.createEncoder(
      { width: 426, height: 240, bitrateBps: 400_000, framerate: 30 },
      () => {},
      (e) => errors.push(`encoder: ${String(e)}`),
    );
    const encoding = encoder.encode(frames[0]![0]!, { keyFrame: true, durationUs: 1 });
    encoding.catch(() => {});
    await waitFor(() => page.sent.some((m) => m.op === OP.encode), 'the encode call');
    expect(page.sent.find((m) => m.op === OP.encoderConfigure)!.ref, "the encoder is in its frame's worker").toBe(
      a!.ref,
    );
    // Worker a hangs: the service asks the page to end it, and only a's codecs fail.
    await waitFor(() => page.sent.some((m) => m.op === OP.workerKill), 'the kill of the hung worker', {
      timeoutMs: 5000,
      intervalMs: 10,
    });
    expect(page.sent.filter((m) => m.op === OP.workerKill).map((m) => m.id)).toEqual([a!.ref]);
    codecs.receive(encodeMessage({ op: OP.workerGone, id: a!.ref }, new TextEncoder().encode('hung')));
    await expect(encoding).rejects.toThrow(/chromium page worker gone: hung/);
    expect(errors.sort()).toEqual([
      'decoder 0: CodecError: chromium page worker gone: hung',
      'encoder: CodecError: chromium page worker gone: hung',
    ]);
    expect(codecs.workerIds()).toEqual([b!.ref]);
    // Worker b still serves; a frame of a gone worker is not released into the page.
    const decoding = decoders[1]!.decode({
      data: new Uint8Array([0, 0, 0, 1, 5]),
      timestampUs: 1,
      durationUs: 1,
      keyframe: true,
    });
    await waitFor(() => page.sent.some((m) => m.op === OP.decode), 'the decode of b');
    const decode = page.sent.find((m) => m.op === OP.decode)!;
    codecs.receive(encodeMessage({ op: OP.done, id: decode.id, seq: decode.seq }));
    await decoding;
    frames[0]![0]!.close();
    frames[1]![0]!.close();
    expect(page.sent.filter((m) => m.op === OP.frameRelease).map((m) => [m.id, m.ref])).toEqual([[b!.ref, 1]]);
    expect(page.kills).toEqual([]);
    expect(page.released, "the ended worker's page is closed").toEqual([a!.ref]);
    // Every message went to the page of the worker it concerns.
    const workerOf = new Map([
      [a!.id, a!.ref],
      [b!.id, b!.ref],
      [page.sent.find((m) => m.op === OP.encoderConfigure)!.id, a!.ref],
    ]);
    page.sent.forEach((m, i) => {
      const worker = m.op === OP.workerKill || m.op === OP.frameRelease ? m.id : workerOf.get(m.id);
      expect(page.to[i], `message ${i} (op ${m.op})`).toBe(worker);
    });
    // b's page crashes: b's decoder fails alone, and its page is released.
    codecs.pageGone(b!.ref, 'crashed');
    expect(errors).toContain('decoder 1: CodecError: chromium page worker gone: its page crashed');
    expect(codecs.workerIds()).toEqual([]);
    expect(page.released).toEqual([a!.ref, b!.ref]);
    codecs.close();
  });

  it("a rebuilt decoder joins the worker its source's encoders are in; an encoder handed another worker's frame fails", async () => {
    const { codecs, page } = attached(15_000);
    const frames: VideoFrameLike[] = [];
    const configures = (): Message[] => page.sent.filter((m) => m.op === OP.decoderConfigure);
    const first = codecs.createDecoder(
      DECODER,
      (f) => frames.push(f),
      () => {},
    );
    await waitFor(() => configures().length === 1, 'the first configure');
    const a = configures()[0]!;
    codecs.receive(encodeMessage({ op: OP.frame, id: a.id, ref: 1, timestampUs: 0 }));
    const errors: unknown[] = [];
    const encoder = codecs.createEncoder(
      { width: 426, height: 240, bitrateBps: 400_000, framerate: 30 },
      () => {},
      (e) => errors.push(e),
    );
    const encoding = encoder.encode(frames[0]!, { keyFrame: true, durationUs: 1 });
    await waitFor(() => page.sent.some((m) => m.op === OP.encode), 'the encode call');
    const encode = page.sent.find((m) => m.op === OP.encode)!;
    codecs.receive(encodeMessage({ op: OP.done, id: encode.id, seq: encode.seq }));
    await encoding;
    first.close();
    const rebuilt = [0, 1].map(() =>
      codecs.createDecoder(
        DECODER,
        (f) => frames.push(f),
        () => {},
      ),
    );
    await waitFor(() => configures().length === 3, 'the two new configures');
    const [, again, other] = configures();
    expect(again!.ref, "the rebuilt decoder is in its encoders' worker").toBe(a.ref);
    expect(other!.ref, 'a new source gets a new worker').not.toBe(a.ref);
    codecs.receive(encodeMessage({ op: OP.frame, id: other!.id, ref: 1, timestampUs: 33_333 }));
    await expect(encoder.encode(frames[1]!, { keyFrame: true, durationUs: 1 })).rejects.toThrow(/another page worker/);
    expect(errors.map(String)).toEqual(['CodecError: its frames come from another page worker']);
    for (const decoder of rebuilt) decoder.close();
    codecs.close();
  });

  it('a page that does not end a hung worker in time is closed; the other pages go on', async () => {
    const { codecs, page } = attached(300);
    const errors: string[] = [];
    const [hung, other] = [0, 1].map((i) =>
      codecs.createDecoder(
        DECODER,
        () => {},
        (e) => errors.push(`decoder ${i}: ${String(e)}`),
      ),
    );
    await waitFor(() => page.sent.filter((m) => m.op === OP.decoderConfigure).length === 2, 'both configures');
    const [a, b] = page.sent.filter((m) => m.op === OP.decoderConfigure);
    const started = Date.now();
    const flushing = hung!.flush();
    flushing.catch(() => {});
    await waitFor(() => page.kills.length > 0, 'the hung page to be closed', { timeoutMs: 5000, intervalMs: 10 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(page.sent.filter((m) => m.op === OP.workerKill)).toHaveLength(1);
    expect(page.kills).toEqual([`${a!.ref}: the page left a call unanswered for 300 ms`]);
    await expect(flushing).rejects.toThrow(/chromium page worker gone: the page left a call unanswered/);
    expect(errors).toEqual([
      'decoder 0: CodecError: chromium page worker gone: the page left a call unanswered for 300 ms',
    ]);
    // The other source's page still serves.
    const flushed = other!.flush();
    await waitFor(() => page.sent.some((m) => m.op === OP.decoderFlush && m.id === b!.id), 'the flush of b');
    const flush = page.sent.find((m) => m.op === OP.decoderFlush && m.id === b!.id)!;
    codecs.receive(encodeMessage({ op: OP.done, id: flush.id, seq: flush.seq }));
    await flushed;
    expect(codecs.workerIds()).toEqual([b!.ref]);
    codecs.close();
  });
});
