import { describe, expect, it } from 'vitest';
import { parseCommand, parseServe, USAGE } from '../../src/server/config.ts';
import { SERVE_OPTIONS } from '../../src/server/serve-options.ts';
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
      { LVQR_MAX_HELD_PER_CLIENT: '7', LVQR_INGEST_IDLE_TIMEOUT: '0', LVQR_MALLOC_TRIM: '0' },
      () => '',
    );
    expect(config).toMatchObject({
      maxPublishersPerClient: 3,
      maxHeldRequestsPerClient: 7,
      ingestGraceMs: 2000,
      ingestIdleTimeoutMs: 0,
      mallocTrimEveryMs: 0,
    });
    expect(() => parseServe(['--max-held-per-client', '0'], {}, () => '')).toThrow(/--max-held-per-client/);
    expect(
      parseServe(
        ['--header-timeout', '2.5', '--max-connections-per-client', '9'],
        { LVQR_SEND_TIMEOUT: '45' },
        () => '',
      ),
    ).toMatchObject({ headerTimeoutMs: 2500, sendTimeoutMs: 45_000, maxConnectionsPerClient: 9 });
  });

  it('the usage text lists every serve option from the table with its default and environment variables, each under its own flag', () => {
    const block = (flag: string) => {
      const start = USAGE.indexOf(`  --${flag} `);
      const next = USAGE.slice(start + 1).search(/\n {2}--|\n$/);
      return USAGE.slice(start, start + 1 + next);
    };
    for (const [name, option] of Object.entries(SERVE_OPTIONS)) {
      const text = block(name).replace(/\s+/g, ' ');
      expect(text, name).toContain(`--${name} ${option.value}`);
      expect(text, name).toContain(`[${option.env.join(', ')}]`);
      if ('default' in option) expect(text, name).toContain(`(default ${option.default})`);
    }
    expect(block('transcode-encoder')).toContain('[LVQR_TRANSCODE_ENCODER]');
    expect(block('transcode-overload')).not.toContain('LVQR_TRANSCODE_ENCODER');
    for (const line of USAGE.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('--test-pattern-size takes even WxH sizes and refuses others', () => {
    expect(parseServe([], {}, () => '').testPatternSize).toEqual({ width: 1280, height: 720 });
    expect(parseServe(['--test-pattern-size', '640x360'], {}, () => '').testPatternSize).toEqual({
      width: 640,
      height: 360,
    });
    for (const bad of ['640', '641x360', '8x8', '640x360x2', '7680x4320']) {
      expect(() => parseServe(['--test-pattern-size', bad], {}, () => ''), bad).toThrow(/--test-pattern-size/);
    }
  });

  it('defaults come from the table; flags win over the environment, the last flag wins, empty variables are skipped', () => {
    const config = parseServe([], {}, () => '');
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      encoder: 'software',
      transcodeBackend: 'auto',
      chromiumPath: '/usr/bin/chromium',
      sourceBandwidthKbps: undefined,
      hlsTargetDurationMs: 2000,
      hlsPartTargetMs: 200,
      hlsDvrWindowMs: 120_000,
      ingestToken: undefined,
      playbackSecret: undefined,
      maxPublishersPerClient: 16,
      maxHeldRequestsPerClient: 100,
      ingestGraceMs: 5000,
      ingestIdleTimeoutMs: 15_000,
      mallocTrimEveryMs: 60_000,
      maxConnectionsPerClient: 128,
      headerTimeoutMs: 10_000,
      sendTimeoutMs: 30_000,
      testPattern: 'live/demo',
      logLevel: 'info',
    });
    expect(config.ladder.map((r) => r.name)).toEqual(['720p', '480p', '240p']);
    expect(parseServe([], { PORT: '', LVQR_PORT: '7001' }, () => '').port).toBe(7001);
    expect(parseServe(['--port=9001', '--port', '9002'], { PORT: '7000' }, () => '').port).toBe(9002);
    expect(parseServe(['--ingest-token', '-starts-with-a-dash'], {}, () => '').ingestToken).toBe('-starts-with-a-dash');
    expect(parseServe([], { LVQR_PLAYBACK_SECRET: 'k' }, () => '').playbackSecret).toBe('k');
    expect(parseServe(['--playback-secret', 'f'], { LVQR_PLAYBACK_SECRET: 'k' }, () => '').playbackSecret).toBe('f');
    const ladder = parseServe(['--transcode-rendition', '720p', '--transcode-rendition', '240p'], {}, () => '').ladder;
    expect(ladder.map((r) => r.name)).toEqual(['720p', '240p']);
    expect(parseServe([], { LVQR_TRANSCODE_RENDITION: 'off' }, () => '').ladder).toEqual([]);
    expect(parseServe(['--transcode-encoder', 'X264'], {}, () => '').encoder).toBe('software');
    expect(parseServe([], { LVQR_TEST_PATTERN: 'none' }, () => '').testPattern).toBeUndefined();
    expect(parseServe(['--transcode-backend', 'Chromium'], {}, () => '').transcodeBackend).toBe('chromium');
    expect(parseServe([], { LVQR_TRANSCODE_BACKEND: 'napi' }, () => '').transcodeBackend).toBe('napi');
    expect(parseServe([], { LVQR_CHROMIUM: '/opt/chrome' }, () => '').chromiumPath).toBe('/opt/chrome');
  });

  it('a bad command line is refused with config.invalid and a message naming the flag', () => {
    const refused = (argv: string[]) => {
      try {
        parseCommand(argv, {}, () => '');
      } catch (error) {
        expect(error).toMatchObject({ code: 'config.invalid' });
        return (error as Error).message;
      }
      throw new Error(`${argv.join(' ')} was accepted`);
    };
    expect(refused(['serve', '--port'])).toBe('--port needs a value');
    expect(refused(['serve', '--port='])).toBe('--port needs a value');
    expect(refused(['serve', '--port', '70000'])).toBe('--port must be a number between 0 and 65535, got "70000"');
    expect(refused(['serve', '--bogus', 'x'])).toBe('unknown option --bogus (see --help)');
    expect(refused(['serve', '-p', '3'])).toBe('unknown option -p (see --help)');
    expect(refused(['serve', 'extra'])).toBe('unexpected argument "extra"');
    expect(refused(['serve', '--transcode-encoder', 'gpu'])).toBe(
      '--transcode-encoder must be software, prefer-hardware or hardware-only, got "gpu"',
    );
    expect(refused(['serve', '--transcode-backend', 'gpu'])).toBe(
      '--transcode-backend must be napi, threads, chromium or auto, got "gpu"',
    );
    expect(refused(['serve', '--log-level', 'loud'])).toBe('--log-level must be debug, info, warn or error');
    expect(refused(['serve', '--hls-target-duration', '1', '--hls-part-target', '1000'])).toBe(
      '--hls-part-target must be shorter than --hls-target-duration',
    );
    expect(refused(['publish', 'a.mp4', 'http://x', '--bogus', '1'])).toBe('unknown option --bogus for publish');
    expect(refused(['publish', 'a.mp4', 'http://x', '--token'])).toBe('--token needs a value');
    expect(refused(['publish', 'a.mp4'])).toBe('publish needs <file.mp4> <url>');
    expect(refused(['nope'])).toBe('unknown command "nope" (serve, publish, bench, sign)');
    expect(refused(['sign'])).toBe('sign needs <broadcast> (the source broadcast name)');
    expect(refused(['sign', 'live/a'])).toBe('sign needs --secret S or LVQR_PLAYBACK_SECRET');
    expect(refused(['sign', 'live/a', '--secret', 's', '--ttl', '0'])).toBe(
      '--ttl must be a number between 1 and 315360000, got "0"',
    );
    expect(refused(['sign', 'live/a', '--secret', 's', '--base', 'example.com'])).toBe(
      '--base must be an http(s) URL, got "example.com"',
    );
    expect(parseCommand(['sign', 'live/a', '--base', 'http://h:1'], { LVQR_PLAYBACK_SECRET: 'k' }, () => '')).toEqual({
      kind: 'sign',
      broadcast: 'live/a',
      ttlS: 3600,
      secret: 'k',
      base: 'http://h:1',
    });
    expect(parseCommand(['publish', 'a.mp4', 'http://x', '--loop'], { LVQR_INGEST_TOKEN: 'E' }, () => '')).toEqual({
      kind: 'publish',
      file: 'a.mp4',
      url: 'http://x',
      loop: true,
      token: 'E',
    });
    expect(parseCommand(['serve', '--help'], {}, () => '')).toEqual({ kind: 'help', text: USAGE });
    expect(parseCommand(['serve', '-h'], {}, () => '')).toEqual({ kind: 'help', text: USAGE });
    // A value that starts with '-' is still the value; after '--' everything is an argument.
    expect(parseServe(['--log-level', 'warn', '--node-name', '-edge-1'], {}, () => '').nodeId).toBe('-edge-1:8080');
    expect(() => parseServe(['--', '--port', '1'], {}, () => '')).toThrow('unexpected argument "--port"');
  });
});
