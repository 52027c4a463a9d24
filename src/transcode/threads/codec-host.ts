/**
 * The far side of the codec protocol (`../chromium/protocol.ts`) over any `VideoCodecs`: what a
 * codec thread runs. It holds one source's decoder, its rungs' encoders and the frames that
 * decoder made (named by id), answers each call once its codec accepted it, and sends decoded
 * frames (ids only) and encoded chunks back. The Chromium page runs the same protocol over the
 * browser's WebCodecs (`../chromium/page.ts`); here the codecs are the corrected in-process ones
 * (`bindWebCodecs`), so a thread gets the same frames and chunks the main thread would.
 */

import { errorMessage } from '../../core/errors.ts';
import {
  chunkPayload,
  decodeMessage,
  encodeMessage,
  FLAG,
  type Message,
  type MessageHead,
  OP,
} from '../chromium/protocol.ts';
import type { DecoderLike, EncoderLike, VideoCodecs, VideoFrameLike } from '../codecs.ts';

/** Options of `hostCodecs`. */
export type CodecHostOptions = {
  /** Sends one wire message to the service (the buffer may be transferred). */
  post(bytes: Uint8Array): void;
  /** Run every `gcEveryFrames` decoded frames: native frame memory is given back only on collection. */
  gc?: (() => void) | undefined;
  gcEveryFrames?: number;
};

const text = new TextEncoder();
const untext = new TextDecoder();

/** Serves the protocol over `codecs`; returns the handler of each message from the service. */
export function hostCodecs(codecs: VideoCodecs, options: CodecHostOptions): (bytes: Uint8Array) => void {
  const decoders = new Map<number, DecoderLike>();
  const encoders = new Map<number, EncoderLike>();
  const frames = new Map<number, VideoFrameLike>();
  /** How many encode calls still hold each frame (by ref): those handles are not renewed. */
  const encoding = new Map<number, number>();
  const gcEveryFrames = options.gcEveryFrames ?? 5;
  let nextFrame = 1;
  let decoded = 0;

  const send = (head: MessageHead, payload?: Uint8Array): void => options.post(encodeMessage(head, payload));
  const fail = (id: number, seq: number, error: unknown): void =>
    send({ op: OP.error, id, seq }, text.encode(errorMessage(error)));
  /** Answers call `seq` of codec `id` when `accepted` settles. */
  const answer = (id: number, seq: number, accepted: Promise<void>): void => {
    accepted.then(
      () => send({ op: OP.done, id, seq }),
      (error: unknown) => fail(id, seq, error),
    );
  };

  function configureDecoder(m: Message): void {
    const config = JSON.parse(untext.decode(m.payload)) as {
      codec: string;
      description: number[];
      codedWidth?: number;
      codedHeight?: number;
    };
    const decoder = codecs.createDecoder(
      {
        codec: config.codec,
        description: Uint8Array.from(config.description),
        ...(config.codedWidth === undefined ? {} : { codedWidth: config.codedWidth }),
        ...(config.codedHeight === undefined ? {} : { codedHeight: config.codedHeight }),
      },
      (frame) => {
        // The decoder closes its frame when this returns: the thread keeps a handle of its own.
        const ref = nextFrame++;
        frames.set(ref, frame.clone());
        send({ op: OP.frame, id: m.id, ref, timestampUs: frame.timestamp });
        decoded += 1;
        if (options.gc !== undefined && decoded % gcEveryFrames === 0) {
          renewHandles();
          options.gc();
        }
      },
      (error) => fail(m.id, 0, error),
    );
    decoders.set(m.id, decoder);
  }

  function configureEncoder(m: Message): void {
    const config = JSON.parse(untext.decode(m.payload)) as {
      width: number;
      height: number;
      bitrate: number;
      framerate: number;
    };
    const encoder = codecs.createEncoder(
      { width: config.width, height: config.height, bitrateBps: config.bitrate, framerate: config.framerate },
      (chunk) => {
        const flags = (chunk.keyframe ? FLAG.keyframe : 0) | (chunk.decoderConfig === undefined ? 0 : FLAG.config);
        const payload = chunkPayload(chunk.data, chunk.decoderConfig);
        send({ op: OP.chunk, id: m.id, flags, timestampUs: chunk.timestampUs }, payload);
      },
      (error) => fail(m.id, 0, error),
    );
    encoders.set(m.id, encoder);
  }

  /**
   * Gives every frame the thread holds for the service (but those an encode call holds) a new
   * handle, before each collection: as in the shared decoder (RungTranscoder.renewFrameHandles), a
   * handle that survives two young-generation collections would keep its pixels from the decoder's
   * pool until a rare full collection, and the pool grows meanwhile.
   */
  function renewHandles(): void {
    for (const [ref, frame] of frames) {
      if (encoding.has(ref)) continue;
      const fresh = frame.clone();
      frame.close();
      frames.set(ref, fresh);
    }
  }

  function flush(codec: DecoderLike | EncoderLike | undefined, m: Message): void {
    if (codec === undefined) fail(m.id, m.seq, 'closed');
    else answer(m.id, m.seq, codec.flush());
  }

  function close(map: Map<number, DecoderLike | EncoderLike>, id: number): void {
    map.get(id)?.close();
    map.delete(id);
  }

  function decode(m: Message): void {
    const decoder = decoders.get(m.id);
    if (decoder === undefined) {
      fail(m.id, m.seq, 'no such decoder');
      return;
    }
    const keyframe = (m.flags & FLAG.keyframe) !== 0;
    answer(
      m.id,
      m.seq,
      decoder.decode({ data: m.payload, timestampUs: m.timestampUs, durationUs: m.durationUs, keyframe }),
    );
  }

  function encode(m: Message): void {
    const encoder = encoders.get(m.id);
    const frame = frames.get(m.ref);
    if (encoder === undefined || frame === undefined) {
      fail(m.id, m.seq, encoder === undefined ? 'no such encoder' : 'no such frame');
      return;
    }
    const keyFrame = (m.flags & FLAG.keyframe) !== 0;
    encoding.set(m.ref, (encoding.get(m.ref) ?? 0) + 1);
    let accepted: Promise<void>;
    try {
      accepted = encoder.encode(frame, { keyFrame, durationUs: m.durationUs });
    } catch (error) {
      accepted = Promise.reject(error);
    }
    const done = (): void => {
      const left = (encoding.get(m.ref) ?? 1) - 1;
      if (left > 0) encoding.set(m.ref, left);
      else encoding.delete(m.ref);
    };
    answer(m.id, m.seq, accepted.finally(done));
  }

  function releaseFrame(m: Message): void {
    frames.get(m.ref)?.close();
    frames.delete(m.ref);
  }

  /** What each call does (other messages are not for a codec thread and are ignored). */
  const handlers: Record<number, (m: Message) => void> = {
    [OP.decoderConfigure]: configureDecoder,
    [OP.encoderConfigure]: configureEncoder,
    [OP.decode]: decode,
    [OP.encode]: encode,
    [OP.decoderFlush]: (m) => flush(decoders.get(m.id), m),
    [OP.encoderFlush]: (m) => flush(encoders.get(m.id), m),
    [OP.decoderClose]: (m) => close(decoders, m.id),
    [OP.encoderClose]: (m) => close(encoders, m.id),
    [OP.frameRelease]: releaseFrame,
  };

  return (bytes) => {
    const m = decodeMessage(bytes);
    if (m === undefined) return;
    try {
      handlers[m.op]?.(m);
    } catch (error) {
      fail(m.id, m.seq, error);
    }
  };
}
