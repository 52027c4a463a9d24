/**
 * Binds the audio ladder's codec contract (`AudioCodecs`) to a WebCodecs implementation: AAC (and
 * any codec the implementation decodes) to interleaved float PCM, PCM to AAC-LC or Opus packets.
 *
 * Back-pressure: `decode` / `encode` wait while the native queue holds `maxQueue` items, and
 * otherwise yield one macrotask every `maxQueue` calls: the addon delivers outputs through the
 * event loop and loses them when the loop never turns. The queue is counted from dequeue events,
 * and closing is tracked here: the addon's `*QueueSize` and `state` getters wait for the lock its
 * codec thread holds while it works (see webcodecs/queue-count.ts). Errors reach `onError` once, as `CodecError`; the owner closes and rebuilds.
 */

import { CodecError, errorMessage } from '../core/errors.ts';
import { yieldMacrotask } from '../core/yield.ts';
import { type AudioDataPort, detachable, type EncodedAudioChunkPort, type WebCodecs } from '../webcodecs/index.ts';
import { QueueCount } from '../webcodecs/queue-count.ts';
import type { AudioCodecs, AudioEncoderConfig, PcmBlock } from './audio/audio-codecs.ts';

/** Queue bound of a decoder or encoder, in calls. */
const DEFAULT_MAX_QUEUE = 8;

/** WebCodecs codec string of an encoder configuration. */
const CODEC_STRINGS: Record<AudioEncoderConfig['codec'], string> = { aac: 'mp4a.40.2', opus: 'opus' };

/** Options of the audio binding. */
export type AudioWebCodecsBindingOptions = {
  /** Queue bound of each decoder and encoder (default 8). */
  maxQueue?: number;
};

function toBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value.slice();
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value))
    return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  return undefined;
}

/** Copies `data` out as one interleaved f32 block (the caller closes `data`). */
function pcmOf(data: AudioDataPort): PcmBlock {
  const frames = data.numberOfFrames;
  const channels = data.numberOfChannels;
  const out = new Float32Array(frames * channels);
  data.copyTo(out, { planeIndex: 0, format: 'f32' });
  return { timestampUs: data.timestamp, sampleRate: data.sampleRate, channels, frames, data: out };
}

/**
 * After call number `calls`: waits until `queue` is below `max`, one macrotask at a time, and
 * otherwise yields one macrotask every `max` calls (outputs arrive through the event loop). A
 * yield on every call costs a whole loop turn per packet, which a process busy with a video
 * ladder cannot give: its audio renditions fell seconds behind.
 */
async function room(queue: QueueCount, native: () => number, max: number, calls: number): Promise<void> {
  if (calls % max !== 0 && queue.value < max) return;
  for (;;) {
    await yieldMacrotask();
    if (queue.value < max) return;
    if (queue.stale) queue.resync(native());
  }
}

/** `AudioCodecs` backed by `codecs`, or undefined when the implementation has no audio classes. */
export function bindAudioWebCodecs(
  codecs: WebCodecs,
  options: AudioWebCodecsBindingOptions = {},
): AudioCodecs | undefined {
  const { AudioDecoder, AudioEncoder, AudioData, EncodedAudioChunk } = codecs;
  if (
    AudioDecoder === undefined ||
    AudioEncoder === undefined ||
    AudioData === undefined ||
    EncodedAudioChunk === undefined
  ) {
    return undefined;
  }
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  return {
    createDecoder(config, onBlock, onError) {
      let failed = false;
      const fail = (error: unknown): void => {
        if (failed) return;
        failed = true;
        onError(new CodecError('codec.decode_failed', `audio decoder: ${errorMessage(error)}`, { cause: error }));
      };
      const queue = new QueueCount();
      // Through a relay cut at close: the addon holds these callbacks until the codec is finalized.
      const relay = detachable({
        output: (data: AudioDataPort) => {
          try {
            onBlock(pcmOf(data));
          } catch (error) {
            fail(error);
          } finally {
            data.close();
          }
        },
        error: fail,
        dequeue: () => queue.dequeued(),
      });
      const decoder = new AudioDecoder({ output: relay.callbacks.output, error: relay.callbacks.error });
      try {
        decoder.configure({
          codec: config.codec,
          sampleRate: config.sampleRate,
          numberOfChannels: config.channels,
          description: config.description,
        });
      } catch (error) {
        decoder.close();
        relay.detach();
        throw new CodecError('codec.config', `audio decoder ${config.codec}: ${errorMessage(error)}`, { cause: error });
      }
      let calls = 0;
      let closed = false;
      decoder.ondequeue = relay.callbacks.dequeue;
      return {
        async decode(sample) {
          if (failed || closed) throw new CodecError('codec.closed', 'audio decoder is closed');
          decoder.decode(
            new EncodedAudioChunk({
              type: 'key',
              timestamp: sample.timestampUs,
              duration: sample.durationUs,
              data: sample.data,
            }),
          );
          queue.queued();
          calls += 1;
          await room(queue, () => decoder.decodeQueueSize, maxQueue, calls);
        },
        async flush() {
          if (failed || decoder.state !== 'configured') return;
          await decoder.flush();
          await yieldMacrotask();
        },
        close() {
          closed = true;
          decoder.ondequeue = null;
          if (decoder.state !== 'closed') decoder.close();
          relay.detach();
        },
      };
    },
    createEncoder(config, onPacket, onError) {
      let failed = false;
      const fail = (error: unknown): void => {
        if (failed) return;
        failed = true;
        onError(new CodecError('codec.encode_failed', `audio encoder: ${errorMessage(error)}`, { cause: error }));
      };
      const queue = new QueueCount();
      const relay = detachable({
        output: (chunk: EncodedAudioChunkPort, metadata?: { decoderConfig?: unknown }) => {
          try {
            const data = new Uint8Array(chunk.byteLength);
            chunk.copyTo(data);
            const described = (metadata?.decoderConfig as { description?: unknown } | undefined)?.description;
            onPacket({ data, timestampUs: chunk.timestamp, description: toBytes(described) });
          } catch (error) {
            fail(error);
          }
        },
        error: fail,
        dequeue: () => queue.dequeued(),
      });
      const encoder = new AudioEncoder({ output: relay.callbacks.output, error: relay.callbacks.error });
      try {
        encoder.configure({
          codec: CODEC_STRINGS[config.codec],
          sampleRate: config.sampleRate,
          numberOfChannels: config.channels,
          bitrate: config.bitrateBps,
        });
      } catch (error) {
        encoder.close();
        relay.detach();
        throw new CodecError('codec.config', `audio encoder ${config.codec}: ${errorMessage(error)}`, { cause: error });
      }
      let calls = 0;
      let closed = false;
      encoder.ondequeue = relay.callbacks.dequeue;
      return {
        async encode(block) {
          if (failed || closed) throw new CodecError('codec.closed', 'audio encoder is closed');
          const data = new AudioData({
            format: 'f32',
            sampleRate: block.sampleRate,
            numberOfFrames: block.frames,
            numberOfChannels: block.channels,
            timestamp: block.timestampUs,
            data: block.data,
          });
          try {
            encoder.encode(data);
            queue.queued();
          } finally {
            data.close();
          }
          calls += 1;
          await room(queue, () => encoder.encodeQueueSize, maxQueue, calls);
        },
        async flush() {
          if (failed || encoder.state !== 'configured') return;
          await encoder.flush();
          await yieldMacrotask();
        },
        close() {
          closed = true;
          encoder.ondequeue = null;
          if (encoder.state !== 'closed') encoder.close();
          relay.detach();
        },
      };
    },
  };
}
