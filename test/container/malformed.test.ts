import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeInit, Fmp4StreamParser, type ParserEvent, readBoxes, readSamples } from '../../src/container/index.ts';
import { ContainerError } from '../../src/core/errors.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { concat, findType, seededRandom, topLevelBoxes } from '../../testkit/fmp4.ts';

/** Pushes `chunks` then ends; returns the ContainerError code it threw (or 'ok'). */
function outcome(chunks: Uint8Array[], options?: ConstructorParameters<typeof Fmp4StreamParser>[0]): string {
  const parser = new Fmp4StreamParser(options);
  try {
    for (const c of chunks) parser.push(c);
    parser.end();
    return 'ok';
  } catch (err) {
    if (err instanceof ContainerError) return err.code;
    throw err;
  }
}

function boxHeader(type: string, size: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, size);
  b.set(
    Array.from(type, (c) => c.charCodeAt(0)),
    4,
  );
  return b;
}

const clip = readFixture('720p30-nob-aac.mp4');
const boxes = topLevelBoxes(clip);
const part = (type: string, index = 0) => {
  const b = boxes.filter((x) => x.type === type)[index]!;
  return clip.subarray(b.offset, b.offset + b.size);
};
const ftyp = part('ftyp');
const moov = part('moov');
const init = concat([ftyp, moov]);

