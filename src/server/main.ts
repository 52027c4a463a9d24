/**
 * The CLI program, runtime-free: parses the command line and runs `serve`, `publish`, `bench` or
 * `sign` on a `RuntimeHost` that each runtime file (`src/runtime/{node,bun,deno}.ts`) implements.
 */

import type { Hono } from 'hono';
import { errorMessage, LvqrError } from '../core/errors.ts';
import { consoleLogger, type Logger } from '../core/log.ts';
import { playbackToken } from '../core/playback-token.ts';
import type { MemoryUsage } from '../metrics/index.ts';
import type { AudioCodecs } from '../transcode/audio/index.ts';
import type { VideoCodecs } from '../transcode/codecs.ts';
import type { WebCodecsProvider } from '../webcodecs/index.ts';
import { type Command, parseCommand, type Role, type ServeConfig } from './config.ts';
import { DASHBOARD_HTML } from './dashboard.ts';
import { refusalOf } from './ingest-gate.ts';
import type { HttpRuntime } from './runtime-adapter.ts';
import { createService, type Service } from './service.ts';

/** A listening server. */
export type Listener = { port: number; close(): Promise<void> };

/** Bounds on client connections, kept by each runtime's server as far as it allows (README "Failure behaviour"). */
export type ConnectionLimits = {
  /** Connections one client address may have open at once. */
  maxPerClient: number;
  /** A connection whose request head is not complete after this long is closed. */
  headerTimeoutMs: number;
  /** A client that takes no bytes of an answer for this long is closed. */
  sendTimeoutMs: number;
};

/** A runtime's `malloc_trim(0)` (resolves true when pages were given back), or why it has none. */
export type MallocTrimLoad =
  | { trim: () => Promise<boolean>; reason?: undefined }
  | { trim?: undefined; reason: string };

/** What a runtime provides to the program. */
export interface RuntimeHost {
  readonly name: 'node' | 'bun' | 'deno';
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readFile(path: string): string;
  /** hls.js for the dashboard player. */
  readHlsJs(): string;
  /**
   * Serves `app` on host:port; `maxMessageBytes` bounds WebSocket messages; `connections` bounds
   * clients (without it: the runtime's defaults and no per-client cap).
   */
  serve(
    app: Hono<never>,
    options: { port: number; host: string; maxMessageBytes: number; connections?: ConnectionLimits },
  ): Promise<Listener>;
  /** The runtime's part of the HTTP surface: WebSocket upgrader, client addresses, raw request targets. */
  readonly http: HttpRuntime;
  /** Loads the WebCodecs-backed codecs, or says why they are unavailable. */
  loadCodecs(
    config: ServeConfig,
    logger: Logger,
  ): Promise<{
    codecs?: VideoCodecs;
    audioCodecs?: AudioCodecs;
    reason?: string;
    info?: Record<string, unknown>;
    provider?: WebCodecsProvider;
    /** Stops what the codecs run outside this process (the chromium backend's browser). */
    close?: () => Promise<void>;
  }>;
  /** Starts the built-in test pattern publishing into `service`; returns its stop function. */
  startTestPattern?(
    service: Service,
    broadcast: string,
    logger: Logger,
    size: { width: number; height: number },
  ): Promise<() => Promise<void>>;
  /** Runs `lvqr-transcode publish`. */
  publish?(command: Extract<Command, { kind: 'publish' }>): Promise<number>;
  /** Runs `lvqr-transcode bench`. */
  bench?(command: Extract<Command, { kind: 'bench' }>): Promise<number>;
  gc: (() => void) | undefined;
  /** A full garbage collection (native codec memory is freed only by one). */
  gcFull?: () => void;
  /** Process memory (`process.memoryUsage()`), for metrics and `/healthz`. */
  memoryUsage?: () => MemoryUsage;
  /** glibc's `malloc_trim(0)` run off the JavaScript thread, or why this runtime has none. */
  loadMallocTrim?(): MallocTrimLoad;
  onSignal(signals: string[], handler: () => void): void;
  print(line: string): void;
}

