/**
 * The overload policy of one source's ladder, as pure logic (no timers, no codecs): the ladder
 * feeds it one sample per rung every interval and applies the transitions it returns.
 *
 * Signal: a rung is "behind" in an interval when a frame reached its encoder more than
 * `behindLagMs` after a realtime pipeline would have (its arrival at ingest plus its offset inside
 * its source fragment, so a publisher that sends a whole GOP at once is not mistaken for overload,
 * and not before the frame ahead of it is done, so neither is a burst of fragments: `DueSchedule`)
 * and the rung is not catching up (its backlog did not fall over the interval), or when its queue
 * overflowed. A lag that holds or grows is what a realtime factor below 1 looks like from inside:
 * frames arrive faster than they leave. A falling one is a backlog being worked off, such as the
 * one every pipeline builds while it starts (see `RungLoad.sample` in load.ts).
 * The ladder is overloaded when more than half of its running rungs are behind: a shortage of CPU
 * slows every rung, while one slow encoder (a faulty session) only slows its own rung, which then
 * drops its own GOPs and never costs the others theirs.
 *
 * Order (one step per `sustainMs` of overload, rungs ranked by priority, the last one first):
 *   1. the lowest-priority running rung sheds load: it drops every other GOP;
 *   2. that rung pauses: no encoding, hidden from the master playlist;
 *   then the same for the next rung up. Every rung paused leaves the source as passthrough.
 * Recovery (one step per `resumeAfterMs` without overload): a shedding rung runs fully again, else
 * the highest-priority paused rung resumes. A relapse within the hold doubles it (up to
 * `maxResumeAfterMs`); no overload for that maximum resets it.
 */

/** Load state of a rung under the policy. */
export type RungLoadState = 'running' | 'shedding' | 'paused';

/** Tunables of the policy. */
export type OverloadOptions = {
  /** Arrival-to-encoder wait above which a rung not catching up counts as behind (default 1000 ms). */
  behindLagMs: number;
  /** Overload that lasts this long triggers one shedding step (default 3000 ms). */
  sustainMs: number;
  /** Calm that lasts this long undoes one step (default 10 000 ms). */
  resumeAfterMs: number;
  /** Cap of the doubled hold after relapses (default 160 000 ms). */
  maxResumeAfterMs: number;
  /** How often rungs are sampled (default 1000 ms). */
  intervalMs: number;
};

/** Defaults of `OverloadOptions`. */
export const DEFAULT_OVERLOAD: Readonly<OverloadOptions> = {
  behindLagMs: 1000,
  sustainMs: 3000,
  resumeAfterMs: 10_000,
  maxResumeAfterMs: 160_000,
  intervalMs: 1000,
};

/** One rung's sample for an interval. */
export type RungSample = {
  /** Rung (rendition) name. */
  readonly name: string;
  /** Whether it fell behind during the interval (see the module doc). */
  readonly behind: boolean;
};

/** A transition the ladder must apply. */
export type OverloadTransition = {
  readonly rung: string;
  readonly from: RungLoadState;
  readonly to: RungLoadState;
  /** `shed`, `pause`, `restore` (shedding -> running) or `resume` (paused -> running). */
  readonly action: 'shed' | 'pause' | 'restore' | 'resume';
};

/** The per-source state machine. */
export class OverloadGovernor {
  readonly #options: OverloadOptions;
  readonly #states = new Map<string, RungLoadState>();
  #overSinceMs: number | undefined;
  #calmSinceMs: number | undefined;
  #holdMs: number;
  #lastRecoveryMs = -Infinity;
  #lastOverloadMs = -Infinity;

  /** A governor with every rung running. */
  constructor(options: Partial<OverloadOptions> = {}) {
    this.#options = { ...DEFAULT_OVERLOAD, ...options };
    this.#holdMs = this.#options.resumeAfterMs;
  }

  /** The policy's tunables. */
  get options(): Readonly<OverloadOptions> {
    return this.#options;
  }

  /** Load state of `rung` (`running` for a rung never seen). */
  state(rung: string): RungLoadState {
    return this.#states.get(rung) ?? 'running';
  }

  /** Current hold before the next recovery step, ms. */
  get holdMs(): number {
    return this.#holdMs;
  }

  /** Forgets a rung that left the ladder. */
  forget(rung: string): void {
    this.#states.delete(rung);
  }

  /**
   * Takes one sample per rung, in priority order (most important first), and returns the
   * transitions to apply now (at most one).
   */
  evaluate(nowMs: number, samples: readonly RungSample[]): OverloadTransition[] {
    for (const s of samples) if (!this.#states.has(s.name)) this.#states.set(s.name, 'running');
    const working = samples.filter((s) => this.state(s.name) !== 'paused');
    const behind = working.filter((s) => s.behind).length;
    const overloaded = working.length > 0 && behind * 2 > working.length;
    if (overloaded) {
      this.#lastOverloadMs = nowMs;
      this.#calmSinceMs = undefined;
      // A sample covers the interval before it: the overload began at its start.
      this.#overSinceMs ??= nowMs - this.#options.intervalMs;
      if (nowMs - this.#overSinceMs < this.#options.sustainMs) return [];
      this.#overSinceMs = nowMs;
      return this.#escalate(nowMs, samples);
    }
    this.#overSinceMs = undefined;
    this.#calmSinceMs ??= nowMs - this.#options.intervalMs;
    if (nowMs - this.#lastOverloadMs >= this.#options.maxResumeAfterMs) this.#holdMs = this.#options.resumeAfterMs;
    if (nowMs - this.#calmSinceMs < this.#holdMs) return [];
    const transition = this.#recover(samples);
    if (transition !== undefined) {
      this.#calmSinceMs = nowMs;
      this.#lastRecoveryMs = nowMs;
    }
    return transition === undefined ? [] : [transition];
  }

  #escalate(nowMs: number, samples: readonly RungSample[]): OverloadTransition[] {
    // The first step after a recovery that came too soon (a relapse): wait longer before the next probe.
    if (nowMs - this.#lastRecoveryMs < this.#holdMs + this.#options.sustainMs * 2) {
      this.#holdMs = Math.min(this.#options.maxResumeAfterMs, this.#holdMs * 2);
    }
    this.#lastRecoveryMs = -Infinity;
    const shedding = samples.find((s) => this.state(s.name) === 'shedding');
    if (shedding !== undefined) return [this.#set(shedding.name, 'paused', 'pause')];
    const lowest = [...samples].reverse().find((s) => this.state(s.name) === 'running');
    return lowest === undefined ? [] : [this.#set(lowest.name, 'shedding', 'shed')];
  }

  #recover(samples: readonly RungSample[]): OverloadTransition | undefined {
    const shedding = samples.find((s) => this.state(s.name) === 'shedding');
    if (shedding !== undefined) return this.#set(shedding.name, 'running', 'restore');
    const paused = samples.find((s) => this.state(s.name) === 'paused');
    return paused === undefined ? undefined : this.#set(paused.name, 'running', 'resume');
  }

  #set(rung: string, to: RungLoadState, action: OverloadTransition['action']): OverloadTransition {
    const from = this.state(rung);
    this.#states.set(rung, to);
    return { rung, from, to, action };
  }
}
