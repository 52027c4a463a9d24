/**
 * CLI flags and environment variables -> service configuration. LVQR's flag and env names are
 * kept (`--transcode-rendition` / `LVQR_TRANSCODE_RENDITION`, ...). Runtime-free: the runtime file
 * passes argv, env and a file reader.
 */

import { LvqrError } from '../core/errors.ts';
import type { LogLevel } from '../core/log.ts';
import { validateBroadcastName } from '../ingest/names.ts';
import { defaultLadder, type RenditionSpec, resolveLadderArgs } from '../transcode/rendition.ts';
import type { WebhookConfig } from './event-wiring.ts';
import { SERVE_OPTIONS, type ServeOption, type ServeOptionName, serveOptionsUsage } from './serve-options.ts';

/** Encoder policy for the ladder. */
export type EncoderPolicy = 'software' | 'prefer-hardware' | 'hardware-only';

/** Where the ladder's decoders and encoders run (README "Backends"). */
export type TranscodeBackend = 'napi' | 'threads' | 'chromium' | 'auto';

/** Whether `value` names a backend. */
export function isTranscodeBackend(value: string): value is TranscodeBackend {
  return value === 'napi' || value === 'threads' || value === 'chromium' || value === 'auto';
}

/** Who scales the rungs: the frame scaler (`quality`) or each encoder with its own bilinear filter. */
export type ScalerMode = 'quality' | 'encoder';

/** What happens to the source audio: copied as it is, or transcoded by the audio ladder as well. */
export type AudioMode = 'passthrough' | 'ladder';

/** A part of the service a node runs: publishers in, ladders, or LL-HLS out with the APIs. */
export type Role = 'ingest' | 'transcode' | 'edge';

/** Every role, in the order `--role all` stands for. */
export const ROLES: readonly Role[] = ['ingest', 'transcode', 'edge'];

/** Everything `serve` needs. */
export type ServeConfig = {
  /** The roles this node runs (all three: the single process). */
  roles: readonly Role[];
  /** NATS servers of the cluster; empty: no cluster (only with every role). */
  natsUrls: readonly string[];
  /** This node's name in the cluster (default: host name and port). */
  nodeId: string;
  /** Sources whose ladder this node takes on at most, in a cluster. */
  maxSources: number;
  /** An edge of a cluster lets a broadcast go after this long without a request for it. */
  edgeIdleMs: number;
  port: number;
  host: string;
  ladder: RenditionSpec[];
  encoder: EncoderPolicy;
  /** The codec backend asked for. */
  transcodeBackend: TranscodeBackend;
  /** The Chromium binary of the `chromium` backend. */
  chromiumPath: string;
  /** Who scales the rungs of the napi backend (README "Backends"). */
  scaler: ScalerMode;
  /** Whether the overload policy may shed and pause rungs (off: rungs fall behind and drop GOPs on their own). */
  overloadPolicy: boolean;
  /** `passthrough`: every variant carries the source audio; `ladder`: the audio ladder runs too. */
  transcodeAudio: AudioMode;
  /** Bitrate of the audio ladder's Opus rendition, or undefined for none. */
  transcodeAudioOpusKbps: number | undefined;
  sourceBandwidthKbps: number | undefined;
  hlsTargetDurationMs: number;
  hlsPartTargetMs: number;
  hlsDvrWindowMs: number;
  ingestToken: string | undefined;
  /** Secret of playback tokens; undefined: playback is open. */
  playbackSecret: string | undefined;
  /** Event webhooks (no URL: no events). */
  webhooks: WebhookConfig;
  /** Bearer token of the admin API; the API is off without it. */
  adminToken: string | undefined;
  /** Publisher connections one client address may have open at once. */
  maxPublishersPerClient: number;
  /** LL-HLS blocking playlist requests one client address may have waiting at once. */
  maxHeldRequestsPerClient: number;
  /** Connections one client address may have open at once (enforced where the runtime allows). */
  maxConnectionsPerClient: number;
  /** A connection whose request head is not complete after this long is closed. */
  headerTimeoutMs: number;
  /** A client that takes no bytes of an answer for this long is closed. */
  sendTimeoutMs: number;
  /** How long a broadcast outlives its publisher, waiting for a reconnect. */
  ingestGraceMs: number;
  /** A publisher that sends nothing for this long is closed (0 = never). */
  ingestIdleTimeoutMs: number;
  /** Every this long glibc's free heap pages are given back (`malloc_trim`; 0 = never). */
  mallocTrimEveryMs: number;
  /** Broadcast name of the built-in test pattern, or undefined when off. */
  testPattern: string | undefined;
  /** Picture size of the test pattern. */
  testPatternSize: { width: number; height: number };
  logLevel: LogLevel;
};

