import { describe, expect, it } from 'vitest';
import { Fmp4StreamParser, type ParserEvent, readBoxes, readSamples } from '../../src/container/index.ts';
import { AUDIO_TRACK, VIDEO_TRACK } from '../../src/fragment/fragment.ts';
import { fixtureInfo, fixturePath, readFixture } from '../../testkit/fixtures.ts';
import {
  collect,
  concat,
  cut,
  digest,
  type ParseResult,
  parseAll,
  parseChunks,
  seededRandom,
  topLevelBoxes,
  trackFile,
  trackFragments,
} from '../../testkit/fmp4.ts';
import { decodeErrors, probeFrames, probePackets } from '../support/ffprobe.ts';
import { decodeTimesOf, splitFmp4, trackIdsOf, withDecodeTimes, withZeroDurations } from '../support/mp4-edit.ts';

const H264_CLIPS = [
  '720p30-nob-aac.mp4',
  '720p30-bframes-aac.mp4',
  'portrait-720x1280.mp4',
  '720p25.mp4',
  '360p30.mp4',
  '720p30-frag-every-frame.mp4',
  '720p30-base-data-offset.mp4',
  '720p30-omit-tfhd-offset.mp4',
];
const ALL_CLIPS = [...H264_CLIPS, 'hevc-360p30.mp4', 'vp9-opus-240p.mp4'];

/** The fields of a parse that must not depend on how the stream was chunked. */
function fingerprint(r: ParseResult) {
  return {
    inits: r.inits.map((tracks) =>
      tracks.map((t) => ({ ...t, initSegment: digest(t.initSegment), description: t.description?.join(',') })),
    ),
    fragments: r.fragments.map(({ fragment, samples }) => ({
      ...fragment,
      payload: digest(fragment.payload),
      ingestTimeMs: 0,
      samples,
    })),
  };
}

/** Digests of every sample's bytes plus its timing, over all fragments. */
function sampleDigests(r: ParseResult, withDuration = true) {
  return r.fragments.flatMap(({ fragment }) =>
    readSamples(fragment.payload).map((s) => ({
      track: fragment.trackId,
      dts: s.dts,
      pts: s.pts,
      duration: withDuration ? s.duration : 0,
      keyframe: s.keyframe,
      data: digest(s.data),
    })),
  );
}

function videoSamples(r: ParseResult, trackId = VIDEO_TRACK) {
  return trackFragments(r, trackId).flatMap((f) => f.samples);
}

