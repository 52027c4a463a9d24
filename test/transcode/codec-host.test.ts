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
  static made = 0;
  closed = false;
  constructor(readonly timestamp: number) {
    FakeFrame.open += 1;
    FakeFrame.made += 1;
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

describe('hostCodecs frame handles', () => {
  it('renews the handles of held frames before each collection, but not of a frame an encode call holds', async () => {
    let release: (() => void) | undefined;
    const seen: Array<{ timestamp: number; closedWhenUsed: boolean }> = [];
    const codecs = fakeCodecs([]);
    const slow: VideoCodecs = {
      ...codecs,
      createEncoder: () => ({
        async encode(frame) {
          // The addon reads the frame once it has room: a closed handle there would fail.
          await new Promise<void>((resolve) => {
            release = resolve;
          });
          seen.push({ timestamp: frame.timestamp, closedWhenUsed: (frame as FakeFrame).closed });
        },
        flush: async () => {},
        close() {},
      }),
    };
    const sent: Message[] = [];
    let collections = 0;
    const handle = hostCodecs(slow, {
      post: (bytes) => sent.push(decodeMessage(bytes)!),
      gc: () => {
        collections += 1;
      },
      gcEveryFrames: 5,
    });
    const call = (head: Parameters<typeof encodeMessage>[0], payload?: Uint8Array) =>
      handle(encodeMessage(head, payload));
    call({ op: OP.decoderConfigure, id: 1 }, jsonPayload({ codec: 'avc1.64001f', description: [1] }));
    call({ op: OP.encoderConfigure, id: 2 }, jsonPayload({ width: 426, height: 240, bitrate: 1, framerate: 30 }));
    const decode = async (seq: number) => {
      call({ op: OP.decode, id: 1, seq, timestampUs: seq * 1000 }, Uint8Array.of(0, 0, 0, 1));
      await waitFor(() => sent.some((m) => m.op === OP.done && m.seq === seq), `decode ${seq}`);
    };
    await decode(1);
    await decode(2);
    const refs = sent.filter((m) => m.op === OP.frame).map((m) => m.ref);
    // Frame 1 goes to the (waiting) encoder; frame 2 only waits in the thread.
    call({ op: OP.encode, id: 2, seq: 100, ref: refs[0]!, timestampUs: 1000, durationUs: 33 });
    const before = FakeFrame.made;
    for (let seq = 3; seq <= 5; seq++) await decode(seq);
    expect(collections).toBe(1);
    // Frames 2-5 got new handles (4 clones beside the 3 decoded frames' own and the thread's 3 copies); frame 1 did not.
    expect(FakeFrame.made - before).toBe(3 * 2 + 4);
    release?.();
    await waitFor(() => sent.some((m) => m.op === OP.done && m.seq === 100), 'the encode to be answered');
    expect(seen).toEqual([{ timestamp: 1000, closedWhenUsed: false }]);
    // Renewed handles replace the old ones: one open handle per held frame, none after release.
    expect(FakeFrame.open).toBe(5);
    for (const ref of sent.filter((m) => m.op === OP.frame).map((m) => m.ref))
      call({ op: OP.frameRelease, id: 1, ref });
    expect(FakeFrame.open).toBe(0);
  });
});