describe('Fmp4StreamParser on malformed input', () => {
  it('rejects bytes that do not start a box as ingest.malformed_box', () => {
    const random = seededRandom(7);
    const bytes = Uint8Array.from({ length: 4096 }, () => Math.floor(random() * 256));
    bytes[4] = 0x01; // a non-printable box type
    expect(outcome([bytes])).toBe('ingest.malformed_box');
  });

  it('rejects a box size smaller than its header as ingest.malformed_box', () => {
    expect(outcome([boxHeader('ftyp', 4)])).toBe('ingest.malformed_box');
    const large = new Uint8Array(16);
    const v = new DataView(large.buffer);
    v.setUint32(0, 1);
    large.set([0x66, 0x74, 0x79, 0x70], 4);
    v.setUint32(12, 12); // 64-bit size 12 < 16-byte header
    expect(outcome([large])).toBe('ingest.malformed_box');
  });

  it('rejects a box larger than the limit as soon as its header arrives, without its body', () => {
    const parser = new Fmp4StreamParser();
    parser.push(init);
    const huge = boxHeader('moof', 0x7fff_ffff);
    expect(() => parser.push(huge)).toThrowError(expect.objectContaining({ code: 'ingest.box_too_large' }));
    expect(outcome([boxHeader('moov', 5 * 1024 * 1024)])).toBe('ingest.box_too_large');
    expect(outcome([boxHeader('free', 64)], { maxBoxBytes: 32 })).toBe('ingest.box_too_large');
    const large = new Uint8Array(16);
    const v = new DataView(large.buffer);
    v.setUint32(0, 1);
    large.set([0x66, 0x72, 0x65, 0x65], 4); // free, 64-bit size 2^40
    v.setUint32(8, 0x100);
    expect(outcome([init, large])).toBe('ingest.box_too_large');
  });

  it('rejects a stream that ends inside a box as ingest.truncated', () => {
    expect(outcome([ftyp, moov.subarray(0, moov.length >> 1)])).toBe('ingest.truncated');
    expect(outcome([init, part('moof')])).toBe('ingest.truncated'); // a moof without its mdat
    expect(outcome([init, clip.subarray(init.length, init.length + 3)])).toBe('ingest.truncated');
  });

  it('rejects a moof before any moov as ingest.no_init', () => {
    expect(outcome([ftyp, part('moof')])).toBe('ingest.no_init');
  });

  it('rejects an mdat before any moof as ingest.mdat_without_moof', () => {
    expect(outcome([init, part('mdat')])).toBe('ingest.mdat_without_moof');
    expect(outcome([init, part('moof'), part('mdat'), part('mdat', 1)])).toBe('ingest.mdat_without_moof');
  });

  it('rejects a trun that points outside its mdat as ingest.bad_sample_table', () => {
    const moof = part('moof').slice();
    const trun = findType(moof, 'trun');
    const view = new DataView(moof.buffer);
    view.setInt32(trun + 8, view.getInt32(trun + 8) + 1_000_000); // data_offset (after version/flags, count)
    expect(outcome([init, moof, part('mdat')])).toBe('ingest.bad_sample_table');
    expect(() => readSamples(concat([moof, part('mdat')]))).toThrowError(
      expect.objectContaining({ code: 'ingest.bad_sample_table' }),
    );
  });

  it('rejects an init with neither audio nor video as ingest.no_tracks', () => {
    const patched = moov.slice();
    for (let at = findType(patched, 'hdlr'); at >= 0; at = findType(patched, 'hdlr', at + 4)) {
      patched.set([0x74, 0x65, 0x78, 0x74], at + 12); // handler_type -> 'text'
    }
    expect(outcome([ftyp, patched])).toBe('ingest.no_tracks');
    expect(describeInit(concat([ftyp, patched]))).toEqual([]);
  });

  it('stays poisoned after an error: later pushes and end() rethrow the same error', () => {
    const parser = new Fmp4StreamParser();
    let first: unknown;
    try {
      parser.push(concat([ftyp, part('moof')]));
    } catch (err) {
      first = err;
    }
    expect(first).toBeInstanceOf(ContainerError);
    expect(() => parser.push(init)).toThrow(first as Error);
    expect(() => parser.end()).toThrow(first as Error);
    try {
      parser.push(init);
    } catch (err) {
      expect(err).toBe(first);
    }
  });

  it('rejects bytes pushed after end()', () => {
    const parser = new Fmp4StreamParser();
    parser.push(init);
    expect(parser.end()).toEqual([]);
    expect(parser.end()).toEqual([]);
    expect(() => parser.push(part('moof'))).toThrowError(ContainerError);
  });

  it('readBoxes reads 64-bit and size-0 boxes and rejects a box that overruns its parent', () => {
    const large = new Uint8Array(20);
    const v = new DataView(large.buffer);
    v.setUint32(0, 1);
    large.set([0x6d, 0x64, 0x61, 0x74], 4); // mdat
    v.setUint32(12, 20); // 64-bit size 20: 4 body bytes
    const toEnd = concat([boxHeader('free', 0), Uint8Array.of(1, 2, 3)]);
    const read = readBoxes(concat([large, toEnd]));
    expect(read.map((b) => [b.type, b.headerSize, b.body.length])).toEqual([
      ['mdat', 16, 4],
      ['free', 8, 3],
    ]);
    expect(() => readBoxes(boxHeader('moov', 9))).toThrowError(
      expect.objectContaining({ code: 'ingest.malformed_box' }),
    );
    expect(() => readBoxes(Uint8Array.of(0, 0, 0))).toThrowError(ContainerError);
  });

  it('describeInit and readSamples throw ContainerError on garbage', () => {
    expect(() => describeInit(Uint8Array.of(0, 0, 0, 9, 0x6d, 0x6f, 0x6f, 0x76))).toThrowError(ContainerError);
    expect(() => describeInit(ftyp)).toThrowError(expect.objectContaining({ code: 'ingest.no_init' }));
    expect(() => readSamples(part('mdat'))).toThrowError(expect.objectContaining({ code: 'ingest.mdat_without_moof' }));
  });

  it('whatever the mutation of a valid stream, it parses or throws a ContainerError, and stays poisoned', () => {
    const base = readFixture('720p30-frag-every-frame.mp4');
    const prefix = base.subarray(0, topLevelBoxes(base).filter((b) => b.type === 'moof')[12]!.offset);
    // Aim most mutations at box headers and sample tables: every moov/moof byte plus some mdat bytes.
    const structural: number[] = [];
    for (const b of topLevelBoxes(prefix)) {
      const end = b.type === 'mdat' ? b.offset + 16 : b.offset + b.size;
      for (let i = b.offset; i < Math.min(end, prefix.length); i++) structural.push(i);
    }
    const position = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...structural) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: prefix.length - 1 }) },
    );
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: position,
        bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
      }),
      fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: position }),
    );
    fc.assert(
      fc.property(
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 5000 }),
        (ms, chunk) => {
          let bytes: Uint8Array = prefix.slice();
          for (const m of ms) {
            const at = Math.min(m.at, bytes.length);
            if (m.kind === 'flip') {
              if (at < bytes.length) bytes[at] = m.value;
            } else if (m.kind === 'insert') {
              bytes = concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
            } else if (m.kind === 'delete') {
              bytes = concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
            } else {
              bytes = bytes.slice(0, at);
            }
          }
          const parser = new Fmp4StreamParser();
          const events: ParserEvent[] = [];
          let thrown: unknown;
          try {
            for (let i = 0; i < bytes.length; i += chunk) events.push(...parser.push(bytes.subarray(i, i + chunk)));
            events.push(...parser.end());
          } catch (err) {
            thrown = err;
          }
          // Whatever it emitted before any error is readable: fragments and init segments alike.
          for (const e of events) {
            if (e.type === 'fragment') expect(readSamples(e.fragment.payload)).toHaveLength(e.samples.length);
            else for (const t of e.tracks) expect(describeInit(t.initSegment)).toHaveLength(1);
          }
          if (thrown === undefined) return;
          expect(thrown).toBeInstanceOf(ContainerError);
          expect(() => parser.push(prefix)).toThrow(thrown as Error);
        },
      ),
      { numRuns: 300, seed: 20240611 },
    );
  });
});
