/**
 * `TranscodeRunner`: installs transcoder factories on a registry. For every new (broadcast, track)
 * each factory may build a transcoder; the runner then drives it in its own drain task:
 * wait for the init segment, `onStart`, `onFragment` per fragment, `onStop` at the end. Nothing a
 * transcoder throws reaches the registry, the producer or another task.
 */

import { backoffDelayMs } from '../core/backoff.ts';
import { errorMessage } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import type { FragmentBroadcaster, FragmentSubscription } from '../fragment/broadcaster.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import type { RenditionSpec } from './rendition.ts';
import type { Transcoder, TranscoderContext, TranscoderFactory } from './transcoder.ts';

/** The phase in which a transcoder failed. */
export type FailurePhase = 'start' | 'fragment' | 'meta' | 'stop';

/** State of one drain task. */
export type TaskState = 'waiting-init' | 'running' | 'backoff' | 'ended' | 'failed';

/** Key of a drain task: (transcoder, rendition, broadcast, track). */
export type TaskKey = readonly [transcoder: string, rendition: string, broadcast: string, track: string];

/** JSON-able snapshot of one drain task. */
export type TaskStats = {
  transcoder: string;
  rendition: string;
  broadcast: string;
  track: string;
  state: TaskState;
  fragmentsSeen: number;
  panics: number;
  panicsByPhase: Record<FailurePhase, number>;
  timeouts: number;
  lagged: number;
  queued: number;
  /** Fragments not delivered while the task backed off after failures. */
  skipped: number;
  /** Consecutive failed `onFragment` calls (0 after a success). */
  consecutiveFailures: number;
  lastError: string | undefined;
  startedAtMs: number;
  endedAtMs: number | undefined;
  /** Figures reported by the transcoder itself (`Transcoder.stats()`). */
  transcoderStats: Record<string, unknown> | undefined;
};

/** Options of a runner. */
export type TranscodeRunnerOptions = {
  /** Metrics to update (none when omitted). */
  metrics?: LvqrMetrics;
  /** Where task lifecycle and failures are logged. */
  logger?: Logger;
  /** A hook that has not settled after this long counts as a failure of its phase (default 30 s). */
  callTimeoutMs?: number;
  /** Stats of ended tasks kept for inspection (oldest dropped first; default 256). */
  retainEnded?: number;
  /**
   * After a failed `onFragment` (exception or timeout) the task stops delivering fragments for this
   * long, doubling per consecutive failure up to `retryMaxMs`, then resumes at the next independent
   * fragment (default 250 ms).
   */
  retryBaseMs?: number;
  /** Longest back-off (default 8000 ms). */
  retryMaxMs?: number;
  now?: () => number;
};

type Task = {
  key: TaskKey;
  factory: TranscoderFactory;
  stats: TaskStats;
  sub: FragmentSubscription;
  transcoder: Transcoder;
  done: Promise<void>;
  /** Set when the task's rendition left its broadcast's ladder: it ends before the next keyframe. */
  stopAtKeyframe: boolean;
};

/** The ladder of one broadcast, or `undefined` for the default ladder given to `withLadder`. */
export type LadderLookup = (broadcast: string) => readonly RenditionSpec[] | undefined;

/** A ladder added with `withLadder`: its default renditions and a factory per rendition built so far. */
type LadderGroup = {
  readonly defaults: readonly RenditionSpec[];
  readonly build: (spec: RenditionSpec) => TranscoderFactory;
  readonly lookup: LadderLookup | undefined;
  /** Factories by rendition (name and figures): one per distinct rendition ever asked for. */
  readonly built: Map<string, TranscoderFactory>;
};

function renditionKey(spec: RenditionSpec): string {
  return [spec.name, spec.width, spec.height, spec.videoBitrateKbps, spec.audioBitrateKbps].join(':');
}

/** The factory of `spec` in `group`, built on first use. */
function ladderFactory(group: LadderGroup, spec: RenditionSpec): TranscoderFactory {
  const key = renditionKey(spec);
  let factory = group.built.get(key);
  if (factory === undefined) {
    factory = group.build(spec);
    group.built.set(key, factory);
  }
  return factory;
}

const TIMEOUT = Symbol('timeout');

function keyString(key: TaskKey): string {
  return key.join('\u0000');
}

/** Holds a registry's transcode tasks: counters, stats, and a `close()` that stops them. */
export class TranscodeRunnerHandle {
  readonly #tasks: Map<string, Task>;
  readonly #stop: () => Promise<void>;

  readonly #replan: (broadcast: string) => void;

