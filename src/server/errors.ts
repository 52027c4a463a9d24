/** Maps library errors to HTTP statuses and the JSON error body `{ error: { code, message } }`. */

import { LvqrError } from '../core/errors.ts';

/** The JSON error body every route uses. */
export type ErrorBody = { error: { code: string; message: string } };

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  'ingest.malformed_box': 400,
  'ingest.truncated': 400,
  'ingest.no_init': 400,
  'ingest.mdat_without_moof': 400,
  'ingest.no_tracks': 400,
  'ingest.bad_sample_table': 400,
  'ingest.timestamp_regression': 400,
  'ingest.bad_name': 400,
  'ingest.box_too_large': 413,
  'ingest.message_too_large': 413,
  'ingest.text_message': 415,
  'ingest.already_publishing': 409,
  'ingest.limit': 429,
  'ingest.unauthorized': 401,
  'ingest.forbidden': 403,
  'ingest.idle_timeout': 408,
  'codec.unsupported': 415,
  'rendition.invalid': 400,
  'config.invalid': 400,
};

/** HTTP status for an error code (500 for anything unknown). */
export function statusFor(code: string): number {
  return STATUS_BY_CODE[code] ?? 500;
}

/** Status and body for any thrown value; internals never leak a stack trace. */
export function toErrorResponse(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof LvqrError) {
    return { status: statusFor(error.code), body: { error: { code: error.code, message: error.message } } };
  }
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}

/** A JSON error body for `code` and `message`. */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** A JSON error response with `status`, `code` and `message`. */
export function jsonError(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify(errorBody(code, message)), { status, headers: JSON_HEADERS });
}

/** The JSON error response for any thrown value (see `toErrorResponse`). */
export function errorResponse(error: unknown): Response {
  const { status, body } = toErrorResponse(error);
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

/** WebSocket close code for an error: 4000 + its HTTP status (e.g. 4400, 4409, 4413). */
export function wsCloseCodeFor(error: unknown): number {
  return 4000 + toErrorResponse(error).status;
}
