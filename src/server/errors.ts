/**
 * The HTTP side of the error catalogue: the JSON error body `{ error: { code, message } }` with the
 * status the catalogue gives each code, and the WebSocket close code (4000 + status).
 */

import { ERROR_CODES, type ErrorCode } from '../core/error-codes.ts';
import { LvqrError } from '../core/errors.ts';

/** The JSON error body every route uses. */
export type ErrorBody = { error: { code: ErrorCode; message: string } };

/** The HTTP status of every error code, read from the catalogue (`core/error-codes.ts`). */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = Object.fromEntries(
  Object.entries(ERROR_CODES).map(([code, { status }]) => [code, status]),
) as Record<ErrorCode, number>;

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
