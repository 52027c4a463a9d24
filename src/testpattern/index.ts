/**
 * The built-in live test source: a moving pattern with a wall clock and a frame counter drawn
 * straight into I420 (painter.ts; 1280x720, 30 fps by default), encoded to H.264 with WebCodecs, plus a 440 Hz
 * tone with a beep every second encoded to AAC, packaged as CMAF (one fragment per frame or
 * audio packet) and published through the ingest path like any other publisher.
 *
 * Sync marks: each beep starts half a second into a second of the timeline, and the frame whose
 * time span holds that instant is a white flash, so the A/V offset of any output can be measured.
 * Half a second, not the whole second: keyframes fall on whole seconds, and a keyframe that is a
 * white flash would make every thumbnail white. The AAC
 * encoder's priming packet is dropped and packet k (k >= 1) is stamped at input sample
 * (k-1)*1024, so decoded audio lines up with the video to the sample.
 *
 * Pacing: frames are produced on a wall-clock schedule; when the machine falls behind, frames are
 * produced as fast as possible until caught up (none are skipped, timestamps stay regular).
 */

import type { ParsedTrack, ParserEvent } from '../container/index.ts';
import { buildAudioInitSegment, buildMediaSegment, buildVideoInitSegment, describeInit } from '../container/index.ts';
import { errorMessage, LvqrError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/log.ts';
import { AUDIO_TRACK, FragmentFlags, VIDEO_TRACK } from '../fragment/fragment.ts';
import {
  detachable,
  type EncodedAudioChunkPort,
  type H264Chunk,
  H264Encoder,
  type VideoFramePort,
  type WebCodecs,
} from '../webcodecs/index.ts';
import { BEEP_OFFSET_S, type CreateCanvas, PatternPainter } from './painter.ts';

export { isFlashFrame } from './painter.ts';

/** Options of the test pattern. */
export type TestPatternOptions = {
  codecs: WebCodecs;
  /** Receives init and fragment events (normally `IngestConnection.publishEvents`). */
  publish: (events: ParserEvent[]) => void;
  /** Shown in the picture. */
  label?: string;
  width?: number;
  height?: number;
  fps?: number;
  videoBitrateBps?: number;
  /** Keyframe interval in frames (default 1 s: a player starting near the live edge loads fewer parts from a keyframe). */
  gopFrames?: number;
  /** Include the AAC tone (default true when the codecs have an AudioEncoder). */
  audio?: boolean;
  logger?: Logger;
  now?: () => number;
};

const VIDEO_TIMESCALE = 90_000;
const AUDIO_RATE = 48_000;
const AAC_FRAME = 1024;

function trackFrom(init: Uint8Array, trackId: typeof VIDEO_TRACK | typeof AUDIO_TRACK): ParsedTrack {
  const info = describeInit(init)[0];
  if (info === undefined) throw new LvqrError('internal', 'test pattern: init segment without a track');
  return { ...info, trackId, initSegment: init };
}

/** A running test pattern; `stop()` ends it and flushes the encoders. */
export class TestPatternSource {
  readonly #o: Required<Omit<TestPatternOptions, 'label' | 'audio'>> & { label: string; audio: boolean };
  #painter: PatternPainter | undefined;
  #video: H264Encoder | undefined;
  #audio:
    | {
        encoder: { encode(d: unknown): void; flush(): Promise<void>; close(): void; encodeQueueSize: number };
        detach(): void;
      }
    | undefined;
  #videoInit: Uint8Array | undefined;
  #audioInit: Uint8Array | undefined;
  #audioConfig: Uint8Array | undefined;
  #initSent = false;
  #frame = 0;
  #audioSamples = 0;
  #audioPackets = 0;
  #audioOutputs = 0;
  #videoSeq = 0;
  #audioSeq = 0;
  #running = false;
  #loop: Promise<void> | undefined;
  #pendingVideo: Array<{ chunk: H264Chunk; ingestTimeMs: number }> = [];
  #pendingAudio: Array<{ data: Uint8Array; ingestTimeMs: number }> = [];
  #error: string | undefined;
  /** When each frame in the encoder was drawn (its capture time), by timestamp (µs). */
  readonly #drawnMs = new Map<number, number>();

  /** Prepares a test pattern; call `start()`. */
  constructor(options: TestPatternOptions) {
    const fps = options.fps ?? 30;
    this.#o = {
      width: 1280,
      height: 720,
      fps,
      videoBitrateBps: 4_000_000,
      gopFrames: Math.round(fps),
      logger: silentLogger,
      now: Date.now,
      ...options,
      label: options.label ?? 'lvqr-transcode test pattern',
      audio: options.audio ?? options.codecs.AudioEncoder !== undefined,
    };
  }

  /** Frames produced so far. */
  get frames(): number {
    return this.#frame;
  }

  /** Last error, if the source stopped on one. */
  get error(): string | undefined {
    return this.#error;
  }

  /** Loads the canvas, configures the encoders and starts the paced loop. */
  async start(): Promise<void> {
    const { createCanvas } = (await import('@napi-rs/canvas')) as unknown as { createCanvas: CreateCanvas };
    const { width, height, fps } = this.#o;
    this.#painter = new PatternPainter(createCanvas, { width, height, fps, label: this.#o.label });
    this.#video = new H264Encoder(this.#o.codecs, {
      width,
      height,
      bitrateBps: this.#o.videoBitrateBps,
      framerate: this.#o.fps,
      onChunk: (chunk) => this.#onVideo(chunk),
      onError: (error) => this.#fail(error),
    });
    if (this.#o.audio) this.#startAudio();
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops producing, flushes the encoders and publishes what they return. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    await this.#loop;
    try {
      await this.#video?.flush();
      await this.#audio?.encoder.flush();
    } catch {
      // Flushing a failed encoder is best effort.
    }
    this.#drainPending();
    this.#video?.close();
    this.#audio?.encoder.close();
    this.#audio?.detach();
  }

  #startAudio(): void {
    const AudioEncoder = this.#o.codecs.AudioEncoder;
    if (AudioEncoder === undefined) return;
    // Through a relay cut at stop: the addon holds these callbacks until the codec is finalized.
    const relay = detachable({
      output: (chunk: EncodedAudioChunkPort, metadata?: { decoderConfig?: unknown }) => {
        const description = (metadata?.decoderConfig as { description?: ArrayBuffer | Uint8Array } | undefined)
          ?.description;
        if (description !== undefined && this.#audioConfig === undefined) {
          this.#audioConfig =
            description instanceof Uint8Array
              ? description.slice()
              : new Uint8Array(description as ArrayBuffer).slice();
          this.#audioInit = buildAudioInitSegment({
            timescale: AUDIO_RATE,
            sampleRate: AUDIO_RATE,
            channelCount: 2,
            codec: 'aac',
            description: this.#audioConfig,
            bitrateBps: 128_000,
          });
        }
        // Packet 0 holds only the encoder's 1024 samples of priming.
        this.#audioOutputs += 1;
        if (this.#audioOutputs === 1) return;
        const data = new Uint8Array(chunk.byteLength);
        chunk.copyTo(data);
        this.#pendingAudio.push({ data, ingestTimeMs: this.#o.now() });
        this.#drainPending();
      },
      error: (error: Error) => this.#fail(error),
    });
    const encoder = new AudioEncoder(relay.callbacks);
    encoder.configure({ codec: 'mp4a.40.2', sampleRate: AUDIO_RATE, numberOfChannels: 2, bitrate: 128_000 });
    this.#audio = { encoder: encoder as never, detach: relay.detach };
  }

  async #run(): Promise<void> {
    const start = this.#o.now();
    const frameMs = 1000 / this.#o.fps;
    while (this.#running) {
      const due = start + this.#frame * frameMs;
      const wait = due - this.#o.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      if (!this.#running) break;
      try {
        await this.#produceFrame();
      } catch (error) {
        this.#fail(error);
        break;
      }
    }
  }

  async #produceFrame(): Promise<void> {
    const { width, height, fps, codecs } = this.#o;
    const index = this.#frame;
    const drawnMs = this.#o.now();
    const planes = this.#painter!.paint(index, drawnMs);
    const timestampUs = Math.round((index * 1_000_000) / fps);
    this.#drawnMs.set(timestampUs, drawnMs);
    // Frames the encoder never returned are forgotten after a while.
    if (this.#drawnMs.size > 4 * fps) this.#drawnMs.delete(this.#drawnMs.keys().next().value!);
    const frame: VideoFramePort = new codecs.VideoFrame(planes, {
      format: 'I420',
      codedWidth: width,
      codedHeight: height,
      timestamp: timestampUs,
    });
    try {
      await this.#video!.encode(frame, {
        keyFrame: index % this.#o.gopFrames === 0,
        durationUs: Math.round(1_000_000 / fps),
      });
    } finally {
      frame.close();
    }
    this.#frame += 1;
    if (this.#audio !== undefined) this.#produceAudio(((index + 1) * AUDIO_RATE) / fps);
  }

  /** Encodes tone samples up to sample index `until` in whole AAC frames. */
  #produceAudio(until: number): void {
    const AudioData = this.#o.codecs.AudioData;
    if (AudioData === undefined || this.#audio === undefined) return;
    while (this.#audioSamples + AAC_FRAME <= until) {
      const planar = new Float32Array(AAC_FRAME * 2);
      for (let i = 0; i < AAC_FRAME; i++) {
        const n = this.#audioSamples + i;
        const t = n / AUDIO_RATE;
        const beep = (n - BEEP_OFFSET_S * AUDIO_RATE + AUDIO_RATE) % AUDIO_RATE < AUDIO_RATE / 10;
        const v = 0.2 * Math.sin(2 * Math.PI * (beep ? 880 : 440) * t);
        planar[i] = v;
        planar[AAC_FRAME + i] = v;
      }
      const data = new AudioData({
        format: 'f32-planar',
        sampleRate: AUDIO_RATE,
        numberOfFrames: AAC_FRAME,
        numberOfChannels: 2,
        timestamp: Math.round((this.#audioSamples * 1_000_000) / AUDIO_RATE),
        data: planar,
      });
      try {
        this.#audio.encoder.encode(data);
      } finally {
        data.close();
      }
      this.#audioSamples += AAC_FRAME;
    }
  }

  #onVideo(chunk: H264Chunk): void {
    if (chunk.decoderConfig !== undefined && this.#videoInit === undefined) {
      this.#videoInit = buildVideoInitSegment({
        timescale: VIDEO_TIMESCALE,
        width: this.#o.width,
        height: this.#o.height,
        avcC: chunk.decoderConfig.description,
        defaultSampleDuration: Math.round(VIDEO_TIMESCALE / this.#o.fps),
      });
    }
    // A frame's ingest time is when it was drawn: the pattern is the camera, and the playlists'
    // PROGRAM-DATE-TIMEs count from the first frame's, so they are capture times.
    const drawnMs = this.#drawnMs.get(chunk.timestampUs);
    this.#drawnMs.delete(chunk.timestampUs);
    this.#pendingVideo.push({ chunk, ingestTimeMs: drawnMs ?? this.#o.now() });
    this.#drainPending();
  }

  /** Publishes what is ready, in order; the first publication is the init (video + audio). */
  #drainPending(): void {
    if (!this.#initSent) {
      if (this.#videoInit === undefined) return;
      if (this.#audio !== undefined && this.#audioInit === undefined && this.#frame < this.#o.fps) return;
      const tracks = [trackFrom(this.#videoInit, VIDEO_TRACK)];
      if (this.#audioInit !== undefined) tracks.push(trackFrom(this.#audioInit, AUDIO_TRACK));
      this.#o.publish([{ type: 'init', tracks }]);
      this.#initSent = true;
    }
    const events: ParserEvent[] = [];
    const frameTicks = Math.round(VIDEO_TIMESCALE / this.#o.fps);
    for (const { chunk, ingestTimeMs } of this.#pendingVideo.splice(0)) {
      const dts = Math.round((chunk.timestampUs * VIDEO_TIMESCALE) / 1_000_000);
      // Only the GOP starts we asked for are keyframes of the stream: x264 also puts an IDR on a
      // hard scene cut (the white sync flash), which must not become a segment start or a thumbnail.
      const frameIndex = Math.round((chunk.timestampUs * this.#o.fps) / 1_000_000);
      const keyframe = chunk.keyframe && frameIndex % this.#o.gopFrames === 0;
      this.#videoSeq += 1;
      const payload = buildMediaSegment({
        sequenceNumber: this.#videoSeq,
        baseMediaDecodeTime: dts,
        samples: [{ data: chunk.data, duration: frameTicks, keyframe }],
      });
      events.push({
        type: 'fragment',
        fragment: {
          trackId: VIDEO_TRACK,
          groupId: Math.floor(dts / (frameTicks * this.#o.gopFrames)),
          objectId: 0,
          priority: keyframe ? 0 : 1,
          dts,
          pts: dts,
          duration: frameTicks,
          flags: keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
          payload,
          ingestTimeMs,
        },
        samples: [],
      });
    }
    if (this.#audioInit !== undefined) {
      for (const { data, ingestTimeMs } of this.#pendingAudio.splice(0)) {
        const dts = this.#audioPackets * AAC_FRAME;
        this.#audioPackets += 1;
        this.#audioSeq += 1;
        const payload = buildMediaSegment({
          sequenceNumber: this.#audioSeq,
          baseMediaDecodeTime: dts,
          samples: [{ data, duration: AAC_FRAME, keyframe: true }],
        });
        events.push({
          type: 'fragment',
          fragment: {
            trackId: AUDIO_TRACK,
            groupId: this.#audioPackets,
            objectId: 0,
            priority: 0,
            dts,
            pts: dts,
            duration: AAC_FRAME,
            flags: FragmentFlags.AUDIO,
            payload,
            ingestTimeMs,
          },
          samples: [],
        });
      }
    }
    if (events.length > 0) this.#o.publish(events);
  }

  #fail(error: unknown): void {
    if (this.#error !== undefined) return;
    this.#error = errorMessage(error);
    this.#running = false;
    this.#o.logger.error('test pattern stopped', { error: this.#error });
  }
}
