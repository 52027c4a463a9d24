/**
 * CLI flags and environment variables -> service configuration. LVQR's flag and env names are
 * kept (`--transcode-rendition` / `LVQR_TRANSCODE_RENDITION`, ...). Runtime-free: the runtime file
 * passes argv, env and a file reader.
 */

import { LvqrError } from '../core/errors.ts';
import type { LogLevel } from '../core/log.ts';
import { defaultLadder, type RenditionSpec, resolveLadderArgs } from '../transcode/rendition.ts';

/** Encoder policy for the ladder. */
export type EncoderPolicy = 'software' | 'prefer-hardware' | 'hardware-only';

/** Everything `serve` needs. */
export type ServeConfig = {
  port: number;
  host: string;
  ladder: RenditionSpec[];
  encoder: EncoderPolicy;
  /** Whether the overload policy may shed and pause rungs (off: rungs fall behind and drop GOPs on their own). */
  overloadPolicy: boolean;
  sourceBandwidthKbps: number | undefined;
  hlsTargetDurationMs: number;
  hlsPartTargetMs: number;
  hlsDvrWindowMs: number;
  ingestToken: string | undefined;
  /** Publisher connections one client address may have open at once. */
  maxPublishersPerClient: number;
  /** LL-HLS blocking playlist requests one client address may have waiting at once. */
  maxHeldRequestsPerClient: number;
  /** How long a broadcast outlives its publisher, waiting for a reconnect. */
  ingestGraceMs: number;
  /** A publisher that sends nothing for this long is closed (0 = never). */
  ingestIdleTimeoutMs: number;
  /** Broadcast name of the built-in test pattern, or undefined when off. */
  testPattern: string | undefined;
  logLevel: LogLevel;
};

/** A parsed command line. */
export type Command =
  | { kind: 'serve'; config: ServeConfig }
  | { kind: 'publish'; file: string; url: string; loop: boolean; token: string | undefined }
  | { kind: 'bench'; ladder: RenditionSpec[]; maxSources: number; seconds: number }
  | { kind: 'help'; text: string }
  | { kind: 'version' };

/** Usage text. */
export const USAGE = `lvqr-transcode - live fMP4 in, H.264 ABR ladder + LL-HLS out

Usage:
  lvqr-transcode serve [options]
  lvqr-transcode publish <file.mp4> <url> [--loop] [--token T]
  lvqr-transcode bench [--transcode-rendition ...] [--max-sources N] [--seconds S]

serve options (env var in brackets):
  --port N                        HTTP port (default 8080) [PORT, LVQR_PORT]
  --host H                        bind address (default 0.0.0.0) [LVQR_HOST]
  --transcode-rendition LIST      720p,480p,240p or .toml files; repeatable; "none" for no ladder
                                  (default 720p,480p,240p) [LVQR_TRANSCODE_RENDITION]
  --transcode-encoder P           software | prefer-hardware | hardware-only (default software)
  --transcode-overload on|off     shed and pause the lowest rungs when the ladder cannot keep
                                  realtime (default on) [LVQR_TRANSCODE_OVERLOAD]
                                  [LVQR_TRANSCODE_ENCODER]
  --source-bandwidth-kbps N       BANDWIDTH advertised for the source variant (default: measured)
                                  [LVQR_SOURCE_BANDWIDTH_KBPS]
  --hls-target-duration S         segment target in seconds (default 2) [LVQR_HLS_TARGET_DURATION]
  --hls-part-target MS            part target in milliseconds (default 200) [LVQR_HLS_PART_TARGET]
  --hls-dvr-window S              sliding window in seconds (default 120) [LVQR_HLS_DVR_WINDOW]
  --ingest-token T                bearer token required to publish [LVQR_INGEST_TOKEN]
  --ingest-grace S                how long a broadcast waits for its publisher to reconnect
                                  (default 5) [LVQR_INGEST_GRACE]
  --ingest-idle-timeout S         close a publisher that sends nothing for S seconds; 0 = never
                                  (default 15) [LVQR_INGEST_IDLE_TIMEOUT]
  --max-publishers-per-client N   publisher connections one client address may have open
                                  (default 16) [LVQR_MAX_PUBLISHERS_PER_CLIENT]
  --max-held-per-client N         LL-HLS blocking requests one client address may have waiting
                                  (default 100) [LVQR_MAX_HELD_PER_CLIENT]
  --test-pattern NAME|off         built-in 1280x720 30 fps test source (default live/demo)
                                  [LVQR_TEST_PATTERN]
  --log-level L                   debug | info | warn | error (default info) [LVQR_LOG_LEVEL]
`;