/** Runs the program; resolves with the exit code once done (for `serve`: after shutdown). */
export async function main(host: RuntimeHost): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(host.argv, host.env, (p) => host.readFile(p));
  } catch (error) {
    host.print(`error: ${errorMessage(error)}`);
    return 2;
  }
  switch (command.kind) {
    case 'help':
      host.print(command.text);
      return 0;
    case 'version':
      host.print('lvqr-transcode 0.1.0');
      return 0;
    case 'publish':
      if (host.publish === undefined) {
        host.print(`error: publish is not available on ${host.name}`);
        return 2;
      }
      return host.publish(command);
    case 'bench':
      if (host.bench === undefined) {
        host.print(`error: bench is not available on ${host.name}`);
        return 2;
      }
      return host.bench(command);
    case 'sign':
      host.print(await signCommand(command));
      return 0;
    case 'serve':
      return serve(host, command.config);
  }
}

/** What `sign` prints: the token query, or the broadcast's signed master URL under `--base`. */
export async function signCommand(command: Extract<Command, { kind: 'sign' }>): Promise<string> {
  const token = await playbackToken(command.broadcast, command.secret, command.ttlS);
  if (command.base === undefined) return token.query;
  return `${command.base.replace(/\/+$/, '')}/hls/${command.broadcast}/master.m3u8?${token.query}`;
}

/** A service listening on its runtime's socket (what `serve` runs, and what in-process tests start). */
export type StartedService = {
  readonly service: Service;
  readonly listener: Listener;
  /** The encoder backend in use, or undefined when transcoding is off. */
  readonly backend: string | undefined;
  /** Why transcoding is off (when it is). */
  readonly codecsUnavailableReason: string | undefined;
  /**
   * Stops the test pattern (if any), ingest (publishers are told to go), the ladder, HLS (held
   * requests are answered), then the listener; in-flight responses get a short drain. Idempotent.
   */
  stop(): Promise<void>;
};

/**
 * Loads the codecs, wires the service and listens on `config.host:config.port` (0 = ephemeral;
 * see `listener.port`). Starts the test pattern when configured. No signal handling, no banner.
 * Throws `LvqrError('config.invalid')` for an unmet `hardware-only` policy, and the listen error.
 */
