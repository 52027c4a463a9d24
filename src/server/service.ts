/**
 * The composition root of `serve`: registry, metrics, ingest, transcode runner with the software
 * ladder, LL-HLS bridge and the Hono app, wired together. Runtime files add the socket, the
 * WebCodecs provider and the assets.
 */

import { describeInit } from '../container/index.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import { HlsBridge, splitHlsPath } from '../hls/index.ts';
import { type IngestLimits, IngestManager } from '../ingest/index.ts';
import { createMetrics, type LvqrMetrics, type MemoryUsage } from '../metrics/index.ts';
import { ThumbnailStore } from '../thumbnail/index.ts';
import {
  AUDIO_LADDER_TRANSCODER_NAME,
  type AudioCodecs,
  AudioLadder,
  AudioRenditionFactory,
  audioRenditionName,
  audioRenditionSpec,
  audioRenditionTargetOf,
  audioRenditionTargets,
} from '../transcode/audio/index.ts';
import type { VideoCodecs } from '../transcode/codecs.ts';
import {
  planLadder,
  SoftwareLadder,
  type SoftwareLadderOptions,
  SoftwareTranscoderFactory,
} from '../transcode/ladder/index.ts';
import type { RenditionSpec } from '../transcode/rendition.ts';
import {
  type TaskStats,
  TranscodeRunner,
  type TranscodeRunnerHandle,
  type TranscodeRunnerOptions,
} from '../transcode/runner.ts';
import type { TranscoderFactory } from '../transcode/transcoder.ts';
import type { WebCodecs } from '../webcodecs/index.ts';
import { type ClientLimits, createApp, type HlsHandler, type HttpRuntime, type StaticAsset } from './app.ts';
import type { Role, ServeConfig } from './config.ts';
import { type EventWiring, wireEvents } from './event-wiring.ts';
import type { Admit } from './ingest-gate.ts';
import { withPlaybackUrls } from './playback-urls.ts';
import { StreamLadders } from './stream-ladders.ts';
import { withThumbnails } from './thumbnail-routes.ts';

/** What the runtime hands to the service. */
export type ServiceDeps = {
  config: ServeConfig;
  /** Codecs for the ladder; without them the service serves sources only. */
  codecs?: VideoCodecs | undefined;
  /**
   * WebCodecs for thumbnails of sources the ladder does not decode (loaded on the first such
   * request); without it those sources have no thumbnail.
   */
  thumbnailCodecs?: (() => Promise<WebCodecs | undefined>) | undefined;
  /** Audio codecs for the audio ladder (`--transcode-audio ladder`); without them it does not run. */
  audioCodecs?: AudioCodecs | undefined;
  /** Why there are no codecs (shown by the API). */
  codecsUnavailableReason?: string | undefined;
  logger?: Logger;
  metrics?: LvqrMetrics;
  gc?: (() => void) | undefined;
  /** A full collection, run when a source's decoder closes (frees the codec addon's memory). */
  gcFull?: (() => void) | undefined;
  /** Process memory, for `lvqr_process_memory_bytes` and `/healthz`. */
  memoryUsage?: (() => MemoryUsage) | undefined;
  /** The runtime's part of the HTTP surface: WebSocket upgrader, client addresses, raw request targets. */
  runtime?: HttpRuntime | undefined;
  clientLimits?: Partial<ClientLimits>;
  assets?: Readonly<Record<string, StaticAsset>>;
  ingestLimits?: Partial<IngestLimits>;
  graceMs?: number;
  idleTimeoutMs?: number;
  /** Transcoders run beside the ladder (embedders' own; shown under `transcoders` in the API). */
  factories?: readonly TranscoderFactory[];
  /** Runner tunables (hook timeout, back-off). */
  runner?: Omit<TranscodeRunnerOptions, 'metrics' | 'logger'>;
  /** Ladder tunables (queue bound, overload policy, retry delays). */
  ladder?: Omit<
    SoftwareLadderOptions,
    'registry' | 'codecs' | 'metrics' | 'logger' | 'gc' | 'gcFull' | 'segmentTargetMs' | 'onKeyframe'
  >;
  /** Extra fields for /healthz and /api/v1/transcode (runtime, probe results). */
  info?: Record<string, unknown>;
  /** How webhooks are sent (default: the runtime's `fetch`). */
  fetch?: typeof fetch;
  /** Publish admission asked before the webhook's (a cluster's claim on the broadcast name). */
  admit?: Admit | undefined;
  /** Whether this node runs `broadcast`'s ladder (a cluster places each ladder on one node); default: yes. */
  runsLadder?: ((broadcast: string) => boolean) | undefined;
  /** This node's part of a cluster, for /healthz and /api/v1/transcode. */
  cluster?: (() => Record<string, unknown>) | undefined;
  /**
   * Called with the broadcast of every HLS request before it is answered (an edge of a cluster
   * mirrors a broadcast while players ask for it); the answer waits for it.
   */
  playbackDemand?: ((broadcast: string) => Promise<void>) | undefined;
  /** The whole cluster (nodes, where each broadcast and ladder runs), for /api/v1/broadcasts. */
  clusterOverview?: (() => Promise<unknown>) | undefined;
};

