/** Options of a video ladder, their defaults, and the label its metrics carry. */

import { type Logger, silentLogger } from '../../core/log.ts';
import type { FragmentBroadcasterRegistry } from '../../fragment/registry.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import type { VideoCodecs, VideoFrameLike } from '../codecs.ts';
import type { OverloadOptions } from './overload.ts';

/**
 * The factory name of every rung, as in LVQR (`SoftwareTranscoderFactory`): the `transcoder` label
 * of the metrics and the origin of the outputs. It names the factory, not the encoder, which may be
 * hardware (see `VideoCodecs.backend`).
 */
export const LADDER_TRANSCODER_NAME = 'software';

/** Options shared by every rung of a ladder. */
export type LadderOptions = {
  /** Where outputs are published (the registry the runner is installed on). */
  registry: FragmentBroadcasterRegistry;
  /** Decoder and encoder factory. */
  codecs: VideoCodecs;
  metrics?: LvqrMetrics;
  logger?: Logger;
  /**
   * Called every `gcEveryFrames` decoded frames (default 5): native frame memory is freed only on
   * GC (`@napi-rs/webcodecs`' `VideoFrame.close()` keeps the pixels until the wrapper is
   * collected). At 1080p a frame is 3.1 MB; a minor collection every 5 frames instead of 30 took
   * the ladder benchmark's peak RSS from 322 to 237 MB at the same CPU (bench/RESULTS.md).
   */
  gc?: () => void;
  gcEveryFrames?: number;
  /**
   * A full collection, run when a source's decoder closes: the addon's frame and codec memory
   * survives minor collections, and a finished session is the moment to give it back.
   */
  gcFull?: () => void;
  /** Segment target: forced-keyframe cadence when the source GOP is longer (default 2000 ms). */
  segmentTargetMs?: number;
  /** A rung's frame-queue bound; at the bound it drops whole GOPs (default 60 frames). */
  maxQueuedFrames?: number;
  /**
   * `drop` (live, default): a rung that falls behind drops whole GOPs and the others go on.
   * `wait` (offline, benchmarks): the shared decoder waits for the slowest rung; nothing is dropped.
   */
  overflow?: 'drop' | 'wait';
  /**
   * The overload policy (see overload.ts): tunables, or `false` to turn it off. On by default in
   * `drop` mode; never active in `wait` mode (nothing is dropped there).
   */
  overload?: Partial<OverloadOptions> | false;
  /**
   * Delay before retrying a decoder or encoder that failed twice or more in a row (doubles up to
   * `retryMaxMs`); after a single failure it is retried at once, at the next keyframe.
   */
  retryBaseMs?: number;
  retryMaxMs?: number;
  now?: () => number;
  /** Told of rung failures, recoveries and overload steps (operator events); what it throws is ignored. */
  onEvent?: (event: LadderEvent) => void;
  /**
   * Handed a clone of a decoded source keyframe, at most once per `keyframeTapMs` per source (the
   * thumbnails read them, so the ladder's one decode serves them too). The callee owns the frame
   * and must close it.
   */
  onKeyframe?: (broadcast: string, frame: VideoFrameLike) => void;
  /** Least time between two `onKeyframe` calls for one source (default 1000 ms). */
  keyframeTapMs?: number;
};

/** What the ladder tells `onEvent`: a rung's encoder failed or works again, or an overload step. */
export type LadderEvent =
  | { kind: 'rung_failed'; broadcast: string; rendition: string; error: string }
  | { kind: 'rung_recovered'; broadcast: string; rendition: string }
  | { kind: 'overload'; broadcast: string; rendition: string; action: 'shed' | 'pause' | 'restore' | 'resume' };

/** Hands `event` to `onEvent`, never letting it throw into the ladder. */
export function notifyLadderEvent(onEvent: ((event: LadderEvent) => void) | undefined, event: LadderEvent): void {
  try {
    onEvent?.(event);
  } catch {
    // A listener's failure is its own.
  }
}

/** `LadderOptions` with every default filled in. */
export type ResolvedLadderOptions = Required<
  Omit<LadderOptions, 'metrics' | 'gc' | 'gcFull' | 'onEvent' | 'onKeyframe'>
> &
  Pick<LadderOptions, 'metrics' | 'gc' | 'gcFull' | 'onEvent' | 'onKeyframe'>;

/** Fills in the defaults of `options`. */
export function resolveLadderOptions(options: LadderOptions): ResolvedLadderOptions {
  return {
    logger: silentLogger,
    gcEveryFrames: 5,
    segmentTargetMs: 2000,
    maxQueuedFrames: 60,
    overflow: 'drop',
    overload: {},
    retryBaseMs: 250,
    retryMaxMs: 8000,
    keyframeTapMs: 1000,
    now: Date.now,
    ...options,
  };
}

/** The queue length above which a rung holds its producer (half the bound). */
export function softQueueLimit(options: ResolvedLadderOptions): number {
  return Math.max(1, Math.floor(options.maxQueuedFrames / 2));
}
