/**
 * Prometheus metrics (prom-client). `createMetrics(registry)` builds every metric on a registry the
 * caller owns: no hidden global, so tests and embedders read exactly what they created.
 * LVQR's names are kept (`lvqr_transcode_*`); the rest are additions operators asked for.
 */

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

type TR = 'transcoder' | 'rendition';

/** Every metric the service exports. */
export type LvqrMetrics = {
  readonly registry: Registry;
  /** Fragments a drain task received (LVQR). */
  readonly fragments: Counter<TR>;
  /** Exceptions (and timeouts) thrown by a transcoder, by phase (LVQR). */
  readonly panics: Counter<TR | 'phase'>;
  /** Source fragments a rung dropped to keep up (LVQR). */
  readonly droppedFragments: Counter<TR>;
  /** Fragments a transcoder published (LVQR). */
  readonly outputFragments: Counter<TR>;
  /** Payload bytes a transcoder published (LVQR). */
  readonly outputBytes: Counter<TR>;
  /** Fragments skipped by lagging registry subscribers. */
  readonly laggedSkips: Counter<'track'>;
  /** Source arrival -> rung fragment published, seconds. */
  readonly latency: Histogram<TR>;
  /** Media seconds produced per wall second, per rung (>= 1 keeps up). */
  readonly realtimeFactor: Gauge<TR>;
  /** Fragments waiting in a drain task's queue. */
  readonly queueDepth: Gauge<TR>;
  /**
   * Decoded frames a rung holds, observed as each is queued (a backlog's size, which sets the
   * decoder's picture pool).
   */
  readonly heldFrames: Histogram<TR>;
  /** Overload-policy steps per rung: `shed`, `pause`, `restore`, `resume`. */
  readonly overloadActions: Counter<TR | 'action'>;
  /** Rungs currently paused by the overload policy (summed over sources). */
  readonly pausedRungs: Gauge<TR>;
  /** Encoder / decoder restarts after a failure. */
  readonly restarts: Counter<TR>;
  /** Source decoders replaced at a keyframe after a rung's backlog, to give its picture memory back. */
  readonly decoderRenewals: Counter;
  /** 1 for the encoder backend in use per rung (`software`, `nvenc`, ...). */
  readonly encoderBackend: Gauge<TR | 'backend'>;
  /** Hardware-encoder fallbacks to software under `prefer-hardware`. */
  readonly hardwareFallbacks: Counter<'reason'>;
  /** Live broadcasts by origin (ingest or rendition). */
  readonly broadcasts: Gauge<'origin'>;
  /** Ingest bytes received. */
  readonly ingestBytes: Counter<'transport'>;
  /** Ingest requests rejected, by error code. */
  readonly ingestRejected: Counter<'code'>;
  /** LL-HLS blocking playlist requests currently held. */
  readonly hlsHeldRequests: Gauge;
  /**
   * Time each `malloc_trim(0)` (`--malloc-trim`) took, from the call to its answer (it runs on a
   * libuv thread), seconds.
   */
  readonly mallocTrimSeconds: Histogram;
  /** Process memory by kind (`rss`, `heap_used`, `external`, `array_buffers`), read at scrape time. */
  readonly processMemory: Gauge<'kind'>;
  /** Media bytes held, by store, read at scrape time from the reporters `reportRetained` added. */
  readonly retainedBytes: Gauge<'store'>;
  /** Adds a reporter of held media bytes (store name -> bytes) for `lvqr_retained_bytes`; returns its removal. */
  reportRetained(reporter: RetainedReporter): () => void;
};

/** Reads the media bytes some stores hold, keyed by store name (`hls_media`, `subscriber_queues`, ...). */
export type RetainedReporter = () => Readonly<Record<string, number>>;

/** Process memory in bytes, as `process.memoryUsage()` reports it (every runtime has it). */
export type MemoryUsage = {
  rss: number;
  heapUsed: number;
  /** What V8 has committed for its heap (its pages, used or not); absent where the runtime does not say. */
  heapTotal?: number;
  external: number;
  arrayBuffers: number;
};

/** Options of `createMetrics`. */
export type MetricsOptions = {
  /** Reads process memory for `lvqr_process_memory_bytes`; without it the gauge stays empty. */
  memoryUsage?: () => MemoryUsage;
};