/** A wired service. */
export type Service = {
  readonly registry: FragmentBroadcasterRegistry;
  readonly metrics: LvqrMetrics;
  readonly ingest: IngestManager;
  readonly hls: HlsBridge;
  readonly runner: TranscodeRunnerHandle;
  readonly ladder: SoftwareLadder | undefined;
  /** Per-broadcast ladders (admin API, admission answers). */
  readonly ladders: StreamLadders;
  /** Event webhooks; undefined without a `--webhook-url`. */
  readonly events: EventWiring | undefined;
  readonly thumbnails: ThumbnailStore;
  /** The audio ladder, when `--transcode-audio ladder` runs. */
  readonly audioLadder: AudioLadder | undefined;
  readonly app: ReturnType<typeof createApp>;
  /** JSON of GET /api/v1/transcode. */
  transcodeStatus(): unknown;
  /** Stops ingest, transcoding and HLS (idempotent). */
  close(): Promise<void>;
};

/** Wires a service from `deps`. */
export function createService(deps: ServiceDeps): Service {
  const { config } = deps;
  const runs = (role: Role): boolean => config.roles.includes(role);
  const logger = deps.logger ?? silentLogger;
  const metrics =
    deps.metrics ?? createMetrics(undefined, deps.memoryUsage === undefined ? {} : { memoryUsage: deps.memoryUsage });
  const registry = new FragmentBroadcasterRegistry({
    broadcaster: { onLaggedSkip: (count, track) => metrics.laggedSkips.inc({ track }, count) },
    onCallbackError: (error, broadcast, track) =>
      logger.error('registry callback failed', { broadcast, track, error: String(error) }),
  });
  const countBroadcasts = (): void => {
    let ingest = 0;
    let rendition = 0;
    for (const e of registry.entries()) {
      if (e.broadcaster.origin.kind === 'rendition') rendition += 1;
      else ingest += 1;
    }
    metrics.broadcasts.set({ origin: 'ingest' }, ingest);
    metrics.broadcasts.set({ origin: 'rendition' }, rendition);
  };
  const fallback = deps.info?.['hardwareFallback'];
  if (typeof fallback === 'string') metrics.hardwareFallbacks.inc({ reason: fallback });
  registry.onEntryCreated(countBroadcasts);
  registry.onEntryRemoved(countBroadcasts);

  const ladders = new StreamLadders(config.ladder);
  registry.onEntryRemoved((broadcast, _track, broadcaster) => {
    if (broadcaster.origin.kind !== 'ingest') return;
    if (registry.entries().some((e) => e.broadcast === broadcast && e.broadcaster.origin.kind === 'ingest')) return;
    ladders.ended(broadcast);
    ladders.delete(broadcast, 'admission');
  });
  const events =
    config.webhooks.urls.length === 0
      ? undefined
      : wireEvents({
          config: config.webhooks,
          registry,
          metrics,
          logger,
          ladders,
          ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
        });

  const thumbnails = new ThumbnailStore({ registry, webcodecs: deps.thumbnailCodecs, logger });
  let ladder: SoftwareLadder | undefined;
  const runner = new TranscodeRunner({ ...deps.runner, metrics, logger });
  if (deps.codecs !== undefined && config.ladder.length > 0 && runs('transcode')) {
    ladder = new SoftwareLadder({
      ...deps.ladder,
      registry,
      codecs: deps.codecs,
      metrics,
      logger,
      gc: deps.gc,
      gcFull: deps.gcFull,
      ...(config.overloadPolicy ? {} : { overload: false as const }),
      segmentTargetMs: config.hlsTargetDurationMs,
      ...(events === undefined ? {} : { onEvent: events.onLadderEvent }),
      // The ladder's one decode of each source feeds the thumbnails too.
      onKeyframe: (broadcast, frame) => thumbnails.offerFrame(broadcast, frame),
    });
    const shared = ladder;
    runner.withLadder(
      config.ladder,
      (spec) => new SoftwareTranscoderFactory(spec, shared),
      (broadcast) => (deps.runsLadder?.(broadcast) === false ? [] : ladders.lookup(broadcast)),
    );
  }
  let audioLadder: AudioLadder | undefined;
  if (
    config.transcodeAudio === 'ladder' &&
    deps.audioCodecs !== undefined &&
    config.ladder.length > 0 &&
    runs('transcode')
  ) {
    const shared = new AudioLadder({ registry, codecs: deps.audioCodecs, metrics, logger });
    audioLadder = shared;
    // The audio renditions of a ladder: the default one, a stream's own (so its rungs' audio
    // bitrates are produced), none where another cluster node runs the stream's ladder.
    const audioSpecs = (rungs: readonly RenditionSpec[]) =>
      audioRenditionTargets(rungs, config.transcodeAudioOpusKbps).map(audioRenditionSpec);
    runner.withLadder(
      audioSpecs(config.ladder),
      (spec) => new AudioRenditionFactory(audioRenditionTargetOf(spec), shared),
      (broadcast) => {
        if (deps.runsLadder?.(broadcast) === false) return [];
        const own = ladders.lookup(broadcast);
        return own === undefined ? undefined : audioSpecs(own);
      },
    );
  }
  for (const factory of deps.factories ?? []) runner.withFactory(factory);
  const handle = runner.install(registry);

  const hls = new HlsBridge({
    registry,
    targetDurationMs: config.hlsTargetDurationMs,
    partTargetMs: config.hlsPartTargetMs,
    dvrWindowMs: config.hlsDvrWindowMs,
    describeInit,
    metrics,
    logger,
    // A rung the overload policy paused, or whose encoder failed, is left out of the master until it
    // resumes or recovers.
    isRungHidden: (source, rendition) => ladder?.isRungPaused(source, rendition) ?? false,
    isRungFailed: (source, rendition) => ladder?.isRungFailed(source, rendition) ?? false,
    // A rung's variant references the AAC rendition at its audio_bitrate_kbps (when the audio ladder runs).
    rungAudio: (source, rendition) => {
      const kbps = ladders.active(source).find((r) => r.name === rendition)?.audioBitrateKbps;
      return kbps === undefined ? undefined : audioRenditionName({ codec: 'aac', bitrateKbps: kbps });
    },
    ...(config.sourceBandwidthKbps === undefined ? {} : { sourceBandwidthKbps: config.sourceBandwidthKbps }),
    ...(config.playbackSecret === undefined ? {} : { playbackSecret: config.playbackSecret }),
  });
  const stopReportingRetained = metrics.reportRetained(() => {
    const windows = hls.retainedBytes();
    return {
      hls_media: windows.bytes,
      hls_buffers: windows.bufferBytes,
      subscriber_queues: registry.queuedBytes(),
    };
  });
  // Only an edge packages LL-HLS; the other roles leave the registry's tracks to the cluster.
  if (runs('edge')) hls.start();

  const ingest = new IngestManager({
    registry,
    metrics,
    logger,
    ...(config.ingestToken === undefined ? {} : { auth: { token: config.ingestToken } }),
    ...(deps.ingestLimits === undefined ? {} : { limits: deps.ingestLimits }),
    ...(deps.graceMs === undefined ? {} : { graceMs: deps.graceMs }),
    ...(deps.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: deps.idleTimeoutMs }),
  });

  const transcodeStatus = (): unknown => {
    const tasks = handle.stats();
    const bySource = new Map<string, TaskStats[]>();
    for (const t of tasks) {
      if (t.transcoder !== 'software') continue;
      bySource.set(t.broadcast, [...(bySource.get(t.broadcast) ?? []), t]);
    }
    const sources = (ladder?.sources() ?? []).map((s) => {
      const plan =
        s.width !== undefined && s.height !== undefined && s.width > 0
          ? planLadder({ width: s.width, height: s.height, frameRate: s.frameRate }, ladders.active(s.broadcast))
          : undefined;
      return {
        broadcast: s.broadcast,
        codec: s.codec,
        width: s.width,
        height: s.height,
        frameRate: s.frameRate,
        decoderState: s.decoderState,
        reason: s.reason,
        decodedFrames: s.decodedFrames,
        decoderRestarts: s.restarts,
        decoderRenewals: s.renewals,
        lastError: s.lastError,
        scaler: s.scaler,
        scalerError: s.scalerError,
        plan: plan?.rungs.map((r) => ({
          rendition: r.rendition.name,
          width: r.width,
          height: r.height,
          videoBitrateKbps: r.rendition.videoBitrateKbps,
        })),
        skipped: plan?.skipped.map((r) => ({ rendition: r.rendition.name, reason: r.reason })) ?? [],
        rungs: (bySource.get(s.broadcast) ?? [])
          .filter(
            (t) =>
              t.endedAtMs === undefined || !['skipped', 'bypassed'].includes(t.transcoderStats?.['state'] as string),
          )
          .map((t) => ({
            rendition: t.rendition,
            taskState: t.state,
            fragmentsSeen: t.fragmentsSeen,
            panics: t.panics,
            skipped: t.skipped,
            lagged: t.lagged,
            ...t.transcoderStats,
            state: t.state === 'running' ? (t.transcoderStats?.['state'] ?? t.state) : t.state,
            lastError: (t.transcoderStats?.['lastError'] as string | undefined) ?? t.lastError,
          })),
      };
    });
    const audio = {
      mode: config.transcodeAudio,
      opusKbps: config.transcodeAudioOpusKbps,
      running: audioLadder !== undefined,
      sources: audioLadder?.sources() ?? [],
      renditions: tasks
        .filter((t) => t.transcoder === AUDIO_LADDER_TRANSCODER_NAME)
        .map((t) => ({
          broadcast: t.broadcast,
          rendition: t.rendition,
          taskState: t.state,
          fragmentsSeen: t.fragmentsSeen,
          panics: t.panics,
          ...t.transcoderStats,
          state: t.state === 'running' ? (t.transcoderStats?.['state'] ?? t.state) : t.state,
          lastError: (t.transcoderStats?.['lastError'] as string | undefined) ?? t.lastError,
        })),
    };
    // Every other transcoder's tasks (passthroughs, embedders' own), with their failure figures.
    const transcoders = tasks
      .filter((t) => t.transcoder !== 'software' && t.transcoder !== AUDIO_LADDER_TRANSCODER_NAME)
      .map((t) => ({
        transcoder: t.transcoder,
        rendition: t.rendition,
        broadcast: t.broadcast,
        track: t.track,
        state: t.state,
        fragmentsSeen: t.fragmentsSeen,
        panics: t.panics,
        panicsByPhase: t.panicsByPhase,
        timeouts: t.timeouts,
        skipped: t.skipped,
        consecutiveFailures: t.consecutiveFailures,
        lastError: t.lastError,
      }));
    return {
      backend: deps.codecs?.backend ?? 'none',
      encoderPolicy: config.encoder,
      codecsUnavailableReason: deps.codecsUnavailableReason,
      ladder: config.ladder,
      ...deps.info,
      ...(deps.cluster === undefined ? {} : { cluster: deps.cluster() }),
      sources,
      audio,
      transcoders,
      thumbnails: thumbnails.status(),
    };
  };

  const admit = chainAdmit(deps.admit, events?.admit);
  const app = createApp({
    ...(runs('ingest') ? { ingest } : {}),
    ...(runs('edge')
      ? {
          hls: withDemand(
            withThumbnails(hls, thumbnails, (path, query) => hls.authorize(path, query)),
            deps.playbackDemand,
          ),
        }
      : {}),
    metrics,
    logger,
    broadcasts: async () => ({
      broadcasts: await withPlaybackUrls(hls.broadcasts(), config.playbackSecret),
      publishers: ingest.list(),
      ...(deps.clusterOverview === undefined ? {} : { cluster: await deps.clusterOverview() }),
    }),
    transcode: transcodeStatus,
    health: () => {
      const memory = deps.memoryUsage?.();
      return {
        broadcasts: ingest.list().length,
        ...(memory === undefined ? {} : { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed }),
        ...deps.info,
        ...(deps.cluster === undefined ? {} : { cluster: deps.cluster() }),
      };
    },
    ...(deps.runtime === undefined ? {} : { runtime: deps.runtime }),
    ...(deps.clientLimits === undefined ? {} : { clientLimits: deps.clientLimits }),
    ...(deps.assets === undefined ? {} : { assets: deps.assets }),
    ...(admit === undefined ? {} : { admit }),
    admin: {
      token: config.adminToken,
      ladders,
      replan: (broadcast) => handle.replan(broadcast),
      sourceSize: (broadcast) => {
        const s = ladder?.sources().find((x) => x.broadcast === broadcast && x.decoderState !== 'unsupported');
        return s?.width === undefined || s.height === undefined ? undefined : { width: s.width, height: s.height };
      },
    },
  });

  let closing: Promise<void> | undefined;
  return {
    registry,
    metrics,
    ingest,
    hls,
    runner: handle,
    ladder,
    ladders,
    events,
    thumbnails,
    audioLadder,
    app,
    transcodeStatus,
    close() {
      closing ??= (async () => {
        ingest.close();
        await handle.close();
        stopReportingRetained();
        hls.close();
        events?.close();
        thumbnails.close();
      })();
      return closing;
    },
  };
}

/** Admission that asks `first`, then (if it lets the publisher in) `second`; undefined when neither is set. */
function chainAdmit(first: Admit | undefined, second: Admit | undefined): Admit | undefined {
  if (first === undefined || second === undefined) return first ?? second;
  return async (broadcast, info) => (await first(broadcast, info)) ?? second(broadcast, info);
}

/** `hls` that first tells `demand` which broadcast each request is for (unchanged without one). */
function withDemand(hls: HlsHandler, demand: ((broadcast: string) => Promise<void>) | undefined): HlsHandler {
  if (demand === undefined) return hls;
  return {
    async handle(path, query, signal) {
      const split = splitHlsPath(path);
      if (split !== undefined) await demand(split.broadcast);
      return hls.handle(path, query, signal);
    },
  };
}