describe('Fmp4StreamParser on ffmpeg output', () => {
  it.each(ALL_CLIPS)('%s gives identical output however the stream is chunked', (name) => {
    const bytes = readFixture(name);
    const whole = fingerprint(parseAll(bytes));
    const random = seededRandom(name.length * 7919);
    const randomChunks = fingerprint(parseChunks(cut(bytes, () => 1 + random() * 40_000)));
    // 1-byte chunks through the init and the first fragment headers, then random sizes.
    const tiny = fingerprint(parseChunks(cut(bytes, (_, at) => (at < 24_000 ? 1 : 1 + random() * 9000))));
    expect(randomChunks).toEqual(whole);
    expect(tiny).toEqual(whole);
  });

  it('a large mdat fed 1 byte at a time is parsed in linear time', () => {
    const bytes = readFixture('720p30-nob-aac.mp4');
    const firstMdat = topLevelBoxes(bytes).find((b) => b.type === 'mdat')!;
    const prefix = bytes.subarray(0, firstMdat.offset + firstMdat.size); // ftyp, moov, moof, a 460 kB mdat
    const parser = new Fmp4StreamParser();
    const started = performance.now();
    let fragments = 0;
    for (let i = 0; i < prefix.length; i++) {
      for (const e of parser.push(prefix.subarray(i, i + 1))) if (e.type === 'fragment') fragments++;
    }
    const elapsedMs = performance.now() - started;
    expect(fragments).toBe(2);
    expect(elapsedMs).toBeLessThan(8_000); // ~0.6 s here; a quadratic join would take minutes
  });

  it.each(H264_CLIPS.concat('hevc-360p30.mp4'))(
    '%s: video samples carry the dts, pts, duration, size and key flag ffprobe reports',
    async (name) => {
      const r = parseAll(readFixture(name));
      const packets = await probePackets(fixturePath(name), 'v');
      const samples = videoSamples(r);
      expect(samples.map((s) => s.dts)).toEqual(packets.map((p) => p.dts));
      expect(samples.map((s) => s.pts)).toEqual(packets.map((p) => p.pts));
      expect(samples.map((s) => s.size)).toEqual(packets.map((p) => p.size));
      expect(samples.map((s) => s.keyframe)).toEqual(packets.map((p) => p.keyframe));
      // ffprobe's per-packet duration of a longer first sample is the default one: judge durations by dts steps.
      expect(samples.slice(0, -1).map((s) => s.duration)).toEqual(
        packets.slice(1).map((p, i) => p.dts - packets[i]!.dts),
      );
      expect(samples.at(-1)!.duration).toBe(packets.at(-1)!.duration);
      const info = fixtureInfo(name);
      expect(samples).toHaveLength(info.video.frameCount);
      const keyFragments = trackFragments(r, VIDEO_TRACK).filter((f) => f.fragment.flags.keyframe);
      expect(keyFragments.map((f) => f.fragment.pts)).toEqual(info.video.keyframePts);
      expect(keyFragments.map((f) => f.fragment.pts)).toEqual(packets.filter((p) => p.keyframe).map((p) => p.pts));
    },
  );

  it.each(['720p30-nob-aac.mp4', '720p30-bframes-aac.mp4', '720p30-frag-every-frame.mp4', 'vp9-opus-240p.mp4'])(
    '%s: audio samples carry the timestamps and sizes ffprobe reports',
    async (name) => {
      const r = parseAll(readFixture(name));
      const packets = await probePackets(fixturePath(name), 'a');
      const samples = videoSamples(r, AUDIO_TRACK);
      expect(samples.map((s) => s.dts)).toEqual(packets.map((p) => p.dts));
      expect(samples.map((s) => s.pts)).toEqual(packets.map((p) => p.pts));
      expect(samples.map((s) => s.size)).toEqual(packets.map((p) => p.size));
      for (const { fragment } of trackFragments(r, AUDIO_TRACK)) {
        expect(fragment.flags).toEqual({ keyframe: false, independent: true, discardable: false });
        expect(fragment.priority).toBe(0);
      }
    },
  );

  it('fragment timing is the first sample dts, its pts, and the sum of the sample durations', () => {
    const r = parseAll(readFixture('720p30-bframes-aac.mp4'));
    for (const { fragment, samples } of r.fragments) {
      expect(fragment.dts).toBe(samples[0]!.dts);
      expect(fragment.pts).toBe(samples[0]!.pts);
      expect(fragment.duration).toBe(samples.reduce((n, s) => n + s.duration, 0));
    }
  });

  it('the B-frame clip has pts != dts exactly where ffprobe says so', async () => {
    const name = '720p30-bframes-aac.mp4';
    const samples = videoSamples(parseAll(readFixture(name)));
    const packets = await probePackets(fixturePath(name), 'v');
    const reordered = samples.map((s) => s.pts !== s.dts);
    expect(reordered).toEqual(packets.map((p) => p.pts !== p.dts));
    expect(reordered.filter(Boolean).length).toBeGreaterThan(30);
  });

  it.each([
    '720p30-nob-aac.mp4',
    '720p30-bframes-aac.mp4',
    '720p30-frag-every-frame.mp4',
    '720p30-omit-tfhd-offset.mp4',
    'hevc-360p30.mp4',
  ])('%s: the video init + fragments decode cleanly to the source frames', async (name) => {
    const file = trackFile(parseAll(readFixture(name)), VIDEO_TRACK);
    const [errors, frames, sourceFrames] = await Promise.all([
      decodeErrors(file),
      probeFrames(file),
      probeFrames(fixturePath(name)),
    ]);
    expect(errors).toEqual([]);
    expect(frames).toHaveLength(fixtureInfo(name).video.frameCount);
    expect(frames.map((f) => f.pts)).toEqual(sourceFrames.map((f) => f.pts));
    expect(frames.map((f) => f.keyFrame)).toEqual(sourceFrames.map((f) => f.keyFrame));
  });

  it.each(['720p30-nob-aac.mp4', '720p30-base-data-offset.mp4', 'vp9-opus-240p.mp4'])(
    '%s: the audio init + fragments decode cleanly with every source packet',
    async (name) => {
      const file = trackFile(parseAll(readFixture(name)), AUDIO_TRACK);
      const [errors, packets, sourcePackets] = await Promise.all([
        decodeErrors(file),
        probePackets(file, 'a'),
        probePackets(fixturePath(name), 'a'),
      ]);
      expect(errors).toEqual([]);
      expect(packets.map((p) => p.pts)).toEqual(sourcePackets.map((p) => p.pts));
    },
  );

  it('every fragment is one single-track moof+mdat that readSamples reads back to the same samples', () => {
    const r = parseAll(readFixture('720p30-bframes-aac.mp4'));
    for (const { fragment, samples } of r.fragments) {
      expect(readBoxes(fragment.payload).map((b) => b.type)).toEqual(['moof', 'mdat']);
      const read = readSamples(fragment.payload);
      expect(read.map(({ dts, pts, duration, keyframe }) => ({ dts, pts, duration, keyframe }))).toEqual(
        samples.map(({ dts, pts, duration, keyframe }) => ({ dts, pts, duration, keyframe })),
      );
      read.forEach((s, i) => {
        const info = samples[i]!;
        expect(s.data.byteOffset - fragment.payload.byteOffset).toBe(info.offset);
        expect(s.data.length).toBe(info.size);
      });
    }
  });

  it('the three layouts of the same media (default-base-is-moof, base_data_offset, implicit) give the same samples', () => {
    // The remux shortens the last AAC sample, so durations are left out.
    const reference = sampleDigests(parseAll(readFixture('720p30-nob-aac.mp4')), false);
    for (const name of ['720p30-base-data-offset.mp4', '720p30-omit-tfhd-offset.mp4']) {
      expect(sampleDigests(parseAll(readFixture(name)), false)).toEqual(reference);
    }
  });

  it('reports the tracks of the init: codec, size, timescale, audio parameters and single-track inits', () => {
    const r = parseAll(readFixture('720p30-nob-aac.mp4'));
    expect(r.inits).toHaveLength(1);
    const [video, audio] = r.inits[0]!;
    expect(video).toMatchObject({
      trackId: '0.mp4',
      kind: 'video',
      mp4TrackId: 1,
      codec: 'avc1.4d401f',
      supported: true,
      timescale: 15360,
      width: 1280,
      height: 720,
    });
    expect(audio).toMatchObject({
      trackId: '1.mp4',
      kind: 'audio',
      mp4TrackId: 2,
      codec: 'mp4a.40.2',
      supported: true,
      timescale: 48000,
      sampleRate: 48000,
      channelCount: 2,
    });
    expect(video!.description![0]).toBe(1); // avcC configurationVersion
    expect(Array.from(audio!.description!.subarray(0, 2))).toEqual([0x11, 0x90]); // AAC-LC, 48 kHz, stereo
    for (const track of [video!, audio!]) {
      const boxes = readBoxes(track.initSegment);
      expect(boxes.map((b) => b.type)).toEqual(['ftyp', 'moov']);
      const moov = readBoxes(boxes[1]!.body);
      expect(moov.filter((b) => b.type === 'trak')).toHaveLength(1);
      const trex = readBoxes(moov.find((b) => b.type === 'mvex')!.body);
      expect(trex.map((b) => b.type)).toEqual(['trex']);
      expect(new DataView(trex[0]!.body.buffer, trex[0]!.body.byteOffset).getUint32(4)).toBe(1); // track_ID 1
    }
  });

  it('fills in the video frame rate from the first fragments when the init does not give it', () => {
    const cases: Array<[string, number]> = [
      ['720p30-nob-aac.mp4', 30],
      ['720p25.mp4', 25],
      ['720p30-frag-every-frame.mp4', 30],
    ];
    for (const [name, fps] of cases) {
      const parser = new Fmp4StreamParser();
      const bytes = readFixture(name);
      const firstMoof = topLevelBoxes(bytes).find((b) => b.type === 'moof')!;
      const [init] = parser.push(bytes.subarray(0, firstMoof.offset));
      expect(init?.type).toBe('init');
      const video = init?.type === 'init' ? init.tracks[0]! : undefined;
      expect(video?.frameRate).toBeUndefined(); // ffmpeg's empty_moov has no default duration
      parser.push(bytes.subarray(firstMoof.offset));
      parser.end();
      expect(video?.frameRate).toBe(fps);
      expect(parser.tracks[0]!.frameRate).toBe(fps);
    }
  });

  it('numbers groups by video keyframe and objects within the group; deltas get priority 1', () => {
    const r = parseAll(readFixture('720p30-frag-every-frame.mp4'));
    const video = trackFragments(r, VIDEO_TRACK).map((f) => f.fragment);
    expect(video).toHaveLength(90);
    video.forEach((f, i) => {
      expect(f.groupId).toBe(Math.floor(i / 30));
      expect(f.objectId).toBe(i % 30);
      expect(f.flags.keyframe).toBe(i % 30 === 0);
      expect(f.priority).toBe(i % 30 === 0 ? 0 : 1);
    });
    const audio = trackFragments(r, AUDIO_TRACK).map((f) => f.fragment);
    expect(audio.map((f) => f.groupId)).toEqual(audio.map((_, i) => i));
    const sequence = (p: Uint8Array) => new DataView(p.buffer, p.byteOffset).getUint32(20); // moof > mfhd
    expect(video.map((f) => sequence(f.payload))).toEqual(video.map((_, i) => i + 1));
  });

  it('stamps ingestTimeMs with the clock at the push that completed the mdat', () => {
    const bytes = readFixture('720p30-nob-aac.mp4');
    const mdat = topLevelBoxes(bytes).find((b) => b.type === 'mdat')!;
    let clock = 1000;
    const parser = new Fmp4StreamParser({ now: () => clock });
    expect(parser.push(bytes.subarray(0, mdat.offset + 100))).toHaveLength(1); // the init only
    clock = 2000;
    const events = parser.push(bytes.subarray(mdat.offset + 100, mdat.offset + mdat.size));
    expect(events.map((e) => (e.type === 'fragment' ? e.fragment.ingestTimeMs : -1))).toEqual([2000, 2000]);
  });

  it('a second moov (restart with another resolution) gives a new init and tfdt-based timestamps', () => {
    const first = readFixture('720p30-nob-aac.mp4');
    const second = readFixture('360p30.mp4');
    const r = parseAll(concat([first, second]));
    expect(r.inits.map((tracks) => tracks.map((t) => `${t.trackId} ${t.width ?? ''}x${t.height ?? ''}`))).toEqual([
      ['0.mp4 1280x720', '1.mp4 x'],
      ['0.mp4 640x360', '1.mp4 x'],
    ]);
    const video = trackFragments(r, VIDEO_TRACK).map((f) => f.fragment);
    expect(video.map((f) => f.dts)).toEqual([0, 15688, 31048, 0, 15688, 31048]); // from tfdt, not chained
    expect(video.map((f) => f.groupId)).toEqual([0, 1, 2, 3, 4, 5]);
    const restartIndex = r.events.findIndex((e, i) => i > 0 && e.type === 'init');
    const afterRestart = r.events.slice(restartIndex + 1).find((e) => e.type === 'fragment');
    expect(afterRestart?.type === 'fragment' && afterRestart.fragment.dts).toBe(0);
  });

  it('resolves an explicit base_data_offset against the start of the file that holds it', () => {
    const alone = sampleDigests(parseAll(readFixture('720p30-base-data-offset.mp4')));
    const r = parseAll(concat([readFixture('720p30-nob-aac.mp4'), readFixture('720p30-base-data-offset.mp4')]));
    expect(r.inits).toHaveLength(2);
    const samples = sampleDigests(r);
    expect(samples.slice(samples.length - alone.length)).toEqual(alone);
  });

  it('skips styp, sidx, prft, emsg, free, skip, uuid and 64-bit-size boxes between fragments', () => {
    const bytes = readFixture('720p30-frag-every-frame.mp4');
    const reference = parseAll(bytes);
    const box = (type: string, size: number) => {
      const b = new Uint8Array(size);
      new DataView(b.buffer).setUint32(0, size);
      b.set(
        Array.from(type, (c) => c.charCodeAt(0)),
        4,
      );
      return b;
    };
    const large = new Uint8Array(40);
    const lv = new DataView(large.buffer);
    lv.setUint32(0, 1);
    large.set([0x66, 0x72, 0x65, 0x65], 4); // free
    lv.setUint32(12, 40); // 64-bit size 40
    const junk = [
      box('styp', 20),
      box('sidx', 52),
      box('prft', 32),
      box('emsg', 64),
      box('skip', 8),
      box('uuid', 30),
      large,
    ];
    const parts: Uint8Array[] = [];
    for (const b of topLevelBoxes(bytes)) {
      if (b.type === 'moof') parts.push(...junk);
      parts.push(bytes.subarray(b.offset, b.offset + b.size));
    }
    const withJunk = parseChunks(cut(concat(parts), () => 997));
    expect(withJunk.fragments.map((f) => digest(f.fragment.payload))).toEqual(
      reference.fragments.map((f) => digest(f.fragment.payload)),
    );
  });

  it('completes an mdat whose size field is 0 (runs to the end) at end()', () => {
    const bytes = readFixture('720p30-nob-aac.mp4').slice();
    const boxes = topLevelBoxes(bytes);
    const lastMdat = boxes.filter((b) => b.type === 'mdat').at(-1)!;
    const stream = bytes.subarray(0, lastMdat.offset + lastMdat.size); // drop the trailing mfra
    new DataView(stream.buffer, stream.byteOffset).setUint32(lastMdat.offset, 0);
    const parser = new Fmp4StreamParser();
    const pushed = parser.push(stream).filter((e) => e.type === 'fragment');
    expect(pushed).toHaveLength(4);
    const ended = parser.end();
    expect(ended.map((e) => e.type)).toEqual(['fragment', 'fragment']);
  });

  it('reports a VP9 track as unsupported (codec = 4cc, with a reason) and still emits its fragments', () => {
    const r = parseAll(readFixture('vp9-opus-240p.mp4'));
    const [video, audio] = r.inits[0]!;
    expect(video).toMatchObject({ trackId: '0.mp4', codec: 'vp09', supported: false, width: 320, height: 240 });
    expect(video!.unsupportedReason).toMatch(/vp09/);
    expect(video!.description).toBeUndefined();
    expect(audio).toMatchObject({
      trackId: '1.mp4',
      codec: 'opus',
      supported: true,
      sampleRate: 48000,
      channelCount: 2,
    });
    expect(trackFragments(r, VIDEO_TRACK).length).toBeGreaterThan(0);
  });

  it('continueFrom carries the init and counters to a parser for a reconnected publisher', () => {
    const bytes = readFixture('720p30-frag-every-frame.mp4');
    const boxes = topLevelBoxes(bytes);
    const cutAt = boxes.filter((b) => b.type === 'moof')[100]!.offset;
    const first = new Fmp4StreamParser();
    const firstEvents = first.push(bytes.subarray(0, cutAt + 50)); // stops inside a moof
    const second = new Fmp4StreamParser();
    second.continueFrom(first);
    const rest = [...second.push(bytes.subarray(cutAt)), ...second.end()];
    expect(rest.some((e) => e.type === 'init')).toBe(false);
    const all = collect([...firstEvents, ...rest]);
    expect(all.fragments.map((f) => digest(f.fragment.payload))).toEqual(
      parseAll(bytes).fragments.map((f) => digest(f.fragment.payload)),
    );
  });
});

