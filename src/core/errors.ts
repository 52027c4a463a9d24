/**
 * One error base class with stable string codes. Callers branch on `code`, never on message text.
 * The codes are catalogued in `error-codes.ts`; HTTP status mapping lives in `server/` only.
 */

import type { ErrorCode } from './error-codes.ts';

export { ERROR_CODES, type ErrorCode, isErrorCode } from './error-codes.ts';

/** Stable machine-readable error codes: the catalogue in `error-codes.ts`. */
export type LvqrErrorCode = ErrorCode;

/** Base of every error this library throws on purpose. */
export class LvqrError extends Error {
  readonly code: LvqrErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: LvqrErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LvqrError';
    this.code = code;
    this.details = options?.details;
  }

  /** JSON shape used by HTTP error bodies: no stack, no cause. */
  toJSON(): { code: LvqrErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Malformed or unsupported ingest bytes (the container parser's only error type). */
export class ContainerError extends LvqrError {
  constructor(code: LvqrErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
    this.name = 'ContainerError';
  }
}

/** A codec could not be configured, or failed while encoding or decoding. */
export class CodecError extends LvqrError {
  constructor(code: LvqrErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
    this.name = 'CodecError';
  }
}

/** A rendition spec or ladder file failed validation. */
export class RenditionError extends LvqrError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('rendition.invalid', message, options);
    this.name = 'RenditionError';
  }
}

/** Builds the TypeError used for bad arguments: names the argument, what was expected and what came. */
export function argumentError(name: string, expected: string, got: unknown): TypeError {
  let shown: string;
  try {
    shown = typeof got === 'string' ? JSON.stringify(got) : String(got);
  } catch {
    shown = typeof got;
  }
  return new TypeError(`${name}: expected ${expected}, got ${shown}`);
}

/** Invariant check: throws an `internal` LvqrError when `condition` is false. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new LvqrError('internal', `assertion failed: ${message}`);
}

/** Message of any thrown value, for logs and stats. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
