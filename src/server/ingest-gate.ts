/**
 * The way into ingest shared by the HTTP and WebSocket ingest routes: broadcast name from the
 * path, bearer token, per-client publisher slots and the registry's own checks (name, 409, global
 * limit). A publisher either gets its `IngestConnection` or a `Refusal` saying why not.
 */

import type { Context, MiddlewareHandler } from 'hono';
import type { ErrorCode } from '../core/error-codes.ts';
import { LvqrError } from '../core/errors.ts';
import { type IngestConnection, type IngestManager, validateBroadcastName } from '../ingest/index.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import { PerClientLimit } from './client-limits.ts';
import { errorResponse, jsonError, toErrorResponse } from './errors.ts';
import type { HttpRuntime } from './runtime-adapter.ts';

/** The path prefix of every ingest route. */
export const INGEST_PREFIX = '/ingest/';

/** The message sent to a publisher that sent nothing for the idle timeout. */
export const IDLE_MESSAGE = 'no data received within the idle timeout';

/**
 * Why a publisher is not let in: answered as a JSON error over HTTP (the code's status), or on the
 * open WebSocket as that JSON message and close code 4000 + status.
 */
export type Refusal = { code: ErrorCode; message: string };

/** Hono variables the ingest routes share: the opened connection, or why the target was refused. */
export type IngestEnv = { Variables: { ingestConnection: IngestConnection; ingestRefusal: Refusal } };

/** Opens a publisher connection for a path under `INGEST_PREFIX`, or says why not. */
export type OpenIngest = (
  path: string,
  authorization: string | undefined,
  transport: 'http' | 'ws',
  client: string | undefined,
) => Promise<IngestConnection | Refusal>;

/**
 * Publish admission: asked after the token, name and per-client checks, before the broadcast is
 * taken; `undefined` lets the publisher in, a `Refusal` keeps it out. Must not throw.
 */
export type Admit = (
  broadcast: string,
  info: { transport: 'http' | 'ws'; client: string | undefined },
) => Promise<Refusal | undefined>;

/** What the ingest gate is built from. */
export type IngestGateDeps = {
  ingest: IngestManager | undefined;
  metrics: LvqrMetrics | undefined;
  /** Publisher connections one client address may hold at once. */
  maxPublishersPerClient: number;
  /** Publish admission (none: every publisher that passes the checks is let in). */
  admit?: Admit | undefined;
};

/** The refusal for any thrown value (its code and message; `internal` for anything untyped). */
export function refusalOf(error: unknown): Refusal {
  return toErrorResponse(error).body.error;
}

/** A refusal as a JSON error response. */
export function refusalResponse(r: Refusal): Response {
  return jsonError(r.code, r.message);
}

/** Whether the request asks for a WebSocket upgrade. */
export function isUpgrade(c: Context): boolean {
  return c.req.method === 'GET' && c.req.header('upgrade')?.toLowerCase() === 'websocket';
}

function broadcastFromPath(path: string): string {
  // Names are restricted to [A-Za-z0-9_-] segments: a target with percent escapes or dot segments
  // is refused on its raw form (see `ingestTargetGuard`).
  return path.slice(INGEST_PREFIX.length);
}

/**
 * Validates the name and token, takes a per-client slot, asks admission and opens the publisher
 * connection.
 */
export function createIngestGate(deps: IngestGateDeps): OpenIngest {
  const publishersByClient = new PerClientLimit(deps.maxPublishersPerClient);
  return async (path, authorization, transport, client) => {
    const ingest = deps.ingest;
    if (ingest === undefined) return { code: 'not_found', message: 'ingest is disabled' };
    const broadcast = broadcastFromPath(path);
    const auth = ingest.authorize(broadcast, authorization);
    const refuse = (code: ErrorCode, message: string): Refusal => {
      deps.metrics?.ingestRejected.inc({ code });
      return { code, message };
    };
    if (auth === 'missing') {
      return refuse('ingest.unauthorized', 'ingest needs a bearer token (Authorization: Bearer <token>)');
    }
    if (auth === 'wrong') return refuse('ingest.forbidden', 'the token is not valid for this broadcast');
    const release = publishersByClient.acquire(client);
    if (release === undefined) {
      return refuse(
        'ingest.client_limit',
        `this client already has ${deps.maxPublishersPerClient} publisher connections open (the per-client limit)`,
      );
    }
    try {
      if (deps.admit !== undefined) {
        validateBroadcastName(broadcast);
        const refusal = await deps.admit(broadcast, { transport, client });
        if (refusal !== undefined) {
          release();
          return refuse(refusal.code, refusal.message);
        }
      }
      const connection = ingest.open(broadcast, transport);
      connection.onEnded = release;
      return connection;
    } catch (error) {
      release();
      if (error instanceof LvqrError && error.code === 'ingest.bad_name') {
        deps.metrics?.ingestRejected.inc({ code: error.code });
      }
      return refusalOf(error);
    }
  };
}

/**
 * App-wide middleware for ingest targets. A target that URL normalisation changed (dot segments,
 * percent escapes) is a bad name, not another broadcast: refused over HTTP, or handed to the
 * upgrade route as `ingestRefusal` to be refused on the WebSocket. A refused upload is answered
 * with `connection: close`: it may be answered before its body is read to the end, and what is
 * left of the body would be read as the next request.
 */
export function ingestTargetGuard(deps: {
  metrics: LvqrMetrics | undefined;
  runtime: HttpRuntime | undefined;
}): MiddlewareHandler<IngestEnv> {
  const rawPathOf = (c: Context): string | undefined => {
    try {
      return deps.runtime?.rawTargetPath?.(c);
    } catch {
      return undefined;
    }
  };
  return async (c, next) => {
    const raw = rawPathOf(c);
    const ingest = (raw ?? c.req.path).startsWith(INGEST_PREFIX);
    let refused = false;
    if (ingest && raw !== undefined && raw !== c.req.path) {
      try {
        validateBroadcastName(broadcastFromPath(raw));
      } catch (error) {
        deps.metrics?.ingestRejected.inc({ code: 'ingest.bad_name' });
        if (isUpgrade(c)) {
          c.set('ingestRefusal', refusalOf(error));
        } else {
          c.res = errorResponse(error);
          refused = true;
        }
      }
    }
    if (!refused) await next();
    if (ingest && (c.req.method === 'POST' || c.req.method === 'PUT') && c.res.status >= 400) {
      c.res.headers.set('connection', 'close');
    }
  };
}
