/**
 * `WebhookSender`: delivers events as signed JSON POSTs to every configured URL from a bounded
 * queue, a few at a time, retrying failed deliveries with exponential back-off. `emit` only
 * enqueues: media never waits for a receiver. A delivery that fails for good (attempts used up,
 * or dropped because the queue is full) is reported through `onFailure` and logged.
 */

import { backoffDelayMs } from '../core/backoff.ts';
import { errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import { SIGNATURE_HEADER, signBody } from './signature.ts';

/** The kinds of event. */
export type EventType = 'publish' | 'ready' | 'unpublish' | 'rung_failed' | 'rung_recovered' | 'overload';

/** The JSON body of every event: its kind, the broadcast, the node that did it, and kind-specific fields. */
export type LvqrEvent = {
  readonly type: EventType;
  /** Unique per event (the same across retries and URLs): receivers may de-duplicate on it. */
  readonly id: string;
  readonly broadcast: string;
  readonly node: string;
  /** ISO 8601 time the event happened. */
  readonly time: string;
  readonly [field: string]: unknown;
};

/** Why a delivery failed: the receiver's status, a timeout, a network error, or a full queue. */
export type FailureReason = 'status' | 'timeout' | 'network' | 'queue_full' | 'reply';

/** Options of a `WebhookSender`. */
export type WebhookOptions = {
  /** Receivers; every event goes to each. */
  urls: readonly string[];
  /** Shared secret of the signature header; unsigned without. */
  secret?: string | undefined;
  /** The `node` field of every event. */
  node: string;
  /** A request with no answer after this long fails (ms). */
  timeoutMs: number;
  /** Deliveries waiting or being retried at most; the oldest is dropped beyond (default 1000). */
  maxQueued?: number;
  /** Attempts per delivery (default 5). */
  maxAttempts?: number;
  /** First retry delay, doubling per attempt up to `retryMaxMs` (default 500 ms, 8000 ms). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Reply bodies longer than this are a failed delivery (default 64 KiB). */
  maxReplyBytes?: number;
  /** Called once per failed attempt. */
  onFailure?: (url: string, reason: FailureReason) => void;
  logger?: Logger;
  fetch?: typeof fetch;
};

/** A POST that failed: why, and a message for logs and publishers. */
export class WebhookError extends Error {
  readonly reason: FailureReason;

  /** A failure of `reason`. */
  constructor(reason: FailureReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

type Delivery = { url: string; event: LvqrEvent; body: string; attempts: number };

/** Counters of a sender, for the API. */
export type WebhookStats = { queued: number; inFlight: number; delivered: number; failed: number; dropped: number };

/** Reads `response`'s body as text, failing past `maxBytes`. */
export async function readReply(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new WebhookError('reply', `the reply is ${declared} bytes, more than the ${maxBytes}-byte limit`);
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new WebhookError('reply', `the reply is more than the ${maxBytes}-byte limit`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** Delivers events to webhook receivers; see the module doc. */
export class WebhookSender {
  readonly #options: Required<Omit<WebhookOptions, 'secret' | 'onFailure'>> &
    Pick<WebhookOptions, 'secret' | 'onFailure'>;
  readonly #queue: Delivery[] = [];
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #waitingRetry = 0;
  #inFlight = 0;
  #delivered = 0;
  #failed = 0;
  #dropped = 0;
  #sequence = 0;
  #closed = false;

  /** A sender for `options.urls`. */
  constructor(options: WebhookOptions) {
    this.#options = {
      maxQueued: 1000,
      maxAttempts: 5,
      retryBaseMs: 500,
      retryMaxMs: 8000,
      concurrency: 4,
      maxReplyBytes: 64 * 1024,
      logger: silentLogger,
      fetch: (input, init) => globalThis.fetch(input, init),
      ...options,
    };
  }

  /** The receivers. */
  get urls(): readonly string[] {
    return this.#options.urls;
  }

  /** The largest reply body accepted, bytes. */
  get maxReplyBytes(): number {
    return this.#options.maxReplyBytes;
  }

  /** Builds an event of `type` for `broadcast` with `fields`, stamped with id, node and time. */
  event(type: EventType, broadcast: string, fields: Record<string, unknown> = {}): LvqrEvent {
    this.#sequence += 1;
    const id = `${Date.now().toString(36)}-${this.#sequence.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    return { ...fields, type, id, broadcast, node: this.#options.node, time: new Date().toISOString() };
  }

  /** Queues `event` for every receiver except `skip`; returns at once. */
  send(event: LvqrEvent, skip?: string): void {
    if (this.#closed) return;
    const body = JSON.stringify(event);
    for (const url of this.#options.urls) {
      if (url === skip) continue;
      this.#enqueue({ url, event, body, attempts: 0 });
    }
    this.#pump();
  }

  /** Builds and queues an event (see `event` and `send`). */
  emit(type: EventType, broadcast: string, fields: Record<string, unknown> = {}): void {
    this.send(this.event(type, broadcast, fields));
  }

  /**
   * POSTs `event` to `url` once, now, and returns the receiver's reply text (at most
   * `maxReplyBytes`); throws `WebhookError` on a timeout, a network error, a status outside 2xx or
   * a reply too large. Counts a failure like a queued delivery.
   */
  async post(url: string, event: LvqrEvent): Promise<string> {
    try {
      return await this.#post(url, JSON.stringify(event), event.type, true);
    } catch (error) {
      const failure = error instanceof WebhookError ? error : new WebhookError('network', errorMessage(error));
      this.#failed += 1;
      this.#options.onFailure?.(url, failure.reason);
      throw failure;
    }
  }

  /** Counters. */
  stats(): WebhookStats {
    return {
      queued: this.#queue.length + this.#waitingRetry,
      inFlight: this.#inFlight,
      delivered: this.#delivered,
      failed: this.#failed,
      dropped: this.#dropped,
    };
  }

  /** Stops sending: queued deliveries and pending retries are dropped. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#waitingRetry = 0;
  }

  #enqueue(delivery: Delivery): void {
    this.#queue.push(delivery);
    while (this.#queue.length + this.#waitingRetry > this.#options.maxQueued && this.#queue.length > 0) {
      const dropped = this.#queue.shift()!;
      this.#dropped += 1;
      this.#options.onFailure?.(dropped.url, 'queue_full');
      this.#options.logger.warn('webhook queue full: event dropped', {
        url: dropped.url,
        type: dropped.event.type,
        broadcast: dropped.event.broadcast,
      });
    }
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < this.#options.concurrency && this.#queue.length > 0) {
      const delivery = this.#queue.shift()!;
      this.#inFlight += 1;
      void this.#attempt(delivery).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
      });
    }
  }

  async #attempt(delivery: Delivery): Promise<void> {
    delivery.attempts += 1;
    try {
      await this.#post(delivery.url, delivery.body, delivery.event.type, false);
      this.#delivered += 1;
      return;
    } catch (error) {
      const failure = error instanceof WebhookError ? error : new WebhookError('network', errorMessage(error));
      this.#failed += 1;
      this.#options.onFailure?.(delivery.url, failure.reason);
      const { maxAttempts, retryBaseMs, retryMaxMs, logger } = this.#options;
      const fields = {
        url: delivery.url,
        type: delivery.event.type,
        broadcast: delivery.event.broadcast,
        attempt: delivery.attempts,
        error: failure.message,
      };
      if (this.#closed || delivery.attempts >= maxAttempts) {
        logger.warn('webhook delivery failed; giving up', fields);
        return;
      }
      const delayMs = backoffDelayMs(delivery.attempts, retryBaseMs, retryMaxMs);
      logger.warn('webhook delivery failed; retrying', { ...fields, delayMs });
      this.#waitingRetry += 1;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#waitingRetry -= 1;
        this.#enqueue(delivery);
        this.#pump();
      }, delayMs);
      this.#timers.add(timer);
    }
  }

  async #post(url: string, body: string, type: EventType, readBody: boolean): Promise<string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-lvqr-event': type };
    if (this.#options.secret !== undefined) headers[SIGNATURE_HEADER] = await signBody(this.#options.secret, body);
    const abort = new AbortController();
    const timeoutMs = this.#options.timeoutMs;
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      let response: Response;
      try {
        response = await this.#options.fetch(url, { method: 'POST', headers, body, signal: abort.signal });
      } catch (error) {
        if (abort.signal.aborted) throw new WebhookError('timeout', `no answer within ${timeoutMs} ms`);
        throw new WebhookError('network', errorMessage(error));
      }
      if (response.status < 200 || response.status > 299) {
        await response.body?.cancel().catch(() => undefined);
        throw new WebhookError('status', `the receiver answered ${response.status}`);
      }
      if (!readBody) {
        await response.body?.cancel().catch(() => undefined);
        return '';
      }
      try {
        return await readReply(response, this.#options.maxReplyBytes);
      } catch (error) {
        if (abort.signal.aborted) throw new WebhookError('timeout', `no complete answer within ${timeoutMs} ms`);
        throw error;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