  /** @internal Use `TranscodeRunner.install`. */
  constructor(tasks: Map<string, Task>, stop: () => Promise<void>, replan: (broadcast: string) => void) {
    this.#tasks = tasks;
    this.#stop = stop;
    this.#replan = replan;
  }

  /**
   * Applies the ladder the lookup now gives for the live broadcast `broadcast`: at its next source
   * keyframe, rungs no longer in it end and rungs new to it start (a rendition that keeps its name
   * with other figures continues its playlists after a discontinuity).
   */
  replan(broadcast: string): void {
    this.#replan(broadcast);
  }

  /** Fragments the task (transcoder, rendition, broadcast, track) received; 0 if unknown. */
  fragmentsSeen(transcoder: string, rendition: string, broadcast: string, track: string): number {
    return this.#get(transcoder, rendition, broadcast, track)?.stats.fragmentsSeen ?? 0;
  }

  /** Failures (exceptions and timeouts, all phases) of that task; 0 if unknown. */
  panics(transcoder: string, rendition: string, broadcast: string, track: string): number {
    return this.#get(transcoder, rendition, broadcast, track)?.stats.panics ?? 0;
  }

  /** Keys of every task, live or recently ended. */
  tracked(): TaskKey[] {
    return [...this.#tasks.values()].map((t) => t.key);
  }

  /** A JSON-able snapshot of every task. */
  stats(): TaskStats[] {
    return [...this.#tasks.values()].map((task) => {
      let transcoderStats: Record<string, unknown> | undefined;
      try {
        transcoderStats = task.transcoder.stats?.();
      } catch (error) {
        transcoderStats = { error: errorMessage(error) };
      }
      return {
        ...task.stats,
        panicsByPhase: { ...task.stats.panicsByPhase },
        lagged: task.sub.lagged,
        queued: task.sub.queued,
        transcoderStats,
      };
    });
  }

  /** Stops every task (each gets `onStop`), unregisters from the registry; resolves when all ended. Idempotent. */
  close(): Promise<void> {
    return this.#stop();
  }

  #get(transcoder: string, rendition: string, broadcast: string, track: string): Task | undefined {
    return this.#tasks.get(keyString([transcoder, rendition, broadcast, track]));
  }
}

/** Builder of the transcode fan-out: add factories, then `install` on a registry. */
export class TranscodeRunner {
  readonly #factories: TranscoderFactory[] = [];
  readonly #ladders: LadderGroup[] = [];
  readonly #options: TranscodeRunnerOptions;

  /** Creates an empty runner. */
  constructor(options: TranscodeRunnerOptions = {}) {
    this.#options = options;
  }

  /** Adds one factory. */
  withFactory(factory: TranscoderFactory): this {
    this.#factories.push(factory);
    return this;
  }

  /**
   * Adds one factory per rendition, built by `build`. With `lookup`, each broadcast gets the
   * renditions `lookup` returns for it when its entry is created (`ladder` when it returns
   * `undefined`); a rendition outside `ladder` gets its own factory from `build` on first use.
   */
  withLadder(
    ladder: readonly RenditionSpec[],
    build: (spec: RenditionSpec) => TranscoderFactory,
    lookup?: LadderLookup,
  ): this {
    const group: LadderGroup = { defaults: [...ladder], build, lookup, built: new Map() };
    for (const spec of ladder) ladderFactory(group, spec);
    this.#ladders.push(group);
    return this;
  }

  /** Number of factories added (a ladder counts its default renditions). */
  get factoryCount(): number {
    return this.#factories.length + this.#ladders.reduce((n, g) => n + g.defaults.length, 0);
  }

