/**
 * `lvqr-transcode bench`: the capacity self-test. Encodes a short synthetic 720p30 clip once
 * (moving pattern under noise, so it is not trivially compressible), then replays it in real time
 * as 1, 2, 3, ... concurrent live sources through the configured ladder (decode once, scale,
 * encode, package) and reports how many sources this machine sustains in realtime: no dropped
 * frames and rung latency p99 under one second.
 */

import { buildMediaSegment, buildVideoInitSegment, describeInit, type ParsedTrack } from '../container/index.ts';
import { CodecError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { FragmentFlags, VIDEO_TRACK } from '../fragment/fragment.ts';
import { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import { IngestManager } from '../ingest/index.ts';
import { createMetrics } from '../metrics/index.ts';
import { SoftwareLadder, SoftwareTranscoderFactory } from '../transcode/ladder/index.ts';
import type { RenditionSpec } from '../transcode/rendition.ts';
import { TranscodeRunner } from '../transcode/runner.ts';
import { bindWebCodecs } from '../transcode/webcodecs-binding.ts';
import { H264Encoder, napiProvider, type WebCodecs } from '../webcodecs/index.ts';

/** One concurrency level's outcome. */
export type CapacityStep = {
  sources: number;
  sustained: boolean;
  droppedFrames: number;
  latencyP99Ms: number;
  realtimeFactor: number;
  cpuPercent: number;
};

/** The self-test's result. */
export type CapacityResult = { maxSources: number; steps: CapacityStep[]; ladder: string };

const WIDTH = 1280;
const HEIGHT = 720;
const FPS = 30;
const TIMESCALE = 90_000;
const FRAME_TICKS = TIMESCALE / FPS;
const GOP = 60;

type Clip = { init: Uint8Array; track: ParsedTrack; frames: Array<{ data: Uint8Array; keyframe: boolean }> };

/** Encodes `frames` frames of a synthetic 720p pattern with noise. */
async function makeClip(codecs: WebCodecs, frames: number): Promise<Clip> {
  const out: Array<{ data: Uint8Array; keyframe: boolean }> = [];
  let avcC: Uint8Array | undefined;
  const encoder = new H264Encoder(codecs, {
    width: WIDTH,
    height: HEIGHT,
    bitrateBps: 4_000_000,
    framerate: FPS,
    onChunk: (chunk) => {
      avcC ??= chunk.decoderConfig?.description;
      out.push({ data: chunk.data, keyframe: chunk.keyframe });
    },
    onError: (error) => {
      throw error;
    },
  });
  const ySize = WIDTH * HEIGHT;
  const buffer = new Uint8Array((ySize * 3) / 2);
  let seed = 12345;
  for (let i = 0; i < frames; i++) {
    for (let y = 0; y < HEIGHT; y++) {
      const row = y * WIDTH;
      for (let x = 0; x < WIDTH; x++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const bar = ((x + i * 12) >> 6) & 1 ? 170 : 60;
        buffer[row + x] = (bar + ((seed >>> 24) & 31)) & 0xff;
      }
    }
    buffer.fill(128 + ((i * 3) & 63), ySize, ySize + ySize / 4);
    buffer.fill(128 - ((i * 2) & 63), ySize + ySize / 4);
    const frame = new codecs.VideoFrame(buffer, {
      format: 'I420',
      codedWidth: WIDTH,
      codedHeight: HEIGHT,
      timestamp: Math.round((i * 1e6) / FPS),
    });
    try {
      await encoder.encode(frame, { keyFrame: i % GOP === 0, durationUs: Math.round(1e6 / FPS) });
    } finally {
      frame.close();
    }
  }
  await encoder.flush();
  encoder.close();
  if (avcC === undefined)
    throw new CodecError('codec.encode_failed', 'capacity: the encoder produced no decoder configuration');
  const init = buildVideoInitSegment({
    timescale: TIMESCALE,
    width: WIDTH,
    height: HEIGHT,
    avcC,
    defaultSampleDuration: FRAME_TICKS,
  });
  const info = describeInit(init)[0]!;
  return { init, track: { ...info, trackId: VIDEO_TRACK, initSegment: init }, frames: out };
}

/** Runs the self-test; `onProgress` gets a fraction and a label. */
export async function measureCapacity(options: {
  ladder: RenditionSpec[];
  maxSources: number;
  seconds: number;
  onProgress?: (fraction: number, label: string) => void;
}): Promise<CapacityResult> {
  const provider = await napiProvider();
  const clip = await makeClip(provider.codecs, GOP * 2);
  const steps: CapacityStep[] = [];
  const gc = (globalThis as { gc?: (o?: unknown) => void }).gc;
  let maxSources = 0;
  for (let n = 1; n <= options.maxSources; n++) {
    const registry = new FragmentBroadcasterRegistry();
    const metrics = createMetrics();
    const ladder = new SoftwareLadder({
      registry,
      codecs: bindWebCodecs(provider.codecs, { backend: 'software' }),
      metrics,
      logger: silentLogger,
      gc: gc === undefined ? undefined : () => gc({ type: 'minor' }),
      // Measure the raw ladder: shedding rungs would hide exactly the shortfall being measured.
      overload: false,
    });
    const handle = new TranscodeRunner({ metrics })
      .withLadder(options.ladder, (spec) => new SoftwareTranscoderFactory(spec, ladder))
      .install(registry);
    const ingest = new IngestManager({ registry, graceMs: 0, idleTimeoutMs: 0 });
    const connections = Array.from({ length: n }, (_, i) => ingest.open(`capacity/${i}`, 'internal'));
    for (const c of connections) c.publishEvents([{ type: 'init', tracks: [clip.track] }]);
    const cpuStart = process.cpuUsage();
    const t0 = performance.now();
    const total = Math.round(options.seconds * FPS);
    for (let i = 0; i < total; i++) {
      const wait = t0 + (i * 1000) / FPS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const source = clip.frames[i % clip.frames.length]!;
      const dts = i * FRAME_TICKS;
      const payload = buildMediaSegment({
        sequenceNumber: i + 1,
        baseMediaDecodeTime: dts,
        samples: [{ data: source.data, duration: FRAME_TICKS, keyframe: source.keyframe }],
      });
      // The clip loops: its first frame is always a keyframe, so the loop point is clean.
      const keyframe = source.keyframe;
      for (const c of connections) {
        c.publishEvents([
          {
            type: 'fragment',
            fragment: {
              trackId: VIDEO_TRACK,
              groupId: Math.floor(i / GOP),
              objectId: i % GOP,
              priority: keyframe ? 0 : 1,
              dts,
              pts: dts,
              duration: FRAME_TICKS,
              flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
              payload,
              ingestTimeMs: Date.now(),
            },
            samples: [],
          },
        ]);
      }
      if (i % 15 === 0)
        options.onProgress?.((n - 1 + i / total) / options.maxSources, `${n} source${n > 1 ? 's' : ''}`);
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    // Frames still in flight (decoder and encoder delay) get up to a second to come out.
    const expectedPerRung = total;
    const settleBy = performance.now() + 1000;
    while (performance.now() < settleBy) {
      const out = handle.stats().map((s) => Number(s.transcoderStats?.['framesOut'] ?? 0));
      if (out.length > 0 && out.every((f) => f >= expectedPerRung)) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const stats = handle.stats().map((s) => s.transcoderStats ?? {});
    const dropped = stats.reduce((a, s) => a + Number(s['droppedFrames'] ?? 0), 0);
    const p99 = Math.max(0, ...stats.map((s) => Number(s['latencyMsP99'] ?? 0)));
    const framesOut = stats.reduce((a, s) => a + Number(s['framesOut'] ?? 0), 0);
    const expected = total * n * options.ladder.length;
    const rtf = framesOut / Math.max(1, expected);
    for (const c of connections) c.end('eof');
    await handle.close();
    ingest.close();
    const sustained = dropped === 0 && p99 < 1000 && rtf > 0.97;
    steps.push({
      sources: n,
      sustained,
      droppedFrames: dropped,
      latencyP99Ms: p99,
      realtimeFactor: Math.round(rtf * 100) / 100,
      cpuPercent: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 100),
    });
    if (!sustained) break;
    maxSources = n;
  }
  options.onProgress?.(1, 'done');
  return { maxSources, steps, ladder: options.ladder.map((r) => r.name).join(',') };
}