/** A parsed command line. */
export type Command =
  | { kind: 'serve'; config: ServeConfig }
  | { kind: 'publish'; file: string; url: string; loop: boolean; token: string | undefined }
  | {
      kind: 'bench';
      ladder: RenditionSpec[];
      source: '720p' | '1080p';
      maxSources: number;
      seconds: number;
      scaler: ScalerMode;
      backend: TranscodeBackend;
    }
  | { kind: 'sign'; broadcast: string; ttlS: number; secret: string; base: string | undefined }
  | { kind: 'help'; text: string }
  | { kind: 'version' };

/** Usage text. */
export const USAGE = `lvqr-transcode - live fMP4 in, H.264 ABR ladder + LL-HLS out

Usage:
  lvqr-transcode serve [options]
  lvqr-transcode publish <file.mp4> <url> [--loop] [--token T]
  lvqr-transcode bench [--source 720p|1080p] [--max-sources N] [--seconds S]
                       [--transcode-rendition ...] [--transcode-scaler quality|encoder]
      publishes a synthetic 30 fps source over HTTP as 1, 2, ... live sources to the service on a
      loopback port and prints how many it sustains (default 720p, up to 8 sources, 10 s each)
  lvqr-transcode sign <broadcast> [--ttl S] [--secret S] [--base URL]
      prints exp=..&sig=.. for the broadcast (with --base: its signed master URL); the secret
      defaults to LVQR_PLAYBACK_SECRET, the ttl to 3600 s

serve options (env var in brackets):
${serveOptionsUsage()}
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

/** A command line split into flag values (by `--name`, every occurrence), positionals and switches. */
type Flags = { values: Map<string, string[]>; positional: string[]; booleans: Set<string>; unknown: string[] };

/** Switches every command accepts (and ignores where they mean nothing), with their short forms. */
const BOOLEAN_OPTIONS: ReadonlyMap<string, string> = new Map([
  ['--loop', '--loop'],
  ['--help', '--help'],
  ['-h', '--help'],
  ['--version', '--version'],
]);

/**
 * Splits `argv`: `valueFlags` take a value (`--name value` or `--name=value`; the next argument is
 * the value even when it starts with `-`); a value flag without one is refused at once. Options
 * not declared are listed in `unknown` for the command to refuse or ignore; after `--` every
 * argument is positional.
 */
function splitFlags(argv: readonly string[], valueFlags: readonly string[]): Flags {
  const takesValue = new Set(valueFlags.map((name) => `--${name}`));
  const flags: Flags = { values: new Map(), positional: [], booleans: new Set(), unknown: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      flags.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      flags.positional.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const boolean = BOOLEAN_OPTIONS.get(name);
    if (boolean !== undefined) {
      flags.booleans.add(boolean);
    } else if (!takesValue.has(name)) {
      flags.unknown.push(name);
    } else {
      const value: string | undefined = eq < 0 ? argv[i + 1] : arg.slice(eq + 1);
      if (eq < 0) i += 1;
      if (value === undefined) fail(`${name} needs a value`);
      flags.values.set(name, [...(flags.values.get(name) ?? []), value]);
    }
  }
  return flags;
}

const SERVE_FLAGS = Object.keys(SERVE_OPTIONS) as ServeOptionName[];

/** Parses `serve` flags over env defaults. */
export function parseServe(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): ServeConfig {
  const flags = splitFlags(argv, SERVE_FLAGS);
  const [unknown] = flags.unknown;
  if (unknown !== undefined) fail(`unknown option ${unknown} (see --help)`);
  if (flags.positional.length > 0) fail(`unexpected argument ${JSON.stringify(flags.positional[0])}`);
  /** Every value of the flag, else the first non-empty environment variable; undefined when neither is set. */
  const given = (name: ServeOptionName): string[] | undefined => {
    const v = flags.values.get(`--${name}`);
    if (v !== undefined) return v;
    for (const e of SERVE_OPTIONS[name].env) if (env[e] !== undefined && env[e] !== '') return [env[e]];
    return undefined;
  };
  /** The last value given, else the option's default. */
  const read = (name: ServeOptionName): string | undefined => {
    const option: ServeOption = SERVE_OPTIONS[name];
    return given(name)?.at(-1) ?? option.default;
  };
  /** A number option within its bounds; undefined when it has no value and no default. */
  const num = (name: ServeOptionName): number | undefined => {
    const option: ServeOption = SERVE_OPTIONS[name];
    const value = read(name);
    if (value === undefined) return undefined;
    return number(`--${name}`, value, { min: option.min ?? -Infinity, max: option.max ?? Infinity });
  };
  /** A number option that has a default. */
  const numOf = (name: ServeOptionName): number => num(name)!;

  const renditionValues = given('transcode-rendition');
  let ladder: RenditionSpec[];
  if (renditionValues === undefined) ladder = defaultLadder();
  else if (renditionValues.length === 1 && ['none', 'off', ''].includes(renditionValues[0]!.trim())) ladder = [];
  else ladder = resolveLadderArgs(renditionValues, readFile);

  const encoderRaw = read('transcode-encoder')!.toLowerCase();
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

  const backendRaw = read('transcode-backend')!.trim().toLowerCase();
  if (!isTranscodeBackend(backendRaw)) {
    fail(`--transcode-backend must be napi, threads, chromium or auto, got ${JSON.stringify(backendRaw)}`);
  }

  const scalerRaw = read('transcode-scaler')!.trim().toLowerCase();
  if (scalerRaw !== 'quality' && scalerRaw !== 'encoder') {
    fail(`--transcode-scaler must be quality or encoder, got ${JSON.stringify(scalerRaw)}`);
  }

  const overloadRaw = read('transcode-overload')!.toLowerCase();
  if (!['on', 'off'].includes(overloadRaw)) {
    fail(`--transcode-overload must be on or off, got ${JSON.stringify(overloadRaw)}`);
  }

  const webhooks = parseWebhooks(given('webhook-url') ?? [], read);
  const audioRaw = read('transcode-audio')!.toLowerCase();
  if (audioRaw !== 'passthrough' && audioRaw !== 'ladder') {
    fail(`--transcode-audio must be passthrough or ladder, got ${JSON.stringify(audioRaw)}`);
  }
  const opusRaw = read('transcode-audio-opus')!.trim().toLowerCase();
  const opusKbps = ['off', 'none', ''].includes(opusRaw)
    ? undefined
    : number('--transcode-audio-opus', opusRaw, { min: 6, max: 510 });

  const natsUrls = splitList(given('nats') ?? []);
  const roles = parseRoles(splitList(given('role') ?? [read('role')!]), natsUrls);
  const port = numOf('port');

  const pattern = read('test-pattern')!;
  const size = /^(\d+)x(\d+)$/.exec(read('test-pattern-size')!);
  const [width, height] = [Number(size?.[1]), Number(size?.[2])];
  if (size === null || width < 16 || height < 16 || width > 3840 || height > 2160 || width % 2 || height % 2) {
    fail('--test-pattern-size must be WxH, even numbers from 16x16 to 3840x2160');
  }
  const logLevel = read('log-level') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) fail(`--log-level must be debug, info, warn or error`);
  const partTargetMs = numOf('hls-part-target');
  const targetDurationS = numOf('hls-target-duration');
  if (partTargetMs >= targetDurationS * 1000) fail('--hls-part-target must be shorter than --hls-target-duration');

  return {
    roles,
    natsUrls,
    nodeId: read('node-id') ?? `${read('node-name')!}:${port}`,
    maxSources: numOf('max-sources'),
    edgeIdleMs: Math.round(numOf('edge-idle') * 1000),
    port,
    host: read('host')!,
    ladder,
    encoder,
    transcodeBackend: backendRaw,
    chromiumPath: read('chromium')!,
    scaler: scalerRaw,
    overloadPolicy: overloadRaw === 'on',
    transcodeAudio: audioRaw,
    transcodeAudioOpusKbps: opusKbps === undefined ? undefined : Math.round(opusKbps),
    sourceBandwidthKbps: num('source-bandwidth-kbps'),
    hlsTargetDurationMs: Math.round(targetDurationS * 1000),
    hlsPartTargetMs: Math.round(partTargetMs),
    hlsDvrWindowMs: Math.round(numOf('hls-dvr-window') * 1000),
    ingestToken: read('ingest-token'),
    playbackSecret: read('playback-secret'),
    webhooks: { ...webhooks, timeoutMs: Math.round(numOf('webhook-timeout') * 1000) },
    adminToken: read('admin-token'),
    maxPublishersPerClient: numOf('max-publishers-per-client'),
    maxHeldRequestsPerClient: numOf('max-held-per-client'),
    maxConnectionsPerClient: numOf('max-connections-per-client'),
    headerTimeoutMs: Math.round(numOf('header-timeout') * 1000),
    sendTimeoutMs: Math.round(numOf('send-timeout') * 1000),
    ingestGraceMs: Math.round(numOf('ingest-grace') * 1000),
    ingestIdleTimeoutMs: Math.round(numOf('ingest-idle-timeout') * 1000),
    mallocTrimEveryMs: Math.round(numOf('malloc-trim') * 1000),
    testPattern: ['off', 'none', 'false', ''].includes(pattern) ? undefined : pattern,
    testPatternSize: { width, height },
    logLevel,
  };
}

/** Every comma-separated item of every value, trimmed, without empty ones. */
function splitList(values: readonly string[]): string[] {
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** `--role` values as roles (`all` stands for every role); a role other than all needs `--nats`. */
function parseRoles(values: readonly string[], natsUrls: readonly string[]): Role[] {
  const roles = new Set<Role>();
  for (const value of values.length === 0 ? ['all'] : values) {
    const v = value.toLowerCase();
    if (v === 'all') for (const r of ROLES) roles.add(r);
    else if ((ROLES as readonly string[]).includes(v)) roles.add(v as Role);
    else
      fail(`--role must be all, ingest, transcode or edge (comma-separated for several), got ${JSON.stringify(value)}`);
  }
  const list = ROLES.filter((r) => roles.has(r));
  if (list.length < ROLES.length && natsUrls.length === 0) {
    fail(`--role ${list.join(',')} needs --nats URL: a node with only some roles works in a cluster`);
  }
  for (const url of natsUrls) {
    if (!/^((nats|tls|ws|wss):\/\/)?[^\s/]+(:\d+)?\/?$/.test(url)) {
      fail(`--nats must be a NATS server URL such as nats://127.0.0.1:4222, got ${JSON.stringify(url)}`);
    }
  }
  return list;
}