  /** Starts a drain task per (factory, new entry) on `registry` from now on. */
  install(registry: FragmentBroadcasterRegistry): TranscodeRunnerHandle {
    const statics = [...this.#factories];
    const ladders = [...this.#ladders];
    const factoriesFor = (broadcast: string): TranscoderFactory[] => [
      ...ladders.flatMap((g) => (g.lookup?.(broadcast) ?? g.defaults).map((spec) => ladderFactory(g, spec))),
      ...statics,
    ];
    const logger = this.#options.logger ?? silentLogger;
    const metrics = this.#options.metrics;
    const env: DriveEnv = {
      logger,
      metrics,
      callTimeoutMs: this.#options.callTimeoutMs ?? 30_000,
      retryBaseMs: this.#options.retryBaseMs ?? 250,
      retryMaxMs: this.#options.retryMaxMs ?? 8000,
      now: this.#options.now ?? Date.now,
    };
    const retainEnded = this.#options.retainEnded ?? 256;
    const tasks = new Map<string, Task>();
    /** Tasks replaced in `tasks` by a task of the same key before they ended. */
    const retiring = new Set<Task>();
    const ended: string[] = [];
    const abort = new AbortController();
    let closing: Promise<void> | undefined;

    const retire = (id: string, task: Task): void => {
      if (tasks.get(id) !== task) return;
      ended.push(id);
      while (ended.length > retainEnded) {
        const old = ended.shift()!;
        const oldTask = tasks.get(old);
        if (oldTask !== undefined && oldTask.stats.endedAtMs !== undefined) tasks.delete(old);
      }
    };

    const spawn = (broadcast: string, track: string, broadcaster: FragmentBroadcaster): void => {
      if (abort.signal.aborted) return;
      // Never transcode a transcoder's output (explicit tag, not a guess from the name).
      if (broadcaster.origin.kind === 'rendition') return;
      for (const factory of factoriesFor(broadcast)) spawnTask(factory, broadcast, track, broadcaster);
    };

    const spawnTask = (
      factory: TranscoderFactory,
      broadcast: string,
      track: string,
      broadcaster: FragmentBroadcaster,
    ): void => {
      const ctx: TranscoderContext = {
        broadcast,
        track,
        meta: broadcaster.meta,
        rendition: factory.rendition,
        signal: abort.signal,
      };
      let transcoder: Transcoder | undefined;
      try {
        transcoder = factory.build(ctx);
      } catch (error) {
        logger.warn('transcoder factory failed to build; skipping', {
          transcoder: factory.name,
          rendition: factory.rendition.name,
          broadcast,
          track,
          error: errorMessage(error),
        });
        return;
      }
      if (transcoder === undefined) return;
      const key: TaskKey = [factory.name, factory.rendition.name, broadcast, track];
      const id = keyString(key);
      const sub = broadcaster.subscribe();
      const stats: TaskStats = {
        transcoder: factory.name,
        rendition: factory.rendition.name,
        broadcast,
        track,
        state: 'waiting-init',
        fragmentsSeen: 0,
        panics: 0,
        panicsByPhase: { start: 0, fragment: 0, meta: 0, stop: 0 },
        timeouts: 0,
        lagged: 0,
        queued: 0,
        skipped: 0,
        consecutiveFailures: 0,
        lastError: undefined,
        startedAtMs: Date.now(),
        endedAtMs: undefined,
        transcoderStats: undefined,
      };
      const task: Task = { key, factory, stats, sub, transcoder, done: Promise.resolve(), stopAtKeyframe: false };
      const previous = tasks.get(id);
      if (previous !== undefined) {
        const at = ended.indexOf(id);
        if (at !== -1) ended.splice(at, 1);
        // The rendition changed its figures, not its name: the old task ends at the next keyframe.
        if (previous.stats.endedAtMs === undefined) {
          retiring.add(previous);
          void previous.done.finally(() => retiring.delete(previous));
        }
      }
      tasks.set(id, task);
      task.done = drive(task, ctx, env).finally(() => retire(id, task));
    };

    const replan = (broadcast: string): void => {
      if (abort.signal.aborted) return;
      // The lookup first: it builds the factories of renditions new to the ladder.
      const next = factoriesFor(broadcast);
      const ladderFactories = new Set(ladders.flatMap((g) => [...g.built.values()]));
      const wanted = new Set(next.filter((f) => ladderFactories.has(f)));
      const running = new Set<string>();
      for (const task of tasks.values()) {
        if (task.key[2] !== broadcast || task.stats.endedAtMs !== undefined || task.stopAtKeyframe) continue;
        if (!ladderFactories.has(task.factory)) continue;
        if (wanted.has(task.factory)) running.add(`${renditionKey(task.factory.rendition)}\u0000${task.key[3]}`);
        else task.stopAtKeyframe = true;
      }
      for (const { broadcast: name, track, broadcaster } of registry.entries()) {
        if (name !== broadcast || broadcaster.origin.kind === 'rendition') continue;
        for (const factory of wanted) {
          if (!running.has(`${renditionKey(factory.rendition)}\u0000${track}`)) {
            spawnTask(factory, broadcast, track, broadcaster);
          }
        }
      }
      logger.info('ladder re-planned', { broadcast, renditions: [...wanted].map((f) => f.rendition.name).join(',') });
    };

    const unsubscribe = registry.onEntryCreated(spawn);
    logger.debug('transcode runner installed', { factories: this.factoryCount });

    const stop = (): Promise<void> => {
      if (closing !== undefined) return closing;
      unsubscribe();
      abort.abort();
      const running = [...tasks.values(), ...retiring];
      for (const task of running) task.sub.close();
      closing = Promise.all(running.map((t) => t.done)).then(() => undefined);
      return closing;
    };

    return new TranscodeRunnerHandle(tasks, stop, replan);
  }
}

type DriveEnv = {
  logger: Logger;
  metrics: LvqrMetrics | undefined;
  callTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  now: () => number;
};

/** Runs `call` and waits for it, at most `timeoutMs` if it returns a Promise. */
async function settle(call: () => void | Promise<void>, timeoutMs: number): Promise<typeof TIMEOUT | undefined> {
  const result = call();
  if (result === undefined || typeof (result as Promise<void>).then !== 'function') return undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      (result as Promise<void>).then(() => undefined),
      new Promise<typeof TIMEOUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMEOUT), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function drive(task: Task, buildCtx: TranscoderContext, env: DriveEnv): Promise<void> {
  const { stats, sub, transcoder } = task;
  const labels = { transcoder: stats.transcoder, rendition: stats.rendition };
  const fields = { ...labels, broadcast: stats.broadcast, track: stats.track };

  const fail = (phase: FailurePhase, error: unknown, timedOut: boolean): void => {
    stats.panics += 1;
    stats.panicsByPhase[phase] += 1;
    if (timedOut) stats.timeouts += 1;
    stats.lastError = timedOut ? `${phase} timed out after ${env.callTimeoutMs} ms` : errorMessage(error);
    env.metrics?.panics.inc({ ...labels, phase });
    env.logger.warn(`transcoder ${phase} failed`, { ...fields, error: stats.lastError });
  };

  const guarded = async (phase: FailurePhase, call: () => void | Promise<void>): Promise<boolean> => {
    try {
      const outcome = await settle(call, env.callTimeoutMs);
      if (outcome === TIMEOUT) {
        fail(phase, undefined, true);
        return false;
      }
      return true;
    } catch (error) {
      fail(phase, error, false);
      return false;
    }
  };

  // The entry may be created before its init segment exists: wait for it (LVQR's race).
  // No abort signal here or in next(): `close()` closes every subscription, which ends both waits
  // (one abort listener per waiting task would pile up on the shared signal).
  const meta = await sub.waitForInit();
  if (meta === undefined) {
    stats.state = 'ended';
    stats.endedAtMs = Date.now();
    sub.close();
    return;
  }
  const ctx: TranscoderContext = { ...buildCtx, meta };
  stats.state = 'running';
  if (!(await guarded('start', () => transcoder.onStart?.(ctx)))) {
    // Feeding fragments to a transcoder whose setup failed would amplify the fault.
    stats.state = 'failed';
    stats.endedAtMs = Date.now();
    sub.close();
    return;
  }

  let metaVersion = sub.metaVersion;
  /** While backing off: the time deliveries may start again. */
  let retryAtMs: number | undefined;
  for (;;) {
    const fragment = await sub.next();
    if (fragment === undefined) break;
    // Left the ladder: the rungs that replace it start at this keyframe.
    if (task.stopAtKeyframe && fragment.flags.keyframe) break;
    if (sub.metaVersion !== metaVersion) {
      metaVersion = sub.metaVersion;
      const changed = sub.meta;
      await guarded('meta', () => transcoder.onMetaChange?.(changed));
    }
    stats.fragmentsSeen += 1;
    env.metrics?.fragments.inc(labels);
    if (retryAtMs !== undefined) {
      // Backing off: skip until the delay is over, then resume where a decoder can start.
      const independent = fragment.flags.keyframe || fragment.flags.independent;
      if (env.now() < retryAtMs || !independent) {
        stats.skipped += 1;
        env.metrics?.droppedFragments.inc(labels);
        continue;
      }
      retryAtMs = undefined;
      stats.state = 'running';
    }
    if (await guarded('fragment', () => transcoder.onFragment(fragment))) {
      stats.consecutiveFailures = 0;
    } else {
      stats.consecutiveFailures += 1;
      const delayMs = backoffDelayMs(stats.consecutiveFailures, env.retryBaseMs, env.retryMaxMs);
      retryAtMs = env.now() + delayMs;
      stats.state = 'backoff';
      env.logger.warn('transcoder backing off', { ...fields, failures: stats.consecutiveFailures, delayMs });
    }
    env.metrics?.queueDepth.set(labels, sub.queued);
  }
  sub.close();
  await guarded('stop', () => transcoder.onStop?.());
  stats.state = 'ended';
  stats.endedAtMs = Date.now();
  env.logger.debug('transcode task ended', { ...fields, seen: stats.fragmentsSeen, panics: stats.panics });
}