describe('Fmp4StreamParser timing', () => {
  const clip = splitFmp4(readFixture('720p30-frag-every-frame.mp4'));
  const gop = splitFmp4(readFixture('360p30.mp4')); // one moof per 1 s GOP, video and audio in each
  const videoSamples = (events: ParserEvent[]) =>
    collect(events).fragments.filter((f) => f.fragment.trackId === VIDEO_TRACK);

  it('a fragment that ends in zero-duration samples is held until the next decode time, and those samples share it', () => {
    const parser = new Fmp4StreamParser();
    parser.push(gop.init);
    const zeroed = gop.fragments.map((f) => withZeroDurations(f, 1));
    // The first GOP waits for the second's decode time; then it comes out, before the second.
    expect(videoSamples(parser.push(zeroed[0]!))).toEqual([]);
    const [first] = videoSamples(parser.push(zeroed[1]!));
    const next = decodeTimesOf(gop.fragments[1]!).get(1)!;
    expect(first!.fragment.duration).toBe(next);
    const durations = first!.samples.map((s) => s.duration);
    expect(durations.every((d) => d === Math.floor(next / 30) || d === next - 29 * Math.floor(next / 30))).toBe(true);
    expect(first!.samples.map((s) => s.dts)).toEqual(first!.samples.map((_, i) => i * Math.floor(next / 30)));
    // The payload says the same as the event.
    expect(readSamples(first!.fragment.payload).map((s) => [s.dts, s.duration])).toEqual(
      first!.samples.map((s) => [s.dts, s.duration]),
    );
    // At the end, the last held one gets the median of the recent durations.
    const rest = videoSamples([...parser.push(zeroed[2]!), ...parser.end()]);
    expect(rest.map((f) => f.samples.every((s) => s.duration === 512))).toEqual([true, true]);
  });

  it('keeps a zero duration the next decode time confirms (ffmpeg repeats a decode time after one)', () => {
    const audio = collect([...new Fmp4StreamParser().push(concat([clip.init, ...clip.fragments]))]).fragments.filter(
      (f) => f.fragment.trackId === AUDIO_TRACK,
    );
    const zero = audio.findIndex((f) => f.fragment.duration === 0);
    expect(zero).toBeGreaterThan(0);
    expect(audio[zero + 1]!.fragment.dts).toBe(audio[zero]!.fragment.dts);
  });

  it('flush releases held fragments with an estimated duration and, after an error, what the failing push completed', () => {
    const parser = new Fmp4StreamParser();
    const video = clip.fragments.filter((f) => trackIdsOf(f).includes(1)).slice(0, 5);
    const stream = concat([clip.init, ...video.slice(0, 4), withZeroDurations(video[4]!, 1)]);
    expect(videoSamples(parser.push(stream))).toHaveLength(4);
    // Recent durations 840 (ffmpeg's longer first frame), 512, 512, 512: the median is 512.
    expect(videoSamples(parser.flush()).map((f) => f.fragment.duration)).toEqual([512]);
    expect(parser.flush()).toEqual([]);

    const failing = new Fmp4StreamParser();
    const broken = concat([clip.init, clip.fragments[0]!, clip.fragments[1]!, Uint8Array.of(0, 0, 0, 9, 1, 2, 3, 4)]);
    expect(() => failing.push(broken)).toThrowError(expect.objectContaining({ code: 'ingest.malformed_box' }));
    const salvaged = collect(failing.flush());
    expect(salvaged.inits).toHaveLength(1);
    expect(salvaged.fragments).toHaveLength(2);
    expect(failing.flush()).toEqual([]);
  });

  it('a decode time going backwards within one init is ingest.timestamp_regression; a new moov restarts the timeline', () => {
    const back = new Fmp4StreamParser();
    back.push(concat([gop.init, gop.fragments[1]!]));
    expect(() => back.push(gop.fragments[0]!)).toThrowError(
      expect.objectContaining({ code: 'ingest.timestamp_regression', message: expect.stringMatching(/new init/) }),
    );
    const restarted = parseAll(concat([gop.init, gop.fragments[1]!, gop.init, gop.fragments[0]!]));
    expect(restarted.inits).toHaveLength(2);
    // Over a reconnect (a parser continuing another), the clock may restart too.
    const first = new Fmp4StreamParser();
    first.push(concat([gop.init, gop.fragments[1]!]));
    const second = new Fmp4StreamParser();
    second.continueFrom(first);
    expect(videoSamples(second.push(gop.fragments[0]!))).toHaveLength(1);
    // Moving forward by any amount is fine.
    const jump = withDecodeTimes(gop.fragments[2]!, (_, t) => t + 90_000);
    expect(parseAll(concat([gop.init, ...gop.fragments, jump])).fragments).toHaveLength(8);
  });
});
