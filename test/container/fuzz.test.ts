import { describe, expect, it } from 'vitest';
import { box, concatBytes, fullBox, u32, u64 } from '../../src/container/boxes.ts';
import { describeInit, Fmp4StreamParser, parseSps, readSamples } from '../../src/container/index.ts';
import { ContainerError } from '../../src/core/errors.ts';
import { avcCodecString as webcodecsAvcCodecString } from '../../src/webcodecs/avc.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { topLevelBoxes } from '../../testkit/fmp4.ts';
import { type FuzzFailure, fuzz, loadCorpus, minimize, runCase } from '../../testkit/fuzz.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** A failure as a short readable line: what broke, where, and the minimized input to replay. */
function describeFailure(f: FuzzFailure): string {
  const small = minimize(f.case, f.verdict.problem!, 500);
  const error = f.verdict.error instanceof Error ? f.verdict.error.message : String(f.verdict.error);
  return `case ${f.index} (${f.case.target}): ${f.verdict.problem}: ${error}; minimized input ${Buffer.from(small.bytes).toString('hex').slice(0, 400)}`;
}

describe('container fuzzing (short mode; npm run fuzz is the long one)', () => {
  const corpus = loadCorpus();

  it('thousands of mutated and generated inputs, fed to every container entry point in any chunking, only ever raise typed errors', () => {
    const runs = 3000;
    // A generous work bound: other test files share the cores (npm run fuzz applies the strict one).
    const report = fuzz({
      corpus,
      seed: 20_261_124,
      runs,
      maxFailures: 5,
      workLimit: { baseMs: 2000, nsPerByte: 300 },
    });
    expect(report.failures.map(describeFailure)).toEqual([]);
    expect(report.runs).toBe(runs);
    // The inputs reach past the first checks: streams parse, and each kind of rejection happens.
    const count = (key: string) => report.outcomes.get(key) ?? 0;
    expect(count('stream ok')).toBeGreaterThan(runs * 0.03);
    for (const code of ['malformed_box', 'truncated', 'box_too_large', 'bad_sample_table', 'no_tracks']) {
      expect(count(`stream ingest.${code}`), code).toBeGreaterThan(0);
    }
    for (const target of ['ingest', 'init', 'samples', 'avcC', 'sps', 'asc', 'dOps', 'accessUnit']) {
      expect(count(`${target} ok`), target).toBeGreaterThan(0);
    }
  });
});

/** A moof of one video traf (`tfhd` given, `tfdt` 0) whose truns may point at the data after the moof. */
function videoMoof(tfhd: Uint8Array, truns: (moofLength: number) => Uint8Array[]): Uint8Array {
  const build = (moofLength: number) =>
    box('moof', fullBox('mfhd', 0, 0, u32(1)), box('traf', tfhd, fullBox('tfdt', 1, 0, u64(0)), ...truns(moofLength)));
  return build(build(0).length);
}

/** tfhd of track 1: default-base-is-moof, default sample duration 512 ticks, and `flags`' other defaults. */
const tfhdOf = (flags = 0, ...fields: Uint8Array[]) =>
  fullBox('tfhd', 0, 0x02_0008 | flags, u32(1), u32(512), ...fields);

/** ftyp + moov of an ffmpeg clip (H.264 track 1, AAC track 2). */
function clipInit(): Uint8Array {
  const clip = readFixture('720p30-nob-aac.mp4');
  return clip.subarray(0, topLevelBoxes(clip).find((b) => b.type === 'moof')!.offset);
}

/** What the parser does with the whole stream: the error code it throws, or the emitted payload bytes. */
function parse(bytes: Uint8Array): { code: string | undefined; payloadBytes: number } {
  const parser = new Fmp4StreamParser();
  let payloadBytes = 0;
  try {
    for (const e of [...parser.push(bytes), ...parser.end()]) {
      if (e.type === 'fragment') payloadBytes += e.fragment.payload.length;
    }
    return { code: undefined, payloadBytes };
  } catch (err) {
    if (err instanceof ContainerError) return { code: err.code, payloadBytes };
    throw err;
  }
}