/** Creates every metric on `registry` (a fresh one by default). */
export function createMetrics(registry: Registry = new Registry(), options: MetricsOptions = {}): LvqrMetrics {
  const { memoryUsage } = options;
  const registers = [registry];
  const tr: TR[] = ['transcoder', 'rendition'];
  const reporters = new Set<RetainedReporter>();
  return {
    registry,
    fragments: new Counter({
      name: 'lvqr_transcode_fragments_total',
      help: 'Source fragments received by transcoder drain tasks.',
      labelNames: tr,
      registers,
    }),
    panics: new Counter({
      name: 'lvqr_transcode_panics_total',
      help: 'Exceptions or timeouts thrown by a transcoder, by phase (start, fragment, meta, stop).',
      labelNames: [...tr, 'phase'],
      registers,
    }),
    droppedFragments: new Counter({
      name: 'lvqr_transcode_dropped_fragments_total',
      help: 'Source fragments a rung dropped (whole GOPs) to keep up.',
      labelNames: tr,
      registers,
    }),
    outputFragments: new Counter({
      name: 'lvqr_transcode_output_fragments_total',
      help: 'Fragments published by transcoders.',
      labelNames: tr,
      registers,
    }),
    outputBytes: new Counter({
      name: 'lvqr_transcode_output_bytes_total',
      help: 'Payload bytes published by transcoders.',
      labelNames: tr,
      registers,
    }),
    laggedSkips: new Counter({
      name: 'lvqr_fragment_lagged_skips_total',
      help: 'Fragments skipped by registry subscribers that fell behind (they resume at the next keyframe).',
      labelNames: ['track'],
      registers,
    }),
    latency: new Histogram({
      name: 'lvqr_transcode_latency_seconds',
      help: 'Added latency: source fragment arrival to rung fragment published.',
      labelNames: tr,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1, 2, 5],
      registers,
    }),
    realtimeFactor: new Gauge({
      name: 'lvqr_transcode_realtime_factor',
      help: 'Media seconds encoded per wall-clock second over the last window (>= 1 keeps up).',
      labelNames: tr,
      registers,
    }),
    queueDepth: new Gauge({
      name: 'lvqr_transcode_queue_depth',
      help: 'Fragments waiting in a transcoder drain queue.',
      labelNames: tr,
      registers,
    }),
    heldFrames: new Histogram({
      name: 'lvqr_transcode_held_frames',
      help: "Decoded frames in a rung's queue, observed as each frame is queued.",
      labelNames: tr,
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    }),
    overloadActions: new Counter({
      name: 'lvqr_transcode_overload_actions_total',
      help: 'Overload-policy steps per rung (shed, pause, restore, resume).',
      labelNames: [...tr, 'action'],
      registers,
    }),
    pausedRungs: new Gauge({
      name: 'lvqr_transcode_paused_rungs',
      help: 'Rungs paused by the overload policy, summed over sources.',
      labelNames: tr,
      registers,
    }),
    restarts: new Counter({
      name: 'lvqr_transcode_restarts_total',
      help: 'Encoder or decoder restarts after a failure or a format change.',
      labelNames: tr,
      registers,
    }),
    decoderRenewals: new Counter({
      name: 'lvqr_transcode_decoder_renewals_total',
      help: "Source decoders replaced at a keyframe after a rung's backlog (gives the backlog's picture memory back).",
      registers,
    }),
    encoderBackend: new Gauge({
      name: 'lvqr_transcode_encoder_backend',
      help: 'Encoder backend in use per rung (value 1).',
      labelNames: [...tr, 'backend'],
      registers,
    }),
    hardwareFallbacks: new Counter({
      name: 'lvqr_transcode_hardware_fallbacks_total',
      help: 'Times prefer-hardware fell back to the software encoder.',
      labelNames: ['reason'],
      registers,
    }),
    broadcasts: new Gauge({
      name: 'lvqr_broadcasts',
      help: 'Live broadcast tracks in the registry, by origin.',
      labelNames: ['origin'],
      registers,
    }),
    ingestBytes: new Counter({
      name: 'lvqr_ingest_bytes_total',
      help: 'Bytes received from publishers.',
      labelNames: ['transport'],
      registers,
    }),
    ingestRejected: new Counter({
      name: 'lvqr_ingest_rejected_total',
      help: 'Ingest requests or streams rejected, by error code.',
      labelNames: ['code'],
      registers,
    }),
    hlsHeldRequests: new Gauge({
      name: 'lvqr_hls_held_requests',
      help: 'LL-HLS blocking playlist requests currently held.',
      registers,
    }),
    mallocTrimSeconds: new Histogram({
      name: 'lvqr_process_malloc_trim_seconds',
      help: "Time each malloc_trim(0) took (glibc's free heap pages given back, off the JavaScript thread).",
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    }),
    processMemory: new Gauge({
      name: 'lvqr_process_memory_bytes',
      help: 'Process memory by kind (rss, heap_used, heap_total, external, array_buffers).',
      labelNames: ['kind'],
      registers,
      collect() {
        if (memoryUsage === undefined) return;
        const m = memoryUsage();
        this.set({ kind: 'rss' }, m.rss);
        this.set({ kind: 'heap_used' }, m.heapUsed);
        if (m.heapTotal !== undefined) this.set({ kind: 'heap_total' }, m.heapTotal);
        this.set({ kind: 'external' }, m.external);
        this.set({ kind: 'array_buffers' }, m.arrayBuffers);
      },
    }),
    retainedBytes: new Gauge({
      name: 'lvqr_retained_bytes',
      help:
        'Media bytes held, by store: hls_media (segments, parts and inits of the DVR windows), hls_buffers ' +
        '(the memory blocks those arrays keep alive), subscriber_queues (fragments queued for registry subscribers).',
      labelNames: ['store'],
      registers,
      collect() {
        this.reset();
        const totals = new Map<string, number>();
        for (const reporter of reporters) {
          for (const [store, bytes] of Object.entries(reporter())) totals.set(store, (totals.get(store) ?? 0) + bytes);
        }
        for (const [store, bytes] of totals) this.set({ store }, bytes);
      },
    }),
    reportRetained(reporter) {
      reporters.add(reporter);
      return () => reporters.delete(reporter);
    },
  };
}

export { Registry as MetricsRegistry } from 'prom-client';
