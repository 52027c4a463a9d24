/**
 * The codec thread's side of the codec protocol (`hostCodecs`), over fake codecs (logic only; the
 * real codecs through real threads are in threads.test.ts): calls are answered when their codec
 * accepted them, decoded frames are kept by id until released, calls naming what is not there are
 * answered with an error.
 */

import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  encodeMessage,
  FLAG,
  jsonPayload,
  type Message,
  OP,
  readChunkPayload,
} from '../../src/transcode/chromium/protocol.ts';
import type { VideoCodecs, VideoFrameLike } from '../../src/transcode/codecs.ts';
import { hostCodecs } from '../../src/transcode/threads/codec-host.ts';
import { waitFor } from '../support/wait.ts';

class FakeFrame implements VideoFrameLike {
  static open = 0;
  closed = false;
  constructor(readonly timestamp: number) {
    FakeFrame.open += 1;
  }
  clone(): FakeFrame {
    return new FakeFrame(this.timestamp);
  }
  close(): void {
    if (!this.closed) FakeFrame.open -= 1;
    this.closed = true;
  }
}

/** Fake codecs: the decoder emits one frame per sample (and closes it after, as the real binding does). */
function fakeCodecs(encoded: Array<{ timestamp: number; keyFrame: boolean }>): VideoCodecs {
  return {
    backend: 'fake',
    createDecoder(_config, onFrame) {
      return {
        async decode(sample) {
          const frame = new FakeFrame(sample.timestampUs);
          onFrame(frame);
          frame.close();
        },
        flush: async () => {},
        close() {},
      };
    },
    createEncoder(config, onChunk) {
      let first = true;
      return {
        async encode(frame, options) {
          encoded.push({ timestamp: frame.timestamp, keyFrame: options.keyFrame });
          const decoderConfig = first ? { description: Uint8Array.of(1, 2, 3), codec: 'avc1.64001f' } : undefined;
          first = false;
          onChunk({
            data: Uint8Array.of(config.width & 255),
            timestampUs: frame.timestamp,
            durationUs: options.durationUs,
            keyframe: options.keyFrame,
            decoderConfig,
          });
        },
        flush: async () => {},
        close() {},
      };
    },
  };
}

describe('hostCodecs', () => {
  it('answers calls, names frames, sends chunks, refuses unknown frames, and closes a frame when it is released', async () => {
    const encoded: Array<{ timestamp: number; keyFrame: boolean }> = [];
    const sent: Message[] = [];
    const handle = hostCodecs(fakeCodecs(encoded), {
      post: (bytes) => sent.push(decodeMessage(bytes)!),
    });
    const call = (head: Parameters<typeof encodeMessage>[0], payload?: Uint8Array) =>
      handle(encodeMessage(head, payload));
    call({ op: OP.decoderConfigure, id: 1, ref: 7 }, jsonPayload({ codec: 'avc1.64001f', description: [1] }));
    call(
      { op: OP.encoderConfigure, id: 2, ref: 7 },
      jsonPayload({ width: 426, height: 240, bitrate: 1, framerate: 30 }),
    );
    call({ op: OP.decode, id: 1, seq: 10, flags: FLAG.keyframe, timestampUs: 1000 }, Uint8Array.of(0, 0, 0, 1));
    await waitFor(() => sent.some((m) => m.op === OP.done && m.seq === 10), 'the decode to be answered');
    const frame = sent.find((m) => m.op === OP.frame)!;
    expect(frame).toMatchObject({ id: 1, timestampUs: 1000 });
    expect(FakeFrame.open, 'the thread keeps its own handle of the frame').toBe(1);

    call({ op: OP.encode, id: 2, seq: 11, ref: frame.ref, flags: FLAG.keyframe, timestampUs: 1000, durationUs: 33 });
    await waitFor(() => sent.some((m) => m.op === OP.done && m.seq === 11), 'the encode to be answered');
    expect(encoded).toEqual([{ timestamp: 1000, keyFrame: true }]);
    const chunk = sent.find((m) => m.op === OP.chunk)!;
    expect(chunk.flags).toBe(FLAG.keyframe | FLAG.config);
    // What the service side reads back: the session's codec string and avcC, then the access unit.
    const read = readChunkPayload(chunk.flags, chunk.payload);
    expect(read.decoderConfig?.codec).toBe('avc1.64001f');
    expect([...read.decoderConfig!.description]).toEqual([1, 2, 3]);
    expect([...read.data]).toEqual([426 & 255]);

    call({ op: OP.encode, id: 2, seq: 12, ref: 999 });
    call({ op: OP.decode, id: 5, seq: 13 });
    const errors = sent.filter((m) => m.op === OP.error).map((m) => [m.seq, new TextDecoder().decode(m.payload)]);
    expect(errors).toEqual([
      [12, 'no such frame'],
      [13, 'no such decoder'],
    ]);

    call({ op: OP.decoderClose, id: 1 });
    call({ op: OP.encoderClose, id: 2 });
    expect(FakeFrame.open, 'closing the codecs leaves the frame to its handle').toBe(1);
    call({ op: OP.frameRelease, id: 7, ref: frame.ref });
    expect(FakeFrame.open).toBe(0);
  });
});
