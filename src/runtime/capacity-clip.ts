/**
 * The synthetic source of the capacity self-test: a moving bar pattern under noise (so it is not
 * trivially compressible), encoded once at 720p30 or 1080p30 with a contribution feed's bitrate and
 * a 2 s GOP (no B-frames). A publisher plays it as per-frame fMP4 fragments (`clipFragment`, what
 * `ffmpeg -re ... -movflags +frag_every_frame` sends); `clipFile` writes it as a fragmented MP4 file
 * of any length for other tools.
 */

import { buildMediaSegment, buildVideoInitSegment } from '../container/index.ts';
import { concatBytes } from '../core/bytes.ts';
import { CodecError } from '../core/errors.ts';
import { H264Encoder, type WebCodecs } from '../webcodecs/index.ts';

/** Source sizes the self-test plays. */
export type CapacitySource = '720p' | '1080p';

/** The sizes `--source` takes. */
export const CAPACITY_SOURCES: readonly CapacitySource[] = ['720p', '1080p'];

/** Frame rate of the clip. */
export const CLIP_FPS = 30;
/** Frames per GOP (2 s). */
export const CLIP_GOP = 60;
const TIMESCALE = 90_000;
const FRAME_TICKS = TIMESCALE / CLIP_FPS;

/** Size and bitrate of each source: what a live contribution feed of that size carries. */
const SOURCES: Record<CapacitySource, { width: number; height: number; bitrateBps: number }> = {
  '720p': { width: 1280, height: 720, bitrateBps: 4_000_000 },
  '1080p': { width: 1920, height: 1080, bitrateBps: 7_000_000 },
};

/** An encoded clip: its init segment and its frames, the first a keyframe, one every `CLIP_GOP`. */
export type CapacityClip = {
  readonly source: CapacitySource;
  readonly width: number;
  readonly height: number;
  readonly bitrateBps: number;
  readonly init: Uint8Array;
  readonly frames: ReadonlyArray<{ data: Uint8Array; keyframe: boolean }>;
};

/** Describes the clip: `1920x1080 30 fps, 7 Mb/s`. */
export function describeClip(clip: CapacityClip): string {
  return `${clip.width}x${clip.height} ${CLIP_FPS} fps, ${clip.bitrateBps / 1e6} Mb/s`;
}

/** Encodes `frames` frames (rounded up to whole GOPs) of the synthetic pattern at `source`'s size. */
export async function makeClip(codecs: WebCodecs, source: CapacitySource, frames: number): Promise<CapacityClip> {
  const { width, height, bitrateBps } = SOURCES[source];
  const count = Math.ceil(frames / CLIP_GOP) * CLIP_GOP;
  const out: Array<{ data: Uint8Array; keyframe: boolean }> = [];
  let avcC: Uint8Array | undefined;
  let failure: CodecError | undefined;
  const encoder = new H264Encoder(codecs, {
    width,
    height,
    bitrateBps,
    framerate: CLIP_FPS,
    onChunk: (chunk) => {
      avcC ??= chunk.decoderConfig?.description;
      out.push({ data: chunk.data, keyframe: chunk.keyframe });
    },
    onError: (error) => {
      failure ??= error;
    },
  });
  const ySize = width * height;
  const buffer = new Uint8Array((ySize * 3) / 2);
  // A noise texture that moves with the bars (so motion search finds it and x264 sees no scene cut
  // on every frame), under fresh grain of its own each frame.
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 24;
  };
  const texture = new Uint8Array(ySize);
  for (let p = 0; p < ySize; p++) texture[p] = random() & 31;
  try {
    for (let i = 0; i < count; i++) {
      const offset = i * 12;
      for (let y = 0; y < height; y++) {
        const row = y * width;
        for (let x = 0; x < width; x++) {
          const u = (x + offset) % width;
          const bar = (u >> 6) & 1 ? 170 : 60;
          buffer[row + x] = bar + texture[row + u]! + (random() & 7);
        }
      }
      buffer.fill(128 + ((i * 3) & 63), ySize, ySize + ySize / 4);
      buffer.fill(128 - ((i * 2) & 63), ySize + ySize / 4);
      const frame = new codecs.VideoFrame(buffer, {
        format: 'I420',
        codedWidth: width,
        codedHeight: height,
        timestamp: Math.round((i * 1e6) / CLIP_FPS),
      });
      try {
        await encoder.encode(frame, { keyFrame: i % CLIP_GOP === 0, durationUs: Math.round(1e6 / CLIP_FPS) });
      } finally {
        frame.close();
      }
      if (failure !== undefined) throw failure;
    }
    await encoder.flush();
  } finally {
    encoder.close();
  }
  if (failure !== undefined) throw failure;
  if (avcC === undefined || out.length !== count) {
    throw new CodecError('codec.encode_failed', `capacity: the encoder gave ${out.length} of ${count} frames`);
  }
  const init = buildVideoInitSegment({ timescale: TIMESCALE, width, height, avcC, defaultSampleDuration: FRAME_TICKS });
  return { source, width, height, bitrateBps, init, frames: out };
}

/**
 * Frame `index` of the clip played as an endless live stream, as one `moof`+`mdat`: the clip loops
 * (its first frame is a keyframe, so the loop point is clean) and time runs on.
 */
export function clipFragment(clip: CapacityClip, index: number): Uint8Array {
  const frame = clip.frames[index % clip.frames.length]!;
  return buildMediaSegment({
    sequenceNumber: index + 1,
    baseMediaDecodeTime: index * FRAME_TICKS,
    samples: [{ data: frame.data, duration: FRAME_TICKS, keyframe: frame.keyframe }],
  });
}

/** The clip looped to `frames` frames as a fragmented MP4 file (one fragment per GOP). */
export function clipFile(clip: CapacityClip, frames: number): Uint8Array {
  const parts: Uint8Array[] = [clip.init];
  for (let start = 0; start < frames; start += CLIP_GOP) {
    const samples = [];
    for (let i = start; i < Math.min(frames, start + CLIP_GOP); i++) {
      const frame = clip.frames[i % clip.frames.length]!;
      samples.push({ data: frame.data, duration: FRAME_TICKS, keyframe: frame.keyframe });
    }
    parts.push(
      buildMediaSegment({ sequenceNumber: start / CLIP_GOP + 1, baseMediaDecodeTime: start * FRAME_TICKS, samples }),
    );
  }
  return concatBytes(parts);
}
