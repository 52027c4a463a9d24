/**
 * The HTTP side of the error catalogue: the status of every error code, the JSON error body
 * `{ error: { code, message } }` and the WebSocket close code (4000 + status).
 */

import type { ErrorCode } from '../core/error-codes.ts';
import { LvqrError } from '../core/errors.ts';

/** The JSON error body every route uses. */
export type ErrorBody = { error: { code: ErrorCode; message: string } };

/** The HTTP status of every error code; a code added to the catalogue without one fails to compile. */
export const HTTP_STATUS = {
  'ingest.malformed_box': 400,
  'ingest.box_too_large': 413,
  'ingest.truncated': 400,
  'ingest.no_init': 400,
  'ingest.mdat_without_moof': 400,
  'ingest.no_tracks': 400,
  'ingest.bad_sample_table': 400,
  'ingest.timestamp_regression': 400,
  'ingest.message_too_large': 413,
  'ingest.text_message': 415,
  'ingest.already_publishing': 409,
  'ingest.bad_name': 400,
  'ingest.limit': 429,
  'ingest.client_limit': 429,
  'ingest.unauthorized': 401,
  'ingest.forbidden': 403,
  'ingest.idle_timeout': 408,
  'ingest.shutdown': 503,
  'ingest.upgrade_required': 426,
  'ingest.no_websocket': 501,
  'ingest.bad_handshake': 400,
  'hls.not_found': 404,
  'hls.bad_request': 400,
  'hls.unavailable': 503,
  // Not sent (the client has gone): what access logs and metrics record.
  'hls.aborted': 499,
  'hls.too_many_held_requests': 429,
  'codec.unsupported': 415,
  'codec.config': 500,
  'codec.encode_failed': 500,
  'codec.decode_failed': 500,
  'codec.closed': 500,
  'transcode.timeout': 500,
  'transcode.overload': 500,
  'rendition.invalid': 400,
  'config.invalid': 400,
  not_found: 404,
  internal: 500,
} as const satisfies Record<ErrorCode, number>;

/** HTTP status for an error code (500 for anything outside the catalogue). */
export function statusFor(code: string): number {
  return Object.hasOwn(HTTP_STATUS, code) ? HTTP_STATUS[code as ErrorCode] : 500;
}

/** Status and body for any thrown value; internals never leak a stack trace. */
export function toErrorResponse(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof LvqrError) {
    return { status: statusFor(error.code), body: { error: { code: error.code, message: error.message } } };
  }
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}

/** A JSON error body for `code` and `message`. */
export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** A JSON error response for `code` (its status from `HTTP_STATUS`) and `message`. */
export function jsonError(code: ErrorCode, message: string): Response {
  return new Response(JSON.stringify(errorBody(code, message)), { status: HTTP_STATUS[code], headers: JSON_HEADERS });
}

/** The JSON error response for any thrown value (see `toErrorResponse`). */
export function errorResponse(error: unknown): Response {
  const { status, body } = toErrorResponse(error);
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

/** WebSocket close code for an error code: 4000 + its HTTP status (e.g. 4400, 4409, 4413). */
export function wsCloseCode(code: ErrorCode): number {
  return 4000 + HTTP_STATUS[code];
}

/** WebSocket close code for an error: 4000 + its HTTP status (e.g. 4400, 4409, 4413). */
export function wsCloseCodeFor(error: unknown): number {
  return 4000 + toErrorResponse(error).status;
}