export async function startService(host: RuntimeHost, config: ServeConfig, logger: Logger): Promise<StartedService> {
  const runs = (role: Role): boolean => config.roles.includes(role);
  // The cluster module (and NATS) is loaded only when a cluster is configured.
  const cluster =
    config.natsUrls.length === 0
      ? undefined
      : await (await import('../cluster/index.ts')).joinCluster({
          urls: config.natsUrls,
          nodeId: config.nodeId,
          roles: config.roles,
          maxSources: config.maxSources,
          edgeIdleMs: config.edgeIdleMs,
          segments: { targetDurationMs: config.hlsTargetDurationMs, partTargetMs: config.hlsPartTargetMs },
          logger,
        });
  const loaded: Awaited<ReturnType<RuntimeHost['loadCodecs']>> = !runs('transcode')
    ? { reason: 'this node does not transcode (--role)' }
    : config.ladder.length > 0
      ? await host.loadCodecs(config, logger)
      : { reason: 'no ladder configured' };
  const closeCodecs = async (): Promise<void> => {
    await loaded
      .close?.()
      .catch((error: unknown) => logger.error('codecs shutdown failed', { error: errorMessage(error) }));
  };
  if (loaded.codecs === undefined && cluster !== undefined && runs('transcode') && config.ladder.length > 0) {
    await cluster.close();
    throw new LvqrError('config.invalid', `--role transcode without codecs: ${loaded.reason ?? 'unavailable'}`);
  }
  if (loaded.codecs === undefined && config.ladder.length > 0 && runs('transcode')) {
    if (config.encoder === 'hardware-only') {
      throw new LvqrError(
        'config.invalid',
        `--transcode-encoder hardware-only: ${loaded.reason ?? 'no hardware encoder'}`,
      );
    }
    logger.warn('transcoding disabled; serving sources only', { reason: loaded.reason });
  }
  // Thumbnails of sources the ladder does not decode need a decoder: the ladder's provider, or
  // (without a ladder) one loaded on the first such thumbnail request.
  let thumbnailProvider: Promise<WebCodecsProvider | undefined> | undefined =
    loaded.provider === undefined ? undefined : Promise.resolve(loaded.provider);
  const service = createService({
    config,
    codecs: loaded.codecs,
    thumbnailCodecs: async () => {
      thumbnailProvider ??= host.loadCodecs(config, logger).then((l) => l.provider);
      return (await thumbnailProvider)?.codecs;
    },
    audioCodecs: loaded.audioCodecs,
    codecsUnavailableReason: loaded.reason,
    logger,
    gc: host.gc,
    gcFull: host.gcFull,
    memoryUsage: host.memoryUsage,
    graceMs: config.ingestGraceMs,
    idleTimeoutMs: config.ingestIdleTimeoutMs,
    runtime: host.http,
    clientLimits: { maxPublishers: config.maxPublishersPerClient, maxHeldRequests: config.maxHeldRequestsPerClient },
    assets: {
      '/': { body: DASHBOARD_HTML, contentType: 'text/html; charset=utf-8' },
      '/assets/hls.min.js': { body: host.readHlsJs(), contentType: 'text/javascript; charset=utf-8' },
    },
    info: { runtime: host.name, ...loaded.info },
    ...(cluster === undefined
      ? {}
      : {
          admit: async (broadcast: string) => {
            try {
              await cluster.claim(broadcast);
              return undefined;
            } catch (error) {
              return refusalOf(error);
            }
          },
          runsLadder: (broadcast: string) => cluster.runsLadder(broadcast),
          cluster: () => cluster.status(),
          clusterOverview: () => cluster.overview(),
          playbackDemand: (broadcast: string) => cluster.demand(broadcast),
        }),
  });
  cluster?.attach({
    registry: service.registry,
    publishing: () => service.ingest.list().map((b) => b.broadcast),
  });
  let listener: Listener;
  try {
    listener = await host.serve(service.app as unknown as Hono<never>, {
      port: config.port,
      host: config.host,
      maxMessageBytes: service.ingest.limits.maxMessageBytes,
      connections: {
        maxPerClient: config.maxConnectionsPerClient,
        headerTimeoutMs: config.headerTimeoutMs,
        sendTimeoutMs: config.sendTimeoutMs,
      },
    });
  } catch (error) {
    await cluster?.close();
    await service.close();
    await closeCodecs();
    throw new LvqrError('config.invalid', `cannot listen on ${config.host}:${config.port}: ${errorMessage(error)}`, {
      cause: error,
    });
  }

  let stopPattern: (() => Promise<void>) | undefined;
  if (config.testPattern !== undefined && host.startTestPattern !== undefined && runs('ingest')) {
    try {
      stopPattern = await host.startTestPattern(service, config.testPattern, logger, config.testPatternSize);
    } catch (error) {
      logger.error('test pattern failed to start', {
        error: errorMessage(error),
        code: error instanceof LvqrError ? error.code : undefined,
      });
    }
  }

  const stopTrimming = trimMallocEvery(host, config.mallocTrimEveryMs, logger, (s) =>
    service.metrics.mallocTrimSeconds.observe(s),
  );
  let stopping: Promise<void> | undefined;
  return {
    service,
    listener,
    backend: loaded.codecs?.backend,
    codecsUnavailableReason: loaded.reason,
    stop() {
      stopping ??= (async () => {
        stopTrimming();
        await stopPattern?.().catch(() => {});
        await cluster
          ?.close()
          .catch((error: unknown) => logger.error('leaving the cluster failed', { error: errorMessage(error) }));
        await service
          .close()
          .catch((error: unknown) => logger.error('shutdown failed', { error: errorMessage(error) }));
        await closeCodecs();
        // Responses in flight get a moment to finish; what is left is cut when the process exits.
        let drain: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          listener.close().catch(() => {}),
          new Promise<void>((resolve) => {
            drain = setTimeout(resolve, LISTENER_DRAIN_MS);
          }),
        ]);
        clearTimeout(drain);
      })();
      return stopping;
    },
  };
}

