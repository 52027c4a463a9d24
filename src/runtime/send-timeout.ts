/**
 * Send timeouts for answers, shared by the runtime files: a large body is handed to the runtime in
 * 64 KiB slices, so what the client has taken is visible slice by slice, and (Bun, Deno) the body
 * fails when the runtime asks for no slice for the send timeout. A runtime asks for the next slice
 * only once the previous one is on its way to the socket, so a client that stops reading stops the
 * asking; the failed body makes the runtime drop the connection and the answer's bytes with it.
 */

import type { ConnectionLimits } from '../server/main.ts';

/** Connection limits when the caller gives none: the CLI's defaults, no per-client cap. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxPerClient: Number.POSITIVE_INFINITY,
  headerTimeoutMs: 10_000,
  sendTimeoutMs: 30_000,
};

/** The largest slice handed to the runtime at once; bodies up to this size are passed through whole. */
export const SLICE_BYTES = 64 * 1024;

/** Why a body failed: the client took nothing for the send timeout. */
export class SendTimeoutError extends Error {
  override readonly name = 'SendTimeoutError';
}

/**
 * `response` with its body in slices of at most `SLICE_BYTES`; with `timeoutMs`, the body fails
 * when the runtime has not asked for the next slice for that long. Only bodies whose
 * Content-Length exceeds one slice (HLS media); others are returned as they are.
 */
export function slicedBody(response: Response, timeoutMs?: number): Response {
  const source = response.body;
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  // Only bodies known to be larger than a slice: the rest (JSON, playlists, pages: no length set)
  // go out as they are, with their length, not as a chunked stream.
  if (source === null || !(length > SLICE_BYTES)) return response;
  const reader = source.getReader();
  let pending = new Uint8Array(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let arm: () => void = () => {};
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (timeoutMs === undefined) return;
        arm = () => {
          timer = setTimeout(() => {
            const error = new SendTimeoutError(`the client took no bytes for ${timeoutMs} ms`);
            controller.error(error);
            reader.cancel(error).catch(() => {});
          }, timeoutMs);
        };
        arm();
      },
      async pull(controller) {
        clearTimeout(timer);
        if (pending.byteLength === 0) {
          const next = await reader.read();
          if (next.done) {
            controller.close();
            return;
          }
          pending = next.value;
        }
        controller.enqueue(pending.subarray(0, SLICE_BYTES));
        pending = pending.subarray(SLICE_BYTES);
        arm();
      },
      cancel(reason) {
        clearTimeout(timer);
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/**
 * `fetch` whose answers go out through `slicedBody` (anything that is not a `Response`, such as
 * Bun's answer to a WebSocket upgrade, is passed on as it is).
 */
export function withSlicedBodies<E>(
  fetch: (request: Request, env: E) => Response | Promise<Response>,
  timeoutMs?: number,
): (request: Request, env: E) => Promise<Response> {
  return async (request, env) => {
    const response = await fetch(request, env);
    return response instanceof Response ? slicedBody(response, timeoutMs) : response;
  };
}
