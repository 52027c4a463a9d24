/**
 * `--transcode-backend`: `auto` takes the runtime's own WebCodecs when it has complete ones (here:
 * the addon's classes installed as globals, as a runtime with WebCodecs would have them), `napi`
 * takes the addon even then, `chromium` runs the codecs in Chromium (test/chromium).
 */

import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { loadVideoCodecs } from '../../src/runtime/shared.ts';
import { parseServe } from '../../src/server/config.ts';

const NAMES = ['VideoDecoder', 'VideoEncoder', 'VideoFrame', 'EncodedVideoChunk'] as const;
const globals = globalThis as Record<string, unknown>;

describe('--transcode-backend auto | napi', () => {
  afterEach(() => {
    for (const name of NAMES) delete globals[name];
  });

  it('auto takes complete global WebCodecs; napi takes the addon even then; without globals auto is napi', async () => {
    const load = (backend: string) =>
      loadVideoCodecs(
        parseServe(['--transcode-backend', backend], {}, () => ''),
        silentLogger,
      );
    expect((await load('auto')).info?.['provider']).toBe('napi');
    const addon = (await import('@napi-rs/webcodecs')) as unknown as Record<string, unknown>;
    for (const name of NAMES) globals[name] = addon[name];
    const auto = await load('auto');
    expect(auto.info?.['provider']).toBe('global');
    expect(auto.codecs?.backend).toBe('software');
    expect((await load('napi')).info?.['provider']).toBe('napi');
  });
});
