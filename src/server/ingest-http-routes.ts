/**
 * HTTP ingest: `POST` / `PUT /ingest/<broadcast>` with an fMP4 body (chunked or whole, one
 * request per stream or per segment). The body is read as it arrives and pushed to the publisher
 * connection; the answer is a JSON summary, or the JSON error that ended the upload.
 */

import { type Context, Hono } from 'hono';
import { errorMessage, LvqrError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { IngestConnection } from '../ingest/index.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { errorResponse, jsonError } from './errors.ts';
import { IDLE_MESSAGE, INGEST_PREFIX, type IngestEnv, type OpenIngest, refusalResponse } from './ingest-gate.ts';
import { clientAddressOf, type HttpRuntime } from './runtime-adapter.ts';

/** What the HTTP ingest routes need. */
export type IngestHttpDeps = {
  open: OpenIngest;
  metrics: LvqrMetrics | undefined;
  logger: Logger;
  runtime: HttpRuntime | undefined;
};

/** How long a refused upload's remaining body is read (and dropped) before the answer goes out. */
const DISCARD_BODY_MS = 500;

/**
 * Reads and drops the rest of a refused request body for up to `DISCARD_BODY_MS`, then lets it go.
 * A publisher still sending when it is answered and disconnected gets a reset instead of the
 * answer; a body that ends within the window is fully read, so the answer always arrives. An
 * endless live upload is answered after the window (and its connection closed, see `ingestTargetGuard`).
 */
async function discardBody(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), DISCARD_BODY_MS);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === 'timeout' || next.done) break;
    }
  } catch {
    // The client went away: nothing left to read.
  } finally {
    clearTimeout(timer);
    try {
      reader.releaseLock();
    } catch {
      // A read still pending: the runtime closes the connection after the answer anyway.
    }
  }
}

/** The `POST` and `PUT /ingest/*` routes. */
export function ingestHttpRoutes(deps: IngestHttpDeps): Hono<IngestEnv> {
  const { metrics, logger } = deps;
  const ingestPost = async (c: Context<IngestEnv>): Promise<Response> => {
    const opened = await deps.open(c.req.path, c.req.header('authorization'), 'http', clientAddressOf(deps.runtime, c));
    if (!(opened instanceof IngestConnection)) {
      const unread = c.req.raw.body;
      if (unread !== null) await discardBody(unread.getReader());
      return refusalResponse(opened);
    }
    const connection = opened;
    const body = c.req.raw.body;
    if (body === null) {
      connection.end('eof');
      return Response.json({ broadcast: connection.broadcast, bytes: 0, fragments: 0 });
    }
    const reader = body.getReader();
    let idled = false;
    let shutdown = false;
    // Releasing the reader ends the pending read without cancelling the body: a cancel resets the
    // connection, and the publisher would never read the answer.
    connection.onIdle = () => {
      idled = true;
      reader.releaseLock();
    };
    connection.onShutdown = () => {
      shutdown = true;
      reader.releaseLock();
    };
    const shutdownResponse = () => jsonError('ingest.shutdown', 'the server is shutting down');
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || shutdown) break;
        if (value !== undefined && value.byteLength > 0) connection.push(value);
      }
    } catch (error) {
      if (shutdown) return shutdownResponse();
      if (error instanceof LvqrError) {
        connection.end('error');
        await discardBody(reader);
        metrics?.ingestRejected.inc({ code: error.code });
        logger.warn('ingest rejected', { broadcast: connection.broadcast, code: error.code, error: error.message });
        return errorResponse(error);
      }
      // The publisher went away mid-body.
      connection.end(idled ? 'idle' : 'disconnect');
      if (idled) return jsonError('ingest.idle_timeout', IDLE_MESSAGE);
      return jsonError('ingest.truncated', 'the request body ended abruptly');
    }
    if (idled) return jsonError('ingest.idle_timeout', IDLE_MESSAGE);
    if (shutdown) return shutdownResponse();
    try {
      // A body that stops inside a box is refused (nothing of the partial box is published).
      connection.finish();
    } catch (error) {
      connection.end('error');
      const code = error instanceof LvqrError ? error.code : 'internal';
      metrics?.ingestRejected.inc({ code });
      logger.warn('ingest rejected', { broadcast: connection.broadcast, code, error: errorMessage(error) });
      return errorResponse(error);
    }
    return Response.json({ broadcast: connection.broadcast, bytes: connection.bytes, fragments: connection.fragments });
  };

  const routes = new Hono<IngestEnv>();
  routes.post(`${INGEST_PREFIX}*`, (c) => ingestPost(c));
  routes.put(`${INGEST_PREFIX}*`, (c) => ingestPost(c));
  return routes;
}
