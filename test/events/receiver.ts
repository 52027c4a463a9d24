/** A real webhook receiver on loopback for the tests: records every POST and answers as told. */

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST the receiver got. */
export type Received = {
  /** The body exactly as it came (the signature covers these bytes). */
  readonly bytes: Buffer;
  readonly body: string;
  // biome-ignore lint/suspicious/noExplicitAny: event JSON as sent.
  readonly event: any;
  readonly signature: string | undefined;
  readonly eventHeader: string | undefined;
};

/** What the receiver answers to an event: status, body, and a delay before answering. */
export type Answer = { status?: number; body?: string; delayMs?: number };

/** A running receiver. */
export type Receiver = {
  readonly url: string;
  readonly received: Received[];
  /** Events of `type` (optionally for `broadcast`). */
  // biome-ignore lint/suspicious/noExplicitAny: event JSON as sent.
  events(type: string, broadcast?: string): any[];
  close(): Promise<void>;
};

/** Whether `signature` is `sha256=<hex HMAC-SHA256(secret, body)>` (checked with node:crypto). */
export function validSignature(secret: string, body: string | Uint8Array, signature: string | undefined): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const got = Buffer.from(signature ?? '');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** Starts a receiver on 127.0.0.1; `answer` decides each reply (default 200 `{}`). */
// biome-ignore lint/suspicious/noExplicitAny: event JSON as sent.
export async function startReceiver(answer: (event: any) => Answer = () => ({})): Promise<Receiver> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const body = bytes.toString('utf8');
      const event = JSON.parse(body);
      const signature = req.headers['x-lvqr-signature'];
      received.push({
        bytes,
        body,
        event,
        signature: typeof signature === 'string' ? signature : undefined,
        eventHeader: req.headers['x-lvqr-event'] as string | undefined,
      });
      const { status = 200, body: reply = '{}', delayMs = 0 } = answer(event);
      setTimeout(() => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(reply);
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    events: (type, broadcast) =>
      received
        .map((r) => r.event)
        .filter((e) => e.type === type && (broadcast === undefined || e.broadcast === broadcast)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