/** The webhook options: URLs (each flag value may hold several, comma-separated), secret, admission. */
function parseWebhooks(
  values: readonly string[],
  read: (name: ServeOptionName) => string | undefined,
): Omit<WebhookConfig, 'timeoutMs'> {
  const urls = splitList(values);
  for (const url of urls) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      fail(`--webhook-url must be an http or https URL, got ${JSON.stringify(url)}`);
    }
  }
  const admission = read('webhook-admission')!.toLowerCase();
  if (!['on', 'off'].includes(admission))
    fail(`--webhook-admission must be on or off, got ${JSON.stringify(admission)}`);
  if (admission === 'on' && urls.length === 0) fail('--webhook-admission on needs a --webhook-url');
  const fallback = read('webhook-admission-default')!.toLowerCase();
  if (!['allow', 'deny'].includes(fallback)) {
    fail(`--webhook-admission-default must be allow or deny, got ${JSON.stringify(fallback)}`);
  }
  const secret = read('webhook-secret');
  return {
    urls,
    secret: secret === '' ? undefined : secret,
    admission: admission === 'on',
    admissionDefaultAllow: fallback === 'allow',
    node: read('node-name')!,
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
    const flags = splitFlags(rest, ['token']);
    const [unknown] = flags.unknown;
    if (unknown !== undefined) fail(`unknown option ${unknown} for publish`);
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
    // Options bench does not know are ignored.
    const flags = splitFlags(rest, [
      'source',
      'transcode-rendition',
      'max-sources',
      'seconds',
      'transcode-scaler',
      'transcode-backend',
    ]);
    const r = flags.values.get('--transcode-rendition');
    const source = flags.values.get('--source')?.at(-1) ?? '720p';
    if (source !== '720p' && source !== '1080p') fail(`--source must be 720p or 1080p, got ${JSON.stringify(source)}`);
    const scaler = flags.values.get('--transcode-scaler')?.at(-1) ?? env['LVQR_TRANSCODE_SCALER'] ?? 'encoder';
    if (scaler !== 'quality' && scaler !== 'encoder') {
      fail(`--transcode-scaler must be quality or encoder, got ${JSON.stringify(scaler)}`);
    }
    const backend = (flags.values.get('--transcode-backend')?.at(-1) ?? env['LVQR_TRANSCODE_BACKEND'] ?? 'auto')
      .trim()
      .toLowerCase();
    if (!isTranscodeBackend(backend)) {
      fail(`--transcode-backend must be napi, threads, chromium or auto, got ${JSON.stringify(backend)}`);
    }
    return {
      kind: 'bench',
      ladder: r === undefined ? defaultLadder() : resolveLadderArgs(r, readFile),
      source,
      maxSources: number('--max-sources', flags.values.get('--max-sources')?.at(-1) ?? '8', { min: 1, max: 64 }),
      seconds: number('--seconds', flags.values.get('--seconds')?.at(-1) ?? '10', { min: 2, max: 600 }),
      scaler,
      backend,
    };
  }
  if (sub === 'sign') return parseSign(rest, env);
  fail(`unknown command ${JSON.stringify(sub)} (serve, publish, bench, sign)`);
}

/** Parses `sign <broadcast> [--ttl S] [--secret S] [--base URL]`. */
function parseSign(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  const flags = splitFlags(argv, ['ttl', 'secret', 'base']);
  const [unknown] = flags.unknown;
  if (unknown !== undefined) fail(`unknown option ${unknown} for sign`);
  const [broadcast, extra] = flags.positional;
  if (broadcast === undefined) fail('sign needs <broadcast> (the source broadcast name)');
  if (extra !== undefined) fail(`unexpected argument ${JSON.stringify(extra)}`);
  validateBroadcastName(broadcast);
  const secret = flags.values.get('--secret')?.at(-1) ?? env['LVQR_PLAYBACK_SECRET'];
  if (secret === undefined || secret === '') fail('sign needs --secret S or LVQR_PLAYBACK_SECRET');
  const base = flags.values.get('--base')?.at(-1);
  if (base !== undefined && !/^https?:\/\/[^/]/.test(base))
    fail(`--base must be an http(s) URL, got ${JSON.stringify(base)}`);
  return {
    kind: 'sign',
    broadcast,
    ttlS: number('--ttl', flags.values.get('--ttl')?.at(-1) ?? '3600', { min: 1, max: 10 * 365 * 86_400 }),
    secret,
    base,
  };
}
