import { beforeAll, describe, expect, it } from 'vitest';
import { CodecError } from '../../src/core/errors.ts';
import {
  type DecodedFrameMeta,
  type DecodeOutcome,
  H264Decoder,
  type H264DecoderOptions,
  napiProvider,
  type WebCodecs,
} from '../../src/webcodecs/index.ts';
import { type H264TestSample, type H264TestStream, makeH264Stream } from '../support/h264.ts';
import { waitFor } from '../support/wait.ts';
import { spyCodecs } from './spy.ts';

let codecs: WebCodecs;
let stream: H264TestStream;

beforeAll(async () => {
  codecs = (await napiProvider()).codecs;
  // 320x180, 60 frames, GOP 30, two B-frames: decode order differs from presentation order.
  stream = await makeH264Stream({ width: 320, height: 180, frames: 60, gop: 30, bframes: 2 });
});

type Output = { meta: DecodedFrameMeta; frameTimestamp: number; frameDuration: number | null; width: number };

function collect(
  impl: WebCodecs,
  overrides: Partial<H264DecoderOptions> = {},
): { decoder: H264Decoder; outputs: Output[]; errors: CodecError[] } {
  const outputs: Output[] = [];
  const errors: CodecError[] = [];
  const decoder = new H264Decoder(impl, {
    codec: stream.codec,
    description: stream.description,
    codedWidth: stream.width,
    codedHeight: stream.height,
    onFrame: (frame, meta) => {
      outputs.push({ meta, frameTimestamp: frame.timestamp, frameDuration: frame.duration, width: frame.codedWidth });
    },
    onError: (error) => errors.push(error),
    ...overrides,
  });
  return { decoder, outputs, errors };
}

async function decodeAll(decoder: H264Decoder, samples: H264TestSample[]): Promise<DecodeOutcome[]> {
  const outcomes: DecodeOutcome[] = [];
  for (const sample of samples) outcomes.push(await decoder.decode(sample));
  return outcomes;
}

const sortedPts = (samples: H264TestSample[]): number[] => samples.map((s) => s.timestampUs).sort((a, b) => a - b);

