/**
 * A rung's counters and recent-output window: frames in, out and dropped, bytes, restarts,
 * latency percentiles, output bitrate, encode rate and realtime factor; and the Prometheus series
 * that mirror them.
 */

import { percentile } from '../../core/percentile.ts';
import type { LvqrMetrics } from '../../metrics/index.ts';
import type { FrameMeta } from './frames.ts';
import { LADDER_TRANSCODER_NAME } from './options.ts';

/** Latencies kept for the percentiles. */
const LATENCY_WINDOW = 600;
/** Output kept for the rates, ms (the rates read the last 5 s of it). */
const OUTPUT_WINDOW_MS = 10_000;
const RATE_WINDOW_MS = 5000;

/** The numbers of `TranscoderStats` that a rung's counters give. */
export type RungCounters = {
  framesIn: number;
  framesOut: number;
  bytesOut: number;
  droppedFrames: number;
  restarts: number;
  outputBitrateBps: number | undefined;
  encodeFps: number | undefined;
  realtimeFactor: number | undefined;
  latencyMsP50: number | undefined;
  latencyMsP99: number | undefined;
};

/** Counters of one rung. */
export class RungStats {
  readonly #labels: { transcoder: string; rendition: string };
  readonly #metrics: LvqrMetrics | undefined;
  #framesIn = 0;
  #framesOut = 0;
  #bytesOut = 0;
  #dropped = 0;
  #restarts = 0;
  #latencies: number[] = [];
  #window: Array<{ wallMs: number; mediaMs: number; bytes: number }> = [];
  #gaugeAtMs = 0;

  /** Counters of rung `rendition`, mirrored to `metrics` when given. */
  constructor(rendition: string, metrics: LvqrMetrics | undefined) {
    this.#labels = { transcoder: LADDER_TRANSCODER_NAME, rendition };
    this.#metrics = metrics;
  }

  /** A source frame reached the rung. */
  countIn(): void {
    this.#framesIn += 1;
  }

  /** The rung's queue holds `frames` decoded frames after queueing one. */
  noteHeld(frames: number): void {
    this.#metrics?.heldFrames.observe(this.#labels, frames);
  }

  /** Source frames the rung did not encode. */
  countDropped(frames: number): void {
    if (frames <= 0) return;
    this.#dropped += frames;
    this.#metrics?.droppedFragments.inc(this.#labels, frames);
  }

  /** The encoder failed and will be rebuilt. */
  countRestart(): void {
    this.#restarts += 1;
    this.#metrics?.restarts.inc(this.#labels);
  }

  /** An encoder session started on `backend`. */
  noteBackend(backend: string): void {
    this.#metrics?.encoderBackend.set({ ...this.#labels, backend }, 1);
  }

  /** An encoder session asked for hardware (`asked`) was served by software: counted, and the backend gauge moves. */
  noteFallback(asked: string, softwareEncoder: string): void {
    this.#metrics?.hardwareFallbacks.inc({ reason: `encoder session served by ${softwareEncoder}` });
    this.#metrics?.encoderBackend.set({ ...this.#labels, backend: asked }, 0);
    this.#metrics?.encoderBackend.set({ ...this.#labels, backend: 'software' }, 1);
  }

  /** One output fragment of `bytes` was published at `nowMs` for the frame `meta`. */
  countOutput(nowMs: number, meta: FrameMeta, bytes: number): void {
    this.#framesOut += 1;
    this.#bytesOut += bytes;
    const metrics = this.#metrics;
    metrics?.outputFragments.inc(this.#labels);
    metrics?.outputBytes.inc(this.#labels, bytes);
    if (meta.ingestTimeMs > 0) {
      const latencyMs = nowMs - meta.ingestTimeMs;
      this.#latencies.push(latencyMs);
      if (this.#latencies.length > LATENCY_WINDOW) this.#latencies.shift();
      metrics?.latency.observe(this.#labels, latencyMs / 1000);
    }
    this.#window.push({ wallMs: nowMs, mediaMs: (meta.duration * 1000) / meta.timescale, bytes });
    while (this.#window.length > 0 && nowMs - this.#window[0]!.wallMs > OUTPUT_WINDOW_MS) this.#window.shift();
    // The gauge is refreshed once a second, not per frame.
    if (metrics !== undefined && nowMs - this.#gaugeAtMs >= 1000) {
      this.#gaugeAtMs = nowMs;
      const { wallMs, mediaMs } = this.#recent(nowMs);
      if (wallMs > 0) metrics.realtimeFactor.set(this.#labels, Math.round((mediaMs / wallMs) * 100) / 100);
    }
  }

  /** Output over the last 5 s: wall time spanned, media time and bytes produced, frames. */
  #recent(nowMs: number): { wallMs: number; mediaMs: number; bytes: number; frames: number } {
    const recent = this.#window.filter((w) => nowMs - w.wallMs <= RATE_WINDOW_MS);
    const first = recent[0];
    const last = recent.at(-1);
    return {
      wallMs: first !== undefined && last !== undefined ? last.wallMs - first.wallMs : 0,
      mediaMs: recent.reduce((a, w) => a + w.mediaMs, 0) - (first?.mediaMs ?? 0),
      bytes: recent.reduce((a, w) => a + w.bytes, 0) - (first?.bytes ?? 0),
      frames: recent.length,
    };
  }

  /** The counters and rates as of `nowMs`. */
  snapshot(nowMs: number): RungCounters {
    const { wallMs, mediaMs, bytes, frames } = this.#recent(nowMs);
    return {
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      bytesOut: this.#bytesOut,
      droppedFrames: this.#dropped,
      restarts: this.#restarts,
      outputBitrateBps: mediaMs > 0 ? Math.round((bytes * 8 * 1000) / mediaMs) : undefined,
      encodeFps: wallMs > 0 ? Math.round(((frames - 1) * 1000 * 100) / wallMs) / 100 : undefined,
      realtimeFactor: wallMs > 0 ? Math.round((mediaMs / wallMs) * 100) / 100 : undefined,
      latencyMsP50: percentile(this.#latencies, 50),
      latencyMsP99: percentile(this.#latencies, 99),
    };
  }
}
