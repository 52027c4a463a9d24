/**
 * Load sampling for the overload policy (overload.ts): what each rung measures during an interval
 * (`RungLoad`), and the per-source monitor that samples every rung once per interval, asks the
 * policy for its next step and applies it (`SourceLoadMonitor`).
 */

import type { Logger } from '../../core/log.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import { LADDER_TRANSCODER_NAME, type LadderEvent, notifyLadderEvent } from './options.ts';
import { OverloadGovernor, type OverloadOptions, type RungLoadState, type RungSample } from './overload.ts';

/**
 * Least fall of a rung's lag per ms of wall time, over one sampling interval, for the rung to count
 * as catching up: it handled frames at 1.05 times realtime or faster.
 */
const CATCH_UP_SLOPE = 0.05;

/** Frames an interval's lag trend needs before it is trusted. */
const TREND_MIN_FRAMES = 5;

/**
 * The least-squares slope of lag against wall time over one interval's frames (running sums, times
 * taken from the interval's first frame so they stay small).
 */
class LagTrend {
  #t0 = 0;
  #n = 0;
  #st = 0;
  #sl = 0;
  #stt = 0;
  #stl = 0;

  /** A frame handled at `nowMs` that lagged `lagMs`. */
  add(nowMs: number, lagMs: number): void {
    if (this.#n === 0) this.#t0 = nowMs;
    const t = nowMs - this.#t0;
    this.#n += 1;
    this.#st += t;
    this.#sl += lagMs;
    this.#stt += t * t;
    this.#stl += t * lagMs;
  }

  /** Lag change per ms of wall time, or undefined with too few frames or no time between them. */
  slope(): number | undefined {
    const n = this.#n;
    const spread = n * this.#stt - this.#st * this.#st;
    if (n < TREND_MIN_FRAMES || spread <= 0) return undefined;
    return (n * this.#stl - this.#st * this.#sl) / spread;
  }

  reset(): void {
    this.#n = 0;
    this.#st = 0;
    this.#sl = 0;
    this.#stt = 0;
    this.#stl = 0;
  }
}

/**
 * Most a frame's due time may run ahead of its own arrival (plus its offset inside its fragment):
 * the length of a burst of fragments that reach ingest together and are spread out again. It also
 * bounds the drift of a publisher whose media clock runs faster than the wall clock.
 */
const MAX_DUE_AHEAD_MS = 1000;

/**
 * When a realtime pipeline would reach each frame of a source (`FrameMeta.dueMs`): at its arrival
 * plus its offset inside its fragment, and never before the frame ahead of it is done (its due
 * time plus its duration), up to `MAX_DUE_AHEAD_MS` past its arrival. Fragments that reach ingest
 * in one burst (several per-frame fragments in one network read, or a publisher catching up) are
 * so spread over their media time instead of all being due at once, which would make the lag a
 * sawtooth: growing by a frame per frame within the burst, falling at the next one.
 */
export class DueSchedule {
  #nextMs = 0;

  /**
   * Due time of a frame that arrived at `arrivalMs` (0 when unknown: then 0) at `offsetMs` into its
   * fragment and lasts `durationMs`.
   */
  due(arrivalMs: number, offsetMs: number, durationMs: number): number {
    if (arrivalMs <= 0) return 0;
    const own = arrivalMs + offsetMs;
    const dueMs = Math.min(Math.max(own, this.#nextMs), own + MAX_DUE_AHEAD_MS);
    this.#nextMs = dueMs + durationMs;
    return dueMs;
  }

  /** Starts again (a new init: the next frame is due at its own arrival). */
  reset(): void {
    this.#nextMs = 0;
  }
}

/** One rung's load state and what it saw during the current sampling interval. */
export class RungLoad {
  #state: RungLoadState = 'running';
  /** Longest arrival-to-encoder wait this interval, ms. */
  #maxLagMs = 0;
  /** How the wait moved over this interval. */
  readonly #trend = new LagTrend();
  /** The queue overflowed this interval. */
  #overflowed = false;
  /**
   * The current GOP is being dropped: every other one while shedding, and the rest of a dropped one
   * after the rung runs again (a GOP the rung encodes starts at its forced keyframe, so the rung's
   * keyframes, and its segment boundaries, stay its source's).
   */
  #dropGop = false;
  /** No encoder session has produced output yet since the rung started or its encoder was rebuilt. */
  #starting = true;

  /** Load state under the overload policy. */
  get state(): RungLoadState {
    return this.#state;
  }

  /** Applies a policy step; returns whether the state changed. */
  set(state: RungLoadState): boolean {
    if (state === this.#state) return false;
    // Mid-GOP, a rung that was dropping it goes on dropping it: encoding its tail without its
    // keyframe would run the rung's GOP (and its segment) on to the next keyframe, a boundary the
    // rung would lack from its source, and every later segment number would be one off.
    this.#dropGop = this.#state === 'paused' || (this.#state === 'shedding' && this.#dropGop);
    this.#state = state;
    return true;
  }

  /**
   * Whether the policy drops a frame: a paused rung drops everything, a shedding one every other
   * GOP (the GOP changes at each forced keyframe), a running one the rest of a GOP it was dropping.
   */
  drops(forceKey: boolean): boolean {
    if (forceKey) this.#dropGop = this.#state === 'shedding' ? !this.#dropGop : false;
    return this.#state === 'paused' || this.#dropGop;
  }

  /** A frame reached the encoder at `nowMs`, `lagMs` after a realtime pipeline would have. */
  noteLag(lagMs: number, nowMs: number): void {
    this.#maxLagMs = Math.max(this.#maxLagMs, lagMs);
    this.#trend.add(nowMs, lagMs);
  }

  /** The rung's queue overflowed. */
  noteOverflow(): void {
    this.#overflowed = true;
  }

  /** A new encoder session was created: the rung starts again until it produces output. */
  noteSessionStart(): void {
    this.#starting = true;
  }

  /** The encoder session produced output: the rung has started. */
  noteOutput(): void {
    this.#starting = false;
  }

  /**
   * This interval's sample and the start of the next. Behind: the queue overflowed, or, once the
   * rung's encoder session has produced output, a frame (handled, or still waiting since
   * `oldestWaitingMs`) lagged more than `behindLagMs` while the rung is not catching up. Catching
   * up: over this interval's frames the lag fell by at least `CATCH_UP_SLOPE` per ms (least
   * squares, so jitter and decoder bursts average out), and no frame still waiting has waited
   * longer than the handled ones. So start-up is not overload: the wait for the frame rate, the
   * encoder's creation and its first frames do not count, and the backlog they leave is not
   * overload as long as it is being worked off; a lag that holds or grows is.
   */
  sample(name: string, oldestWaitingMs: number, behindLagMs: number): RungSample {
    const lagMs = Math.max(this.#maxLagMs, oldestWaitingMs);
    const slope = this.#trend.slope();
    const catchingUp = slope !== undefined && slope <= -CATCH_UP_SLOPE && oldestWaitingMs <= this.#maxLagMs;
    const behind = this.#overflowed || (!this.#starting && lagMs > behindLagMs && !catchingUp);
    this.#overflowed = false;
    this.#maxLagMs = 0;
    this.#trend.reset();
    return { name, behind };
  }
}

/** What the monitor needs of a rung. */
export interface LoadSampled {
  /** Rendition name. */
  readonly name: string;
  /** This interval's sample (starts the next interval). */
  takeLoadSample(nowMs: number, behindLagMs: number): RungSample;
  /** Applies a policy step. */
  setLoadState(state: RungLoadState): void;
}

/** Options of a `SourceLoadMonitor`. */
export type SourceLoadMonitorOptions = {
  broadcast: string;
  /** Policy tunables, or `false` for no policy (every rung always runs). */
  overload: Partial<OverloadOptions> | false;
  /** Priority of a rendition: 0 is the most important (shed last). */
  priority: (rendition: string) => number;
  now: () => number;
  logger: Logger;
  metrics?: LvqrMetrics | undefined;
  /** Told of every overload step. */
  onEvent?: ((event: LadderEvent) => void) | undefined;
};

/** The overload policy of one source's ladder, applied to its rungs. */
export class SourceLoadMonitor {
  readonly #options: SourceLoadMonitorOptions;
  readonly #governor: OverloadGovernor | undefined;
  #nextCheckMs = 0;

  /** A monitor; with `overload: false` it never changes a rung. */
  constructor(options: SourceLoadMonitorOptions) {
    this.#options = options;
    this.#governor = options.overload === false ? undefined : new OverloadGovernor(options.overload);
  }

  /** Whether a policy is active. */
  get active(): boolean {
    return this.#governor !== undefined;
  }

  /** Load state of the rung `rendition`. */
  state(rendition: string): RungLoadState {
    return this.#governor?.state(rendition) ?? 'running';
  }

  /** Forgets a rung that left the ladder (a paused one leaves the paused gauge). */
  forget(rendition: string): void {
    if (this.#governor?.state(rendition) === 'paused') {
      this.#options.metrics?.pausedRungs.dec({ transcoder: LADDER_TRANSCODER_NAME, rendition });
    }
    this.#governor?.forget(rendition);
  }

  /** Samples every rung once per interval and applies the policy's next step, if any. */
  check(rungs: ReadonlySet<LoadSampled>): void {
    const governor = this.#governor;
    if (governor === undefined || rungs.size === 0) return;
    const { now, logger, metrics, priority, broadcast } = this.#options;
    const nowMs = now();
    if (nowMs < this.#nextCheckMs) return;
    this.#nextCheckMs = nowMs + governor.options.intervalMs;
    const sorted = [...rungs].sort((a, b) => priority(a.name) - priority(b.name));
    const samples = sorted.map((r) => r.takeLoadSample(nowMs, governor.options.behindLagMs));
    for (const t of governor.evaluate(nowMs, samples)) {
      sorted.find((r) => r.name === t.rung)?.setLoadState(t.to);
      const labels = { transcoder: LADDER_TRANSCODER_NAME, rendition: t.rung };
      metrics?.overloadActions.inc({ ...labels, action: t.action });
      if (t.to === 'paused') metrics?.pausedRungs.inc(labels);
      if (t.from === 'paused') metrics?.pausedRungs.dec(labels);
      const fields = {
        broadcast,
        rendition: t.rung,
        action: t.action,
        behind: samples.filter((x) => x.behind).map((x) => x.name),
        nextHoldMs: governor.holdMs,
      };
      notifyLadderEvent(this.#options.onEvent, { kind: 'overload', broadcast, rendition: t.rung, action: t.action });
      if (t.action === 'shed' || t.action === 'pause') logger.warn('ladder overloaded: shedding a rung', fields);
      else logger.info('ladder has headroom: rung back', fields);
    }
  }
}