describe('H264Decoder', () => {
  it('restores presentation timestamps of B-frame output from the inputs (defect: decode-order timestamps)', async () => {
    expect(stream.samples.some((s, i) => i > 0 && s.timestampUs < (stream.samples[i - 1]?.timestampUs ?? 0))).toBe(
      true,
    );
    const { decoder, outputs, errors } = collect(codecs);
    await decodeAll(decoder, stream.samples);
    await decoder.flush();
    decoder.close();
    expect(errors).toEqual([]);
    expect(outputs.map((o) => o.meta.timestampUs)).toEqual(sortedPts(stream.samples));
    expect(outputs.map((o) => o.frameTimestamp)).toEqual(sortedPts(stream.samples));
    // The addon really stamps decode-order timestamps: the correction had work to do.
    expect(outputs.some((o) => o.meta.decoderTimestampUs !== o.meta.timestampUs)).toBe(true);
    expect(decoder.stats().unmatchedOutputs).toBe(0);
  });

  it('carries each input duration to the frame with that presentation timestamp (defect: decode-order durations)', async () => {
    const durationOf = (pts: number): number => 30_000 + (Math.round(pts / 33_333) % 4) * 1_000;
    const samples = stream.samples.map((s) => ({ ...s, durationUs: durationOf(s.timestampUs) }));
    const { decoder, outputs } = collect(codecs);
    await decodeAll(decoder, samples);
    await decoder.flush();
    decoder.close();
    expect(outputs).toHaveLength(samples.length);
    for (const output of outputs) {
      expect(output.meta.durationUs).toBe(durationOf(output.meta.timestampUs));
      expect(output.frameDuration).toBe(durationOf(output.meta.timestampUs));
    }
  });

  it('refuses delta frames after a gap in decode timestamps until the next keyframe (defect guard: no delta after a gap)', async () => {
    const spy = spyCodecs(codecs);
    const { decoder, outputs, errors } = collect(spy.codecs);
    const before = stream.samples.slice(0, 12);
    const afterGap = stream.samples.slice(15, 30); // samples 12..14 were "dropped"
    const nextGop = stream.samples.slice(30);
    expect((await decodeAll(decoder, before)).every((o) => o.queued)).toBe(true);
    const refused = await decodeAll(decoder, afterGap);
    expect(refused).toEqual(afterGap.map(() => ({ queued: false, reason: 'gap' })));
    expect((await decodeAll(decoder, nextGop)).every((o) => o.queued)).toBe(true);
    await decoder.flush();
    decoder.close();
    expect(errors).toEqual([]);
    const refusedDts = new Set(afterGap.map((s) => s.timestampUs));
    expect(spy.log.decodes.filter((d) => refusedDts.has(d.timestamp))).toEqual([]);
    expect(outputs.map((o) => o.meta.timestampUs)).toEqual([...sortedPts(before), ...sortedPts(nextGop)]);
    expect(decoder.stats()).toMatchObject({ gaps: 1, skippedDeltas: afterGap.length });
  });

  it('refuses delta frames after markGap() until the next keyframe', async () => {
    const spy = spyCodecs(codecs);
    const { decoder, outputs } = collect(spy.codecs);
    const strip = (s: H264TestSample): H264TestSample => ({ ...s, decodeTimestampUs: undefined as unknown as number });
    await decodeAll(decoder, stream.samples.slice(0, 10).map(strip));
    decoder.markGap();
    expect(decoder.awaitingKeyframe).toBe('gap');
    const refused = await decodeAll(decoder, stream.samples.slice(10, 30).map(strip));
    expect(refused.every((o) => !o.queued)).toBe(true);
    await decodeAll(decoder, stream.samples.slice(30).map(strip));
    await decoder.flush();
    decoder.close();
    expect(spy.log.decodes).toHaveLength(10 + 30);
    expect(outputs).toHaveLength(10 + 30);
  });

  it('flush() emits the frames the decoder holds back, then refuses deltas until a keyframe (latency tool)', async () => {
    const spy = spyCodecs(codecs);
    const { decoder, outputs } = collect(spy.codecs);
    const gop = stream.samples.slice(0, 30);
    await decodeAll(decoder, gop);
    await waitFor(() => decoder.stats().decodeQueueSize === 0, 'native decode queue to drain');
    // Everything was decoded, yet the last reordered frames are still held inside the decoder.
    expect(outputs.length).toBeLessThan(gop.length);
    await decoder.flush();
    expect(outputs.map((o) => o.meta.timestampUs)).toEqual(sortedPts(gop));
    const delta = stream.samples[31] as H264TestSample;
    expect(delta.keyframe).toBe(false);
    expect(await decoder.decode(delta)).toEqual({ queued: false, reason: 'flush' });
    expect(spy.log.decodes).toHaveLength(gop.length);
    const key = stream.samples[30] as H264TestSample;
    expect(await decoder.decode(key)).toEqual({ queued: true });
    await decoder.flush();
    decoder.close();
    expect(outputs.at(-1)?.meta.timestampUs).toBe(key.timestampUs);
  });

  it('refuses a delta as the very first sample and after reset()', async () => {
    const spy = spyCodecs(codecs);
    const { decoder, outputs } = collect(spy.codecs);
    expect(await decoder.decode(stream.samples[1] as H264TestSample)).toEqual({ queued: false, reason: 'start' });
    await decodeAll(decoder, stream.samples.slice(0, 5));
    decoder.reset();
    const atReset = outputs.length;
    expect(await decoder.decode(stream.samples[5] as H264TestSample)).toEqual({ queued: false, reason: 'reset' });
    await decodeAll(decoder, stream.samples.slice(30));
    await decoder.flush();
    decoder.close();
    // Frames held by the decoder at reset() are dropped; output resumes at the keyframe.
    expect(outputs.slice(atReset).map((o) => o.meta.timestampUs)).toEqual(sortedPts(stream.samples.slice(30)));
    expect(spy.log.decoders).toBe(2);
  });

  it('keeps the native decode queue within maxQueue even when calls are not awaited one by one', async () => {
    // 720p so that decoding is slower than feeding.
    const big = await makeH264Stream({ width: 1280, height: 720, frames: 30, gop: 30, bframes: 2 });
    const spy = spyCodecs(codecs);
    let frames = 0;
    const decoder = new H264Decoder(spy.codecs, {
      codec: big.codec,
      description: big.description,
      maxQueue: 2,
      onFrame: () => {
        frames++;
      },
      onError: (error) => {
        throw error;
      },
    });
    await Promise.all(big.samples.map((s) => decoder.decode(s)));
    await decoder.flush();
    decoder.close();
    expect(frames).toBe(big.samples.length);
    expect(Math.max(...spy.log.decodes.map((d) => d.queueBefore))).toBeLessThan(2);
    // The queue is counted from dequeue events: the getter waits for the decoding thread's lock.
    expect(spy.log.queueSizeReads).toBeLessThan(big.samples.length / 4);
  });

  it('counts unsettled onFrame promises against maxQueue (end-to-end back-pressure) and closes frames after them', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const held: Array<{ closedAfter: () => boolean }> = [];
    const { decoder, outputs } = collect(codecs, {
      maxQueue: 3,
      onFrame: async (frame) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        held.push({ closedAfter: () => frame.codedWidth === 0 });
        expect(frame.codedWidth).toBe(320);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight--;
      },
    });
    await decodeAll(decoder, stream.samples);
    await decoder.flush();
    decoder.close();
    expect(outputs).toHaveLength(0); // the override does not record
    expect(held).toHaveLength(stream.samples.length);
    // Feeding stops while 3 are in flight; frames the decoder already holds can still come out.
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(3 + 3 + 4);
    expect(held.every((h) => h.closedAfter())).toBe(true);
  });

  it('yields a macrotask in every decode() call so native outputs get delivered (defect: silent output loss)', async () => {
    const { decoder, outputs } = collect(codecs, { maxQueue: 1_000 });
    const missed: number[] = [];
    for (const [index, sample] of stream.samples.entries()) {
      let turned = false;
      setImmediate(() => {
        turned = true;
      });
      await decoder.decode(sample);
      // Output callbacks run on the event loop: a call that only awaits microtasks starves them.
      if (!turned) missed.push(index);
    }
    await decoder.flush();
    decoder.close();
    expect(missed).toEqual([]);
    expect(outputs).toHaveLength(stream.samples.length);
  });

  it('runs the injected gc every gcEveryFrames decoded frames', async () => {
    let gcRuns = 0;
    const { decoder } = collect(codecs, { gc: () => gcRuns++, gcEveryFrames: 10 });
    await decodeAll(decoder, stream.samples);
    await decoder.flush();
    decoder.close();
    // Runs happen in decode() calls, so the last outputs (released by flush) may not trigger one.
    expect(gcRuns).toBeGreaterThanOrEqual(3);
    expect(gcRuns).toBeLessThanOrEqual(6);
    expect(decoder.stats().gcRuns).toBe(gcRuns);
  });

  it('reports a decoder failure as CodecError and resumes at the next keyframe', async () => {
    const { decoder, outputs, errors } = collect(codecs);
    await decodeAll(decoder, stream.samples.slice(0, 30));
    await decoder.flush();
    // A "keyframe" whose NAL length prefix runs past the end of the data.
    const broken = {
      data: new Uint8Array([0, 0, 0, 200, 0x65, 1, 2, 3]),
      timestampUs: 990_000,
      durationUs: 33_333,
      keyframe: true,
    };
    await decoder.decode(broken);
    await waitFor(() => errors.length > 0 || decoder.awaitingKeyframe === 'error', 'the decoder error');
    await waitFor(() => decoder.awaitingKeyframe === 'error', 'recovery state');
    expect(errors[0]).toBeInstanceOf(CodecError);
    expect(errors[0]?.code).toBe('codec.decode_failed');
    expect(await decoder.decode(stream.samples[31] as H264TestSample)).toEqual({ queued: false, reason: 'error' });
    await decodeAll(decoder, stream.samples.slice(30));
    await decoder.flush();
    decoder.close();
    expect(outputs.slice(30).map((o) => o.meta.timestampUs)).toEqual(sortedPts(stream.samples.slice(30)));
  });

  it('close() is idempotent and later calls reject with codec.closed', async () => {
    const { decoder } = collect(codecs);
    decoder.close();
    decoder.close();
    await expect(decoder.decode(stream.samples[0] as H264TestSample)).rejects.toMatchObject({ code: 'codec.closed' });
    await expect(decoder.flush()).rejects.toMatchObject({ code: 'codec.closed' });
  });

  it('rejects bad arguments with TypeErrors naming them', () => {
    expect(() => collect(codecs, { codec: 'vp09.00.10.08' })).toThrow(/codec/);
    expect(() => collect(codecs, { description: new Uint8Array(2) })).toThrow(TypeError);
    const { decoder } = collect(codecs);
    expect(() => decoder.decode({ ...(stream.samples[0] as H264TestSample), timestampUs: Number.NaN })).toThrow(
      /sample\.timestampUs/,
    );
    decoder.close();
  });
});
