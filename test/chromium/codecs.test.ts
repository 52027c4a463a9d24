/**
 * The service side of the chromium backend against a scripted page (the protocol's messages, no
 * browser): frame handles are counted (one release when the last clone closes), a page that goes
 * fails every decoder and encoder once with their pending calls, and a socket that is already
 * closing never makes a close or a release throw into the ladder.
 */

import { describe, expect, it } from 'vitest';
import { ChromiumCodecs, type PageConnection } from '../../src/transcode/chromium/codecs.ts';
import { decodeMessage, encodeMessage, type Message, OP } from '../../src/transcode/chromium/protocol.ts';
import type { VideoFrameLike } from '../../src/transcode/codecs.ts';
import { waitFor } from '../support/wait.ts';

/** A page that records what it gets and lets the test answer. */
function scriptedPage(): { connection: PageConnection; sent: Message[]; broken: { now: boolean }; kills: string[] } {
  const sent: Message[] = [];
  const kills: string[] = [];
  const broken = { now: false };
  return {
    sent,
    broken,
    kills,
    connection: {
      send(bytes) {
        if (broken.now) throw new Error('socket closed');
        sent.push(decodeMessage(bytes)!);
      },
      kill: (reason) => kills.push(reason),
    },
  };
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

  it('a page that leaves a call unanswered past the call timeout is killed', async () => {
    const codecs = new ChromiumCodecs({
      backend: 'chromium-software',
      hardwareAcceleration: 'no-preference',
      callTimeoutMs: 300,
    });
    const page = scriptedPage();
    codecs.attach(page.connection);
    const decoder = codecs.createDecoder(
      DECODER,
      () => {},
      () => {},
    );
    const started = Date.now();
    const flushing = decoder.flush();
    flushing.catch(() => {});
    await waitFor(() => page.kills.length > 0, 'the hung page to be killed', { timeoutMs: 5000, intervalMs: 10 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(page.kills[0]).toBe('the page left a call unanswered for 300 ms');
    codecs.close();
    await expect(flushing).rejects.toThrow(/chromium page gone/);
  });
});