function fail(message: string): never {
  throw new LvqrError('config.invalid', message);
}

function number(flag: string, value: string | undefined, { min, max }: { min: number; max: number }): number {
  if (value === undefined || value.trim() === '') fail(`${flag} needs a value`);
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max)
    fail(`${flag} must be a number between ${min} and ${max}, got ${JSON.stringify(value)}`);
  return n;
}

type Flags = { values: Map<string, string[]>; positional: string[]; booleans: Set<string> };

const BOOLEAN_FLAGS = new Set(['--loop', '--help', '-h', '--version']);

function splitFlags(argv: readonly string[]): Flags {
  const values = new Map<string, string[]>();
  const positional: string[] = [];
  const booleans = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    if (BOOLEAN_FLAGS.has(arg)) {
      booleans.add(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) fail(`${name} needs a value`);
      i += 1;
    }
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  return { values, positional, booleans };
}

const SERVE_FLAGS = new Set([
  '--port',
  '--host',
  '--transcode-rendition',
  '--transcode-encoder',
  '--transcode-overload',
  '--source-bandwidth-kbps',
  '--hls-target-duration',
  '--hls-part-target',
  '--hls-dvr-window',
  '--ingest-token',
  '--max-publishers-per-client',
  '--max-held-per-client',
  '--ingest-grace',
  '--ingest-idle-timeout',
  '--test-pattern',
  '--log-level',
]);

