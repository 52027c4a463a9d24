/**
 * Binds the ladder's codec contract (`VideoCodecs`) to a WebCodecs implementation through the
 * corrected `H264Decoder` / `H264Encoder` of `src/webcodecs`.
 */

import {
  H264Decoder,
  H264Encoder,
  type HardwareAccelerationPort,
  parseAvcC,
  softwareEncoderOf,
  type VideoFramePort,
  type WebCodecs,
} from '../webcodecs/index.ts';
import { FrameScaler, PendingPicture, type StartWorker, scalerThread } from '../webcodecs/scaler/index.ts';
import type { VideoCodecs } from './codecs.ts';

/** Options of the binding. */
export type WebCodecsBindingOptions = {
  /** Name of the encoder backend actually in use (from the probe), e.g. `software`. */
  backend: string;
  /** Encoder hardware preference (`prefer-hardware` falls back to software where none exists). */
  hardwareAcceleration?: HardwareAccelerationPort;
  /** Decoder queue bound (default from the decoder). */
  decoderMaxQueue?: number;
  /** Encoder queue bound (default from the encoder). */
  encoderMaxQueue?: number;
  /**
   * `encoder` (default): each encoder scales (bilinear); `quality`: rungs are scaled once per
   * decoded frame by the frame scaler (bicubic, then Lanczos-3 down the ladder) in worker threads.
   */
  scaler?: 'quality' | 'encoder';
  /** Starts the frame scaler's worker threads (the runtime's); needed by `scaler: 'quality'`. */
  startWorker?: StartWorker;
};

/** `VideoCodecs` backed by `codecs`. */
export function bindWebCodecs(codecs: WebCodecs, options: WebCodecsBindingOptions): VideoCodecs {
  let thread: ReturnType<typeof scalerThread> = null;
  if (options.scaler === 'quality') {
    if (options.startWorker === undefined) {
      throw new TypeError("bindWebCodecs: scaler 'quality' needs startWorker (the runtime's worker threads)");
    }
    thread = scalerThread(options.startWorker);
  }
  thread?.warm();
  return {
    backend: options.backend,
    ...(thread === null
      ? {}
      : {
          createScaler(source, sizes, onFailure) {
            const scaler = new FrameScaler({ codecs, thread, source, sizes, onFailure });
            return {
              scale: (frame, wanted) => scaler.scale(frame as unknown as VideoFramePort, wanted),
              close: () => scaler.close(),
            };
          },
        }),
    createDecoder(config, onFrame, onError) {
      const decoder = new H264Decoder(codecs, {
        codec: config.codec,
        description: config.description,
        ...(config.codedWidth === undefined ? {} : { codedWidth: config.codedWidth }),
        ...(config.codedHeight === undefined ? {} : { codedHeight: config.codedHeight }),
        ...(options.decoderMaxQueue === undefined ? {} : { maxQueue: options.decoderMaxQueue }),
        onFrame: (frame) => onFrame(frame),
        onError,
      });
      return {
        async decode(sample) {
          await decoder.decode(sample);
        },
        flush: () => decoder.flush(),
        close: () => decoder.close(),
      };
    },
    createEncoder(config, onChunk, onError) {
      // Under prefer-hardware, the session's first keyframe tells what really encodes it.
      let verify = options.hardwareAcceleration === 'prefer-hardware';
      const encoder = new H264Encoder(codecs, {
        width: config.width,
        height: config.height,
        bitrateBps: config.bitrateBps,
        framerate: config.framerate,
        ...(options.hardwareAcceleration === undefined ? {} : { hardwareAcceleration: options.hardwareAcceleration }),
        ...(options.encoderMaxQueue === undefined ? {} : { maxQueue: options.encoderMaxQueue }),
        onChunk: (chunk) => {
          let softwareEncoder: string | undefined;
          if (verify && chunk.decoderConfig !== undefined) {
            verify = false;
            softwareEncoder = softwareEncoderOf(chunk.data, parseAvcC(chunk.decoderConfig.description).nalLengthSize);
          }
          onChunk({
            data: chunk.data,
            timestampUs: chunk.timestampUs,
            durationUs: chunk.durationUs,
            keyframe: chunk.keyframe,
            requestedKeyframe: chunk.requestedKeyframe,
            decoderConfig:
              chunk.decoderConfig === undefined
                ? undefined
                : { description: chunk.decoderConfig.description, codec: chunk.decoderConfig.codec },
            softwareEncoder,
          });
        },
        onError,
      });
      return {
        // A picture from the frame scaler may still be in the making: its frame is awaited. Other
        // frames go straight to the encoder, as before the frame scaler (no extra await per frame).
        encode: (frame, encodeOptions) =>
          frame instanceof PendingPicture
            ? frame.picture().then((picture) => encoder.encode(picture, encodeOptions))
            : encoder.encode(frame as unknown as VideoFramePort, encodeOptions),
        flush: () => encoder.flush(),
        close: () => encoder.close(),
      };
    },
  };
}
