/**
 * Every option of `serve`, declared once: flag, environment variables, type, default, bounds and
 * help line. The parser (`config.ts`) reads values through this table and the usage text is
 * generated from it, so a new option is one row here plus its use in `parseServe`.
 */

/** How an option's value is read: one string, a bounded number, or a repeatable list. */
export type ServeOptionType = 'string' | 'number' | 'list';

/** One row of the options table. */
export type ServeOption = {
  /** Placeholder for the value in the usage text. */
  readonly value: string;
  /** Environment variables read when the flag is absent, first non-empty one wins. */
  readonly env: readonly string[];
  readonly type: ServeOptionType;
  /** The value used when neither the flag nor an environment variable is set (as typed on the command line). */
  readonly default?: string;
  /** Bounds of a number, in the unit the flag takes. */
  readonly min?: number;
  readonly max?: number;
  /** One help line (the usage text adds the default and the environment variables). */
  readonly help: string;
};

/** The options of `serve`, by flag name (without `--`), in the order the usage text lists them. */
export const SERVE_OPTIONS = {
  port: {
    value: 'N',
    env: ['PORT', 'LVQR_PORT'],
    type: 'number',
    default: '8080',
    min: 0,
    max: 65535,
    help: 'HTTP port',
  },
  host: { value: 'H', env: ['LVQR_HOST'], type: 'string', default: '0.0.0.0', help: 'bind address' },
  'transcode-rendition': {
    value: 'LIST',
    env: ['LVQR_TRANSCODE_RENDITION'],
    type: 'list',
    default: '720p,480p,240p',
    help: '720p,480p,240p or .toml files; repeatable; "none" for no ladder',
  },
  'transcode-encoder': {
    value: 'P',
    env: ['LVQR_TRANSCODE_ENCODER'],
    type: 'string',
    default: 'software',
    help: 'software | prefer-hardware | hardware-only',
  },
  'transcode-backend': {
    value: 'B',
    env: ['LVQR_TRANSCODE_BACKEND'],
    type: 'string',
    default: 'auto',
    help: 'napi | threads (napi, each source\'s codecs in a worker thread) | chromium | auto (the runtime\'s own WebCodecs if complete, else napi); see README "Backends"',
  },
  chromium: {
    value: 'PATH',
    env: ['LVQR_CHROMIUM'],
    type: 'string',
    default: '/usr/bin/chromium',
    help: 'the Chromium binary the chromium backend launches',
  },
  'transcode-scaler': {
    value: 'quality|encoder',
    env: ['LVQR_TRANSCODE_SCALER'],
    type: 'string',
    default: 'encoder',
    help: 'encoder: each encoder scales (bilinear); quality: rungs scaled once per frame (bicubic, then Lanczos-3 down the ladder) in worker threads, sharper for more CPU',
  },
  'transcode-overload': {
    value: 'on|off',
    env: ['LVQR_TRANSCODE_OVERLOAD'],
    type: 'string',
    default: 'on',
    help: 'shed and pause the lowest rungs when the ladder cannot keep realtime',
  },
  'transcode-audio': {
    value: 'passthrough|ladder',
    env: ['LVQR_TRANSCODE_AUDIO'],
    type: 'string',
    default: 'ladder',
    help: 'ladder: AAC-LC at each distinct rung audio bitrate plus one Opus rendition, published as <source>/audio-<codec>-<kbps>k and listed as audio groups in the master; passthrough: every variant carries the source audio only',
  },
  'transcode-audio-opus': {
    value: 'KBPS|off',
    env: ['LVQR_TRANSCODE_AUDIO_OPUS'],
    type: 'string',
    default: '64',
    help: "bitrate of the audio ladder's Opus rendition (6-510), or off",
  },
  'source-bandwidth-kbps': {
    value: 'N',
    env: ['LVQR_SOURCE_BANDWIDTH_KBPS'],
    type: 'number',
    min: 1,
    max: 1e6,
    help: 'BANDWIDTH advertised for the source variant (default: measured)',
  },
  'hls-target-duration': {
    value: 'S',
    env: ['LVQR_HLS_TARGET_DURATION'],
    type: 'number',
    default: '2',
    min: 0.5,
    max: 30,
    help: 'segment target in seconds',
  },
  'hls-part-target': {
    value: 'MS',
    env: ['LVQR_HLS_PART_TARGET'],
    type: 'number',
    default: '200',
    min: 50,
    max: 5000,
    help: 'part target in milliseconds',
  },
  'hls-dvr-window': {
    value: 'S',
    env: ['LVQR_HLS_DVR_WINDOW'],
    type: 'number',
    default: '120',
    min: 6,
    max: 86_400,
    help: 'sliding window in seconds',
  },
  'ingest-token': {
    value: 'T',
    env: ['LVQR_INGEST_TOKEN'],
    type: 'string',
    help: 'bearer token required to publish',
  },
  'playback-secret': {
    value: 'S',
    env: ['LVQR_PLAYBACK_SECRET'],
    type: 'string',
    help: 'require ?exp=&sig= playback tokens signed with S on /hls/ (see "lvqr-transcode sign")',
  },
  'ingest-grace': {
    value: 'S',
    env: ['LVQR_INGEST_GRACE'],
    type: 'number',
    default: '5',
    min: 0,
    max: 3600,
    help: 'how long a broadcast waits for its publisher to reconnect',
  },
  'ingest-idle-timeout': {
    value: 'S',
    env: ['LVQR_INGEST_IDLE_TIMEOUT'],
    type: 'number',
    default: '15',
    min: 0,
    max: 3600,
    help: 'close a publisher that sends nothing for S seconds; 0 = never',
  },
  'webhook-url': {
    value: 'URL',
    env: ['LVQR_WEBHOOK_URL'],
    type: 'list',
    help: 'POST signed JSON events here; repeatable, or comma-separated',
  },
  'webhook-secret': {
    value: 'S',
    env: ['LVQR_WEBHOOK_SECRET'],
    type: 'string',
    help: 'sign every event: X-Lvqr-Signature: sha256=<hex HMAC-SHA256 of the body>',
  },
  'webhook-admission': {
    value: 'on|off',
    env: ['LVQR_WEBHOOK_ADMISSION'],
    type: 'string',
    default: 'off',
    help: "await publish at the first webhook URL: its answer allows or refuses (and may set the stream's ladder)",
  },
  'webhook-admission-default': {
    value: 'allow|deny',
    env: ['LVQR_WEBHOOK_ADMISSION_DEFAULT'],
    type: 'string',
    default: 'deny',
    help: 'the decision when the admission webhook gives no usable answer in time',
  },
  'webhook-timeout': {
    value: 'S',
    env: ['LVQR_WEBHOOK_TIMEOUT'],
    type: 'number',
    default: '2',
    min: 0.05,
    max: 60,
    help: 'a webhook request with no answer after S seconds fails',
  },
  'node-name': {
    value: 'N',
    env: ['LVQR_NODE_NAME', 'HOSTNAME'],
    type: 'string',
    default: 'lvqr-transcode',
    help: 'the node field of every event',
  },
  'admin-token': {
    value: 'T',
    env: ['LVQR_ADMIN_TOKEN'],
    type: 'string',
    help: 'bearer token of the admin API (per-broadcast ladders); the API is off without it',
  },
  'max-publishers-per-client': {
    value: 'N',
    env: ['LVQR_MAX_PUBLISHERS_PER_CLIENT'],
    type: 'number',
    default: '16',
    min: 1,
    max: 100_000,
    help: 'publisher connections one client address may have open',
  },
  'max-held-per-client': {
    value: 'N',
    env: ['LVQR_MAX_HELD_PER_CLIENT'],
    type: 'number',
    default: '100',
    min: 1,
    max: 1_000_000,
    help: 'LL-HLS blocking requests one client address may have waiting',
  },
  'max-connections-per-client': {
    value: 'N',
    env: ['LVQR_MAX_CONNECTIONS_PER_CLIENT'],
    type: 'number',
    default: '128',
    min: 1,
    max: 1_000_000,
    help: 'open connections one client address may have; more are closed at once',
  },
  'header-timeout': {
    value: 'S',
    env: ['LVQR_HEADER_TIMEOUT'],
    type: 'number',
    default: '10',
    min: 0.5,
    max: 3600,
    help: 'answer 408 and close a connection whose request head is not complete after S seconds',
  },
  'send-timeout': {
    value: 'S',
    env: ['LVQR_SEND_TIMEOUT'],
    type: 'number',
    default: '30',
    min: 0.5,
    max: 3600,
    help: 'close a client that takes no bytes of an answer for S seconds',
  },
  'malloc-trim': {
    value: 'S',
    env: ['LVQR_MALLOC_TRIM'],
    type: 'number',
    default: '60',
    min: 0,
    max: 3600,
    help: "every S seconds give glibc's free heap pages back (malloc_trim, off the JavaScript thread); 0 = never",
  },
  'test-pattern': {
    value: 'NAME|off',
    env: ['LVQR_TEST_PATTERN'],
    type: 'string',
    default: 'live/demo',
    help: 'built-in 1280x720 30 fps test source',
  },
  'test-pattern-size': {
    value: 'WxH',
    env: ['LVQR_TEST_PATTERN_SIZE'],
    type: 'string',
    default: '1280x720',
    help: 'picture size of the test pattern (even numbers; the video bitrate scales with the area)',
  },
  role: {
    value: 'LIST',
    env: ['LVQR_ROLE'],
    type: 'list',
    default: 'all',
    help: 'all | ingest | transcode | edge, comma-separated for several; a role other than all needs --nats',
  },
  nats: {
    value: 'URL',
    env: ['LVQR_NATS_URL'],
    type: 'list',
    help: 'NATS server(s) with JetStream joining the cluster; repeatable, or comma-separated (default: no cluster)',
  },
  'node-id': {
    value: 'NAME',
    env: ['LVQR_NODE_ID'],
    type: 'string',
    help: 'this node in the cluster (default: host name and port)',
  },
  'max-sources': {
    value: 'N',
    env: ['LVQR_MAX_SOURCES'],
    type: 'number',
    default: '4',
    min: 1,
    max: 1000,
    help: 'sources whose ladder a transcode node of a cluster takes on at most',
  },
  'edge-idle': {
    value: 'S',
    env: ['LVQR_EDGE_IDLE'],
    type: 'number',
    default: '30',
    min: 1,
    max: 86_400,
    help: 'an edge of a cluster mirrors a broadcast from its first request until S seconds without one',
  },
  'log-level': {
    value: 'L',
    env: ['LVQR_LOG_LEVEL'],
    type: 'string',
    default: 'info',
    help: 'debug | info | warn | error',
  },
} as const satisfies Record<string, ServeOption>;

/** The name of a `serve` option (its flag without `--`). */
export type ServeOptionName = keyof typeof SERVE_OPTIONS;

/** Column where help text starts, and the width lines are wrapped to. */
const HELP_COLUMN = 34;
const LINE_WIDTH = 100;

/** The usage lines for every `serve` option: flag and value, help, default, environment variables. */
export function serveOptionsUsage(): string {
  const lines: string[] = [];
  for (const [name, option] of Object.entries(SERVE_OPTIONS) as [string, ServeOption][]) {
    const flag = `  --${name} ${option.value}`;
    const head = flag.length < HELP_COLUMN ? flag.padEnd(HELP_COLUMN) : `${flag} `;
    const words = [
      ...option.help.split(' '),
      ...(option.default === undefined ? [] : [`(default ${option.default})`]),
      ...`[${option.env.join(', ')}]`.split(' '),
    ];
    let line = head;
    let empty = true;
    for (const word of words) {
      if (!empty && line.length + 1 + word.length > LINE_WIDTH) {
        lines.push(line);
        line = ' '.repeat(HELP_COLUMN);
        empty = true;
      }
      line += empty ? word : ` ${word}`;
      empty = false;
    }
    lines.push(line);
  }
  return lines.join('\n');
}
