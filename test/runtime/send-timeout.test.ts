import { describe, expect, it } from 'vitest';
import { SendTimeoutError, SLICE_BYTES, slicedBody, withSlicedBodies } from '../../src/runtime/send-timeout.ts';

function bytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31) & 0xff;
  return out;
}

function answer(body: Uint8Array): Response {
  return new Response(body as BodyInit, { status: 206, headers: { 'content-length': String(body.byteLength) } });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('sliced answer bodies and the send timeout', () => {
  it('hands a large body over in slices of at most 64 KiB, byte for byte, with status and headers', async () => {
    const body = bytes(1_000_003);
    const sliced = slicedBody(answer(body), 1000);
    expect(sliced.status).toBe(206);
    expect(sliced.headers.get('content-length')).toBe('1000003');
    const reader = sliced.body!.getReader();
    const parts: Uint8Array[] = [];
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      expect(next.value.byteLength).toBeLessThanOrEqual(SLICE_BYTES);
      parts.push(next.value);
    }
    expect(parts.length).toBe(Math.ceil(body.byteLength / SLICE_BYTES));
    expect(Buffer.concat(parts).equals(Buffer.from(body))).toBe(true);
  });

  it('passes small bodies and empty answers through as they are', async () => {
    const small = answer(bytes(SLICE_BYTES));
    expect(slicedBody(small, 1000)).toBe(small);
    const empty = new Response(null, { status: 204 });
    expect(slicedBody(empty, 1000)).toBe(empty);
    // A body without a declared length (JSON errors, playlists, pages) keeps its length on the wire.
    const json = new Response('{"error":{"code":"ingest.bad_name"}}', { status: 400 });
    expect(slicedBody(json, 1000)).toBe(json);
    const wrapped = withSlicedBodies(() => small, 1000);
    expect(await wrapped(new Request('http://x/'), undefined)).toBe(small);
  });

  it('fails the body when the next slice is not asked for within the timeout', async () => {
    const reader = slicedBody(answer(bytes(512 * 1024)), 200).body!.getReader();
    const started = Date.now();
    expect((await reader.read()).value?.byteLength).toBe(SLICE_BYTES);
    // The reader asks for nothing more: the body fails.
    await expect(reader.closed).rejects.toBeInstanceOf(SendTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('a reader that keeps asking, however slowly within the timeout, gets the whole body', async () => {
    const body = bytes(8 * SLICE_BYTES);
    const reader = slicedBody(answer(body), 300).body!.getReader();
    const started = Date.now();
    let total = 0;
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      total += next.value.byteLength;
      await pause(100);
    }
    expect(total).toBe(body.byteLength);
    expect(Date.now() - started).toBeGreaterThan(300);
  });

  it('does not count the time the answer itself takes to produce the next bytes', async () => {
    const source = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await pause(400);
        controller.enqueue(bytes(1000));
        controller.close();
      },
    });
    const reader = slicedBody(new Response(source), 100).body!.getReader();
    expect((await reader.read()).value?.byteLength).toBe(1000);
    expect((await reader.read()).done).toBe(true);
  });
});
