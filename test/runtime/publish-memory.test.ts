/**
 * A streamed POST (the `publish` command, the benchmarks' publishers) holds only what is in flight:
 * Node's fetch tees a stream body for redirects unless told not to follow them, and then keeps
 * everything sent. Measured on a real loopback server that reads and discards the body.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postStreamed } from '../../src/runtime/publish.ts';
import { waitFor } from '../support/wait.ts';

const CHUNK = 64 * 1024;
const CHUNKS = 2400; // 150 MiB
const MiB = 2 ** 20;

let server: Server;
let url: string;
let received = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.on('data', (d: Buffer) => {
      received += d.length;
    });
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const gc = (globalThis as { gc?: () => void }).gc;
const arrayBuffers = (): number => {
  gc?.();
  return process.memoryUsage().arrayBuffers;
};

describe('postStreamed', () => {
  it('sends 150 MiB while holding a few MiB of it at a time, and frees them once answered', async () => {
    expect(gc, 'the tests run with --expose-gc').toBeDefined();
    const before = arrayBuffers();
    let peak = 0;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < CHUNKS; i++) {
        // A fresh buffer per chunk, as a publisher reading a file or an encoder produces them.
        const chunk = new Uint8Array(CHUNK);
        chunk[0] = i & 255;
        if (i % 100 === 0) {
          peak = Math.max(peak, arrayBuffers() - before);
          await new Promise((resolve) => setImmediate(resolve));
        }
        yield chunk;
      }
    }
    const response = await postStreamed(url, chunks());
    expect(await response.text()).toBe('ok');
    expect(received).toBe(CHUNK * CHUNKS);
    // Teed, the body was held whole: a peak of about 150 MiB and as much left after the answer.
    expect(peak / MiB).toBeLessThan(48);
    // What the connection still held is freed soon after the answer (later under load).
    await waitFor(() => (arrayBuffers() - before < 16 * MiB ? true : undefined), 'the sent body to be freed', {
      timeoutMs: 10_000,
      intervalMs: 200,
    });
  }, 60_000);
});
