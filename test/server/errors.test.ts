import { describe, expect, expectTypeOf, it } from 'vitest';
import { ERROR_CODES, type ErrorCode, isErrorCode, LvqrError } from '../../src/core/errors.ts';
import type { HlsErrorCode } from '../../src/hls/index.ts';
import {
  errorResponse,
  HTTP_STATUS,
  jsonError,
  statusFor,
  wsCloseCode,
  wsCloseCodeFor,
} from '../../src/server/errors.ts';

describe('error catalogue', () => {
  it('every catalogued code has exactly one HTTP status, a 4xx or 5xx, and nothing else has one', () => {
    expect(Object.keys(HTTP_STATUS).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, status] of Object.entries(HTTP_STATUS)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      expect(ERROR_CODES[code as ErrorCode].meaning.length, code).toBeGreaterThan(0);
      expect(ERROR_CODES[code as ErrorCode].status, code).toBe(status);
    }
    expectTypeOf<HlsErrorCode>().toExtend<ErrorCode>();
  });

  it('statuses, bodies and WebSocket close codes come from the table; anything untyped is a 500 internal error', async () => {
    expect(statusFor('ingest.already_publishing')).toBe(409);
    expect(statusFor('no.such_code')).toBe(500);
    expect(statusFor('toString')).toBe(500);
    expect(isErrorCode('hls.aborted')).toBe(true);
    expect(isErrorCode('constructor')).toBe(false);
    const limited = jsonError('ingest.client_limit', 'too many');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await limited.json()).toEqual({ error: { code: 'ingest.client_limit', message: 'too many' } });
    expect(wsCloseCode('ingest.idle_timeout')).toBe(4408);
    expect(wsCloseCodeFor(new LvqrError('ingest.box_too_large', 'big'))).toBe(4413);
    const hidden = errorResponse(new Error('secret path /etc'));
    expect(hidden.status).toBe(500);
    expect(await hidden.json()).toEqual({ error: { code: 'internal', message: 'internal error' } });
  });
});