describe('inputs the fuzzer found', () => {
  it('truns whose samples overlap in the mdat are ingest.bad_sample_table, not copied once per trun', () => {
    // 200 truns, each one 100 kB sample at the start of the same 100 kB mdat: 20 MB of output for 100 kB of input.
    const size = 100_000;
    const moof = videoMoof(tfhdOf(), (moofLength) =>
      Array.from({ length: 200 }, () => fullBox('trun', 0, 0x201, u32(1), u32(moofLength + 8), u32(size))),
    );
    const fragment = concatBytes([moof, box('mdat', new Uint8Array(size))]);
    expect(parse(concatBytes([clipInit(), fragment]))).toEqual({ code: 'ingest.bad_sample_table', payloadBytes: 0 });
    expect(() => readSamples(fragment)).toThrowError(expect.objectContaining({ code: 'ingest.bad_sample_table' }));
    expect(runCase({ target: 'stream', bytes: concatBytes([clipInit(), fragment]) }).problem).toBeUndefined();
  });

  it('a moof declaring more samples than the fragment has bytes (zero-size default samples) is ingest.bad_sample_table', () => {
    // 262,144 samples of the tfhd's default size 0 in an empty mdat: 3 MB of sample table out per 60 bytes in.
    const tfhd = tfhdOf(0x10, u32(0)); // default sample size 0
    const moof = videoMoof(tfhd, (moofLength) => [fullBox('trun', 0, 0x001, u32(262_144), u32(moofLength + 8))]);
    const fragment = concatBytes([moof, box('mdat')]);
    expect(parse(concatBytes([clipInit(), fragment]))).toEqual({ code: 'ingest.bad_sample_table', payloadBytes: 0 });
    expect(() => readSamples(fragment)).toThrowError(expect.objectContaining({ code: 'ingest.bad_sample_table' }));
  });

  it('decode times that run past 2^53 ticks (a tfdt near the top plus durations) are ingest.bad_sample_table', () => {
    /** A fragment of 8 one-byte samples of 512 ticks from `tfdt`. */
    const fragment = (tfdt: number) => {
      const build = (moofLength: number) =>
        box(
          'moof',
          fullBox('mfhd', 0, 0, u32(1)),
          box(
            'traf',
            tfhdOf(),
            fullBox('tfdt', 1, 0, u64(tfdt)),
            fullBox('trun', 0, 0x201, u32(8), u32(moofLength + 8), ...Array.from({ length: 8 }, () => u32(1))),
          ),
        );
      return concatBytes([build(build(0).length), box('mdat', new Uint8Array(8))]);
    };
    const nearTop = fragment(2 ** 53 - 2_000);
    expect(parse(concatBytes([clipInit(), nearTop]))).toEqual({ code: 'ingest.bad_sample_table', payloadBytes: 0 });
    expect(() => readSamples(nearTop)).toThrowError(expect.objectContaining({ code: 'ingest.bad_sample_table' }));
    expect(
      readSamples(fragment(2 ** 52), { sampleDescriptionIndex: 1, duration: 0, size: 0, flags: 0 }).map(
        (s) => s.dts - 2 ** 52,
      ),
    ).toEqual([0, 512, 1024, 1536, 2048, 2560, 3072, 3584]);
  });

  it('composition offsets that fit neither trun version (beyond 2^31 and negative in one traf) are ingest.bad_sample_table', () => {
    // Two truns of one sample each: version 0 with an offset of 2^31, version 1 with -1 (flags: data offset, size, cto).
    const moof = videoMoof(tfhdOf(), (moofLength) => [
      fullBox('trun', 0, 0xa01, u32(1), u32(moofLength + 8), u32(1), u32(0x8000_0000)),
      fullBox('trun', 1, 0xa01, u32(1), u32(moofLength + 9), u32(1), u32(-1)),
    ]);
    const stream = concatBytes([clipInit(), moof, box('mdat', new Uint8Array(2))]);
    const parser = new Fmp4StreamParser();
    parser.push(clipInit());
    let thrown: unknown;
    try {
      parser.push(stream.subarray(clipInit().length));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ContainerError);
    expect((thrown as ContainerError).code).toBe('ingest.bad_sample_table');
    expect((thrown as ContainerError).cause).toBeUndefined(); // a rejection, not a RangeError caught by the safety net
    expect(runCase({ target: 'stream', bytes: stream }).problem).toBeUndefined();
  });

  it('a size-0 box (to the end of its parent) copied into a single-track init gets its real size', () => {
    // The moov of an ffmpeg clip with its mvhd moved last and given size 0: legal, since it ends the moov.
    const init = clipInit();
    const tops = topLevelBoxes(init);
    const moov = init.subarray(tops[1]!.offset, tops[1]!.offset + tops[1]!.size);
    const children = topLevelBoxes(moov.subarray(8));
    const mvhd = children.find((b) => b.type === 'mvhd')!;
    const others = children
      .filter((b) => b.type !== 'mvhd')
      .map((b) => moov.subarray(8 + b.offset, 8 + b.offset + b.size));
    const lastMvhd = moov.slice(8 + mvhd.offset, 8 + mvhd.offset + mvhd.size);
    lastMvhd.set(u32(0), 0);
    const stream = concatBytes([init.subarray(0, tops[1]!.offset), box('moov', ...others, lastMvhd)]);
    const parser = new Fmp4StreamParser();
    const [event] = [...parser.push(stream), ...parser.end()];
    expect(event?.type).toBe('init');
    for (const track of event?.type === 'init' ? event.tracks : []) {
      expect(describeInit(track.initSegment).map((t) => [t.kind, t.codec])).toEqual([[track.kind, track.codec]]);
    }
    expect(runCase({ target: 'stream', bytes: stream }).problem).toBeUndefined();
  });

  it('a moof or moov packed with thousands of tiny boxes is ingest.malformed_box, not a box object each', () => {
    // 20,000 empty 'free' boxes: 160 kB that used to become 20,000 box objects (a 16 MB moof: 600 MB, 5 s).
    const frees = concatBytes(Array.from({ length: 20_000 }, () => box('free')));
    const init = clipInit();
    const tops = topLevelBoxes(init);
    const moov = init.subarray(tops[1]!.offset, tops[1]!.offset + tops[1]!.size);
    const floodedMoov = concatBytes([init.subarray(0, tops[1]!.offset), box('moov', moov.subarray(8), frees)]);
    expect(parse(floodedMoov).code).toBe('ingest.malformed_box');
    expect(() => describeInit(floodedMoov)).toThrowError(/boxes/);
    const floodedMoof = box('moof', fullBox('mfhd', 0, 0, u32(1)), box('traf', tfhdOf(), frees));
    expect(parse(concatBytes([init, floodedMoof])).code).toBe('ingest.malformed_box');
    expect(() => readSamples(concatBytes([floodedMoof, box('mdat')]))).toThrowError(/boxes/);
    // The same boxes between fragments at the top level are skipped as they arrive.
    expect(parse(concatBytes([init, frees])).code).toBeUndefined();
  });

  it('the WebCodecs codec string of an avcC whose first parameter set is not an SPS is an argument error, like any malformed avcC', () => {
    // avcC v1, one "SPS" of NAL type 1 (a slice).
    const avcC = hex('014d401fffe10017e1001767f99e194d401fda014016ec044000000300400000');
    expect(() => webcodecsAvcCodecString(avcC)).toThrowError(TypeError);
    expect(() => webcodecsAvcCodecString(avcC)).toThrowError(/^avcC: /);
    expect(runCase({ target: 'avcC', bytes: avcC }).problem).toBeUndefined();
  });

  it('an SPS declaring a picture larger than any H.264 level allows is malformed', () => {
    // Main profile, 49022016 x 17179869376 pixels once decoded.
    const sps = hex('674d401fda000002ec04400000004000000c0c');
    expect(() => parseSps(sps)).toThrowError(ContainerError);
    expect(() => parseSps(sps)).toThrowError(/macroblock picture exceeds every H.264 level/);
    expect(runCase({ target: 'sps', bytes: sps }).problem).toBeUndefined();
  });
});
