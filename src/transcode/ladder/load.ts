/**
 * Load sampling for the overload policy (overload.ts): what each rung measures during an interval
 * (`RungLoad`), and the per-source monitor that samples every rung once per interval, asks the
 * policy for its next step and applies it (`SourceLoadMonitor`).
 */

import type { Logger } from '../../core/log.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import { LADDER_TRANSCODER_NAME, type LadderEvent, notifyLadderEvent } from './options.ts';
import { OverloadGovernor, type OverloadOptions, type RungLoadState, type RungSample } from './overload.ts';

/** One rung's load state and what it saw during the current sampling interval. */
export class RungLoad {
  #state: RungLoadState = 'running';
  /** Longest arrival-to-encoder wait this interval, ms. */
  #maxLagMs = 0;
  /** The queue overflowed this interval. */
  #overflowed = false;
  /** Shedding: the current GOP is being dropped (every other one is). */
  #shedSkip = false;

  /** Load state under the overload policy. */
  get state(): RungLoadState {
    return this.#state;
  }

  /** Applies a policy step; returns whether the state changed. */
  set(state: RungLoadState): boolean {
    if (state === this.#state) return false;
    this.#state = state;
    this.#shedSkip = false;
    return true;
  }

  /**
   * Whether the policy drops a frame: a paused rung drops everything, a shedding one every other
   * GOP (the GOP changes at each forced keyframe).
   */
  drops(forceKey: boolean): boolean {
    if (this.#state === 'running') return false;
    if (this.#state === 'shedding' && forceKey) this.#shedSkip = !this.#shedSkip;
    return this.#state === 'paused' || this.#shedSkip;
  }

  /** A frame reached the encoder `lagMs` after a realtime pipeline would have. */
  noteLag(lagMs: number): void {
    this.#maxLagMs = Math.max(this.#maxLagMs, lagMs);
  }

  /** The rung's queue overflowed. */
  noteOverflow(): void {
    this.#overflowed = true;
  }

  /**
   * This interval's sample and the start of the next: behind when the queue overflowed or a frame
   * (handled, or still waiting since `oldestWaitingMs`) lagged more than `behindLagMs`.
   */
  sample(name: string, oldestWaitingMs: number, behindLagMs: number): RungSample {
    const behind = this.#overflowed || Math.max(this.#maxLagMs, oldestWaitingMs) > behindLagMs;
    this.#overflowed = false;
    this.#maxLagMs = 0;
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