/** Parses `serve` flags over env defaults. */
export function parseServe(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): ServeConfig {
  const flags = splitFlags(argv);
  for (const name of flags.values.keys()) {
    if (!SERVE_FLAGS.has(name)) fail(`unknown option ${name} (see --help)`);
  }
  if (flags.positional.length > 0) fail(`unexpected argument ${JSON.stringify(flags.positional[0])}`);
  const last = (flag: string, ...envNames: string[]): string | undefined => {
    const v = flags.values.get(flag);
    if (v !== undefined) return v.at(-1);
    for (const e of envNames) if (env[e] !== undefined && env[e] !== '') return env[e];
    return undefined;
  };

  const renditionValues =
    flags.values.get('--transcode-rendition') ??
    (env['LVQR_TRANSCODE_RENDITION'] ? [env['LVQR_TRANSCODE_RENDITION']] : undefined);
  let ladder: RenditionSpec[];
  if (renditionValues === undefined) ladder = defaultLadder();
  else if (renditionValues.length === 1 && ['none', 'off', ''].includes(renditionValues[0]!.trim())) ladder = [];
  else ladder = resolveLadderArgs(renditionValues, readFile);

  const encoderRaw = (last('--transcode-encoder', 'LVQR_TRANSCODE_ENCODER') ?? 'software').toLowerCase();
  const encoderAliases: Record<string, EncoderPolicy> = {
    software: 'software',
    x264: 'software',
    'prefer-hardware': 'prefer-hardware',
    hardware: 'prefer-hardware',
    'hardware-only': 'hardware-only',
  };
  const encoder = encoderAliases[encoderRaw];
  if (encoder === undefined) {
    fail(`--transcode-encoder must be software, prefer-hardware or hardware-only, got ${JSON.stringify(encoderRaw)}`);
  }

  const overloadRaw = (last('--transcode-overload', 'LVQR_TRANSCODE_OVERLOAD') ?? 'on').toLowerCase();
  if (!['on', 'off'].includes(overloadRaw)) {
    fail(`--transcode-overload must be on or off, got ${JSON.stringify(overloadRaw)}`);
  }

  const bw = last('--source-bandwidth-kbps', 'LVQR_SOURCE_BANDWIDTH_KBPS');
  const pattern = last('--test-pattern', 'LVQR_TEST_PATTERN') ?? 'live/demo';
  const logLevel = (last('--log-level', 'LVQR_LOG_LEVEL') ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) fail(`--log-level must be debug, info, warn or error`);
  const partTargetMs = number('--hls-part-target', last('--hls-part-target', 'LVQR_HLS_PART_TARGET') ?? '200', {
    min: 50,
    max: 5000,
  });
  const targetDurationS = number(
    '--hls-target-duration',
    last('--hls-target-duration', 'LVQR_HLS_TARGET_DURATION') ?? '2',
    { min: 0.5, max: 30 },
  );
  if (partTargetMs >= targetDurationS * 1000) fail('--hls-part-target must be shorter than --hls-target-duration');

  return {
    port: number('--port', last('--port', 'PORT', 'LVQR_PORT') ?? '8080', { min: 0, max: 65535 }),
    host: last('--host', 'LVQR_HOST') ?? '0.0.0.0',
    ladder,
    encoder,
    overloadPolicy: overloadRaw === 'on',
    sourceBandwidthKbps: bw === undefined ? undefined : number('--source-bandwidth-kbps', bw, { min: 1, max: 1e6 }),
    hlsTargetDurationMs: Math.round(targetDurationS * 1000),
    hlsPartTargetMs: Math.round(partTargetMs),
    hlsDvrWindowMs: Math.round(
      number('--hls-dvr-window', last('--hls-dvr-window', 'LVQR_HLS_DVR_WINDOW') ?? '120', { min: 6, max: 86_400 }) *
        1000,
    ),
    ingestToken: last('--ingest-token', 'LVQR_INGEST_TOKEN'),
    maxPublishersPerClient: number(
      '--max-publishers-per-client',
      last('--max-publishers-per-client', 'LVQR_MAX_PUBLISHERS_PER_CLIENT') ?? '16',
      { min: 1, max: 100_000 },
    ),
    maxHeldRequestsPerClient: number(
      '--max-held-per-client',
      last('--max-held-per-client', 'LVQR_MAX_HELD_PER_CLIENT') ?? '100',
      { min: 1, max: 1_000_000 },
    ),
    ingestGraceMs: Math.round(
      number('--ingest-grace', last('--ingest-grace', 'LVQR_INGEST_GRACE') ?? '5', { min: 0, max: 3600 }) * 1000,
    ),
    ingestIdleTimeoutMs: Math.round(
      number('--ingest-idle-timeout', last('--ingest-idle-timeout', 'LVQR_INGEST_IDLE_TIMEOUT') ?? '15', {
        min: 0,
        max: 3600,
      }) * 1000,
    ),
    testPattern: ['off', 'none', 'false', ''].includes(pattern) ? undefined : pattern,
    logLevel,
  };
}

/** Parses a whole command line (without the runtime and script). */
export function parseCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): Command {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') return { kind: 'help', text: USAGE };
  if (sub === '--version') return { kind: 'version' };
  if (rest.includes('--help') || rest.includes('-h')) return { kind: 'help', text: USAGE };
  if (sub === 'serve') return { kind: 'serve', config: parseServe(rest, env, readFile) };
  if (sub === 'publish') {
    const flags = splitFlags(rest);
    for (const name of flags.values.keys()) if (name !== '--token') fail(`unknown option ${name} for publish`);
    const [file, url] = flags.positional;
    if (file === undefined || url === undefined) fail('publish needs <file.mp4> <url>');
    return {
      kind: 'publish',
      file,
      url,
      loop: flags.booleans.has('--loop'),
      token: flags.values.get('--token')?.at(-1) ?? env['LVQR_INGEST_TOKEN'],
    };
  }
  if (sub === 'bench') {
    const flags = splitFlags(rest);
    const r = flags.values.get('--transcode-rendition');
    return {
      kind: 'bench',
      ladder: r === undefined ? defaultLadder() : resolveLadderArgs(r, readFile),
      maxSources: number('--max-sources', flags.values.get('--max-sources')?.at(-1) ?? '8', { min: 1, max: 64 }),
      seconds: number('--seconds', flags.values.get('--seconds')?.at(-1) ?? '10', { min: 2, max: 600 }),
    };
  }
  fail(`unknown command ${JSON.stringify(sub)} (serve, publish, bench)`);
}