/**
 * Gives glibc's free heap pages back every `everyMs` (0: never), one trim at a time; returns the
 * stop. A runtime without the trim logs why once (debug: nothing is wrong, there is just no lever).
 * Also used by the benchmarks that run the service in their own process, so they trim as it does.
 */
export function trimMallocEvery(
  host: RuntimeHost,
  everyMs: number,
  logger: Logger,
  took: (seconds: number) => void,
): () => void {
  if (everyMs <= 0) return () => {};
  const loaded = host.loadMallocTrim?.() ?? { reason: `the ${host.name} runtime offers none` };
  if (loaded.trim === undefined) {
    logger.debug('free heap pages are not given back (no malloc_trim)', { reason: loaded.reason });
    return () => {};
  }
  const { trim } = loaded;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    const startedAt = performance.now();
    trim()
      .then(() => took((performance.now() - startedAt) / 1000))
      .catch((error: unknown) => logger.warn('malloc_trim failed', { error: errorMessage(error) }))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}

async function serve(host: RuntimeHost, config: ServeConfig): Promise<number> {
  const logger = consoleLogger(config.logLevel);
  let started: StartedService;
  try {
    started = await startService(host, config, logger);
  } catch (error) {
    host.print(`error: ${errorMessage(error)}`);
    return 1;
  }
  const { listener } = started;
  const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const base = `http://${shown}:${listener.port}`;
  const ladderText =
    config.ladder.length === 0
      ? 'none (sources only)'
      : config.ladder.map((r) => `${r.name} ${r.width}x${r.height} ${r.videoBitrateKbps} kb/s`).join(', ');
  host.print(
    [
      `lvqr-transcode on ${host.name}, listening on ${config.host}:${listener.port}`,
      `  dashboard   ${base}/`,
      `  publish     ffmpeg -re -i in.mp4 -c copy -f mp4 -movflags frag_every_frame+empty_moov+default_base_moof ${base}/ingest/live/mystream`,
      `  play        ${base}/hls/<broadcast>/master.m3u8`,
      `  api         ${base}/api/v1/broadcasts  ${base}/api/v1/transcode  ${base}/metrics  ${base}/healthz`,
      `  ladder      ${ladderText}`,
      `  encoder     ${started.backend ?? `none (${started.codecsUnavailableReason ?? 'unavailable'})`} (policy ${config.encoder})`,
      ...(config.natsUrls.length === 0
        ? []
        : [`  cluster     node ${config.nodeId}, roles ${config.roles.join(',')}, NATS ${config.natsUrls.join(',')}`]),
      `  ingest auth ${config.ingestToken === undefined ? 'off' : 'bearer token required'}`,
      `  playback    ${config.playbackSecret === undefined ? 'open' : 'signed tokens required (lvqr-transcode sign <broadcast>)'}`,
      ...(config.testPattern !== undefined &&
      started.service.ingest.list().some((b) => b.broadcast === config.testPattern)
        ? [`  test source ${base}/hls/${config.testPattern}/master.m3u8`]
        : []),
    ].join('\n'),
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    host.onSignal(['SIGINT', 'SIGTERM'], () => {
      if (stopping) {
        host.print('second signal: exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      host.print('shutting down...');
      // Never hang on a stuck task or connection: the process exits when `main` resolves.
      const deadline = setTimeout(() => {
        host.print(`shutdown did not finish within ${SHUTDOWN_DEADLINE_MS} ms: exiting`);
        resolve(1);
      }, SHUTDOWN_DEADLINE_MS);
      void started.stop().then(() => {
        clearTimeout(deadline);
        resolve(0);
      });
    });
  });
}

/** Longest a graceful shutdown may take before the process exits anyway (with code 1). */
const SHUTDOWN_DEADLINE_MS = 8_000;
/** How long in-flight responses may take to finish once the service has stopped. */
const LISTENER_DRAIN_MS = 2_000;
