import { describe, expect, it } from 'vitest';
import { parseServe } from '../../src/server/config.ts';
import { createService } from '../../src/server/service.ts';
import { realCodecs } from '../support/ladder.ts';

describe('serve configuration', () => {
  it('--transcode-overload (or LVQR_TRANSCODE_OVERLOAD) turns the overload policy off; anything but on/off is refused', async () => {
    expect(parseServe([], {}, () => '').overloadPolicy).toBe(true);
    expect(parseServe(['--transcode-overload', 'off'], {}, () => '').overloadPolicy).toBe(false);
    expect(parseServe([], { LVQR_TRANSCODE_OVERLOAD: 'OFF' }, () => '').overloadPolicy).toBe(false);
    expect(() => parseServe(['--transcode-overload', 'maybe'], {}, () => '')).toThrow(/on or off/);
    const codecs = await realCodecs();
    for (const [flag, expected] of [
      ['on', {}],
      ['off', false],
    ] as const) {
      const config = parseServe(['--test-pattern', 'off', '--transcode-overload', flag], {}, () => '');
      const service = createService({ config, codecs });
      try {
        expect(service.ladder?.options.overload).toEqual(expected);
      } finally {
        await service.close();
      }
    }
  });

  it('per-client limits and ingest timing come from flags or the environment', () => {
    const config = parseServe(
      ['--max-publishers-per-client', '3', '--ingest-grace', '2'],
      { LVQR_MAX_HELD_PER_CLIENT: '7', LVQR_INGEST_IDLE_TIMEOUT: '0' },
      () => '',
    );
    expect(config).toMatchObject({
      maxPublishersPerClient: 3,
      maxHeldRequestsPerClient: 7,
      ingestGraceMs: 2000,
      ingestIdleTimeoutMs: 0,
    });
    expect(() => parseServe(['--max-held-per-client', '0'], {}, () => '')).toThrow(/--max-held-per-client/);
  });
});
