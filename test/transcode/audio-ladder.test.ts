import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fragment, FragmentBroadcaster } from '../../src/fragment/index.ts';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { IngestManager } from '../../src/ingest/index.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import { parseServe, USAGE } from '../../src/server/config.ts';
import { createService } from '../../src/server/service.ts';
import { bindAudioWebCodecs } from '../../src/transcode/audio-webcodecs-binding.ts';
import {
  AudioLadder,
  AudioRenditionFactory,
  audioRenditionTargets,
  defaultLadder,
  TranscodeRunner,
  type TranscodeRunnerHandle,
} from '../../src/transcode/index.ts';
import { napiProvider } from '../../src/webcodecs/index.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { concat } from '../../testkit/fmp4.ts';
import { decodeErrors, ffmpeg, probePackets, probeStreams, withFile } from '../support/ffprobe.ts';
import { publish } from '../support/ladder.ts';
import { decodeTimesOf, splitFmp4, trackIdsOf, withDecodeTimes, withZeroDurations } from '../support/mp4-edit.ts';
import { waitFor } from '../support/wait.ts';

const SOURCE_S = 10;
const RATE = 48_000;
/** A click of 2 ms at t = k + 0.5 s over low white noise (the noise makes the encoders spend their budget). */
const AUDIO = `aevalsrc=exprs=0.08*(2*random(0)-1)+if(between(mod(t\\,1)\\,0.5\\,0.502)\\,0.9\\,0):s=${RATE}:c=stereo`;

type Collected = { broadcaster: FragmentBroadcaster; init: Uint8Array; fragments: Fragment[]; ended: boolean };

/** Decodes `file` to mono f32 and returns the times (s) of the clicks, from the first frame's pts. */
async function clickTimes(file: Uint8Array, timescale: number): Promise<number[]> {
  const packets = await probePackets(file, 'a');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lvqr-audio-'));
  try {
    const raw = path.join(dir, 'out.raw');
    await withFile(file, (input) => ffmpeg(['-i', input, '-ac', '1', '-f', 'f32le', raw]));
    const bytes = await readFile(raw);
    const pcm = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const times: number[] = [];
    let last = -Infinity;
    for (let i = 0; i < pcm.length; i++) {
      if (Math.abs(pcm[i]!) > 0.5 && i - last > RATE / 2) {
        times.push(i / RATE);
        last = i;
      }
    }
    // The decoded stream starts at the first frame's pts (Opus: the first packet's pts + pre_skip).
    const firstPts = packets[0]!.pts;
    const preSkip = await opusPreSkip(file);
    return times.map((t) => t + (firstPts + preSkip) / timescale);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The `dOps` payload of an init, or undefined. */
function dOpsOf(init: Uint8Array): Uint8Array | undefined {
  const at = Buffer.from(init).indexOf('dOps');
  if (at < 4) return undefined;
  const size = new DataView(init.buffer, init.byteOffset + at - 4).getUint32(0);
  return init.subarray(at + 4, at - 4 + size);
}

async function opusPreSkip(file: Uint8Array): Promise<number> {
  const dOps = dOpsOf(file);
  return dOps === undefined ? 0 : new DataView(dOps.buffer, dOps.byteOffset).getUint16(2);
}

describe('audio ladder (real AAC and Opus codecs, ffprobe as judge)', () => {
  let registry: FragmentBroadcasterRegistry;
  let handle: TranscodeRunnerHandle;
  let ingest: IngestManager;
  let ladder: AudioLadder;
  let dir: string;
  let sourceFile: Uint8Array;
  const outputs = new Map<string, Collected>();
  const targets = audioRenditionTargets(defaultLadder(), 64);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'lvqr-audio-src-'));
    const file = path.join(dir, 'source.mp4');
    await ffmpeg([
      ...['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30', '-f', 'lavfi', '-i', AUDIO],
      ...['-t', String(SOURCE_S), '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-pix_fmt', 'yuv420p'],
      ...['-c:a', 'aac', '-b:a', '128k', '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', file],
    ]);
    sourceFile = new Uint8Array(await readFile(file));
    const provider = await napiProvider();
    const codecs = bindAudioWebCodecs(provider.codecs);
    if (codecs === undefined) throw new Error('the addon has no audio classes');
    registry = new FragmentBroadcasterRegistry();
    const metrics = createMetrics();
    ladder = new AudioLadder({ registry, codecs, metrics });
    const runner = new TranscodeRunner({ metrics });
    for (const target of targets) runner.withFactory(new AudioRenditionFactory(target, ladder));
    handle = runner.install(registry);
    registry.onEntryCreated((broadcast, track, bc) => {
      if (track !== '1.mp4') return;
      const collected: Collected = { broadcaster: bc, init: new Uint8Array(0), fragments: [], ended: false };
      outputs.set(broadcast, collected);
      const sub = bc.subscribe({ capacity: 1_000_000, maxBytes: 2 ** 31 });
      void (async () => {
        for (let f = await sub.next(); f !== undefined; f = await sub.next()) {
          if (collected.init.byteLength === 0) collected.init = bc.meta.initSegment ?? new Uint8Array(0);
          collected.fragments.push(f);
        }
        collected.ended = true;
      })();
    });
    ingest = new IngestManager({ registry, metrics });
    await publish(ingest, 'live/a', [{ bytes: sourceFile, durationS: SOURCE_S }], { speed: 5 });
    await waitFor(
      () => targets.every((t) => outputs.get(`live/a/audio-${t.codec}-${t.bitrateKbps}k`)?.ended),
      'every audio rendition to end',
      { timeoutMs: 20_000 },
    );
  }, 40_000);

  afterAll(async () => {
    ingest?.close();
    await handle?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const fileOf = (name: string): Uint8Array => {
    const o = outputs.get(name)!;
    return concat([o.init, ...o.fragments.map((f) => f.payload)]);
  };

  it('publishes AAC at each distinct audio bitrate of the ladder and one Opus rendition', () => {
    expect(targets).toEqual([
      { codec: 'aac', bitrateKbps: 128 },
      { codec: 'aac', bitrateKbps: 96 },
      { codec: 'aac', bitrateKbps: 64 },
      { codec: 'opus', bitrateKbps: 64 },
    ]);
    for (const t of targets) {
      const o = outputs.get(`live/a/audio-${t.codec}-${t.bitrateKbps}k`)!;
      expect(o.broadcaster.origin).toMatchObject({ kind: 'rendition', source: 'live/a' });
      expect(o.broadcaster.meta.codec).toBe(t.codec === 'aac' ? 'mp4a.40.2' : 'opus');
    }
  });

  it('every rendition decodes without error, lasts as long as the source within one audio frame, and holds its bitrate within 15 %', async () => {
    const source = fileOf('live/a');
    const sourcePackets = await probePackets(source, 'a');
    const [sourceStream] = (await probeStreams(source)).filter((s) => s.codecType === 'audio');
    const sourceStart = sourcePackets[0]!.pts / sourceStream!.timescale;
    const last = sourcePackets.at(-1)!;
    const sourceEnd = (last.pts + (last.duration ?? 1024)) / sourceStream!.timescale;
    for (const t of targets) {
      const file = fileOf(`live/a/audio-${t.codec}-${t.bitrateKbps}k`);
      expect(await decodeErrors(file), t.codec).toEqual([]);
      const [stream] = await probeStreams(file);
      expect(stream).toMatchObject({ codecName: t.codec, sampleRate: RATE, channels: 2 });
      const packets = await probePackets(file, 'a');
      const frameS = (t.codec === 'aac' ? 1024 : 960) / RATE;
      const ts = stream!.timescale;
      const preSkip = await opusPreSkip(file);
      const start = (packets[0]!.pts + preSkip) / ts;
      const lastPacket = packets.at(-1)!;
      const end = (lastPacket.pts + (lastPacket.duration ?? 0)) / ts;
      expect(Math.abs(start - sourceStart), `${t.codec} start`).toBeLessThanOrEqual(frameS);
      expect(Math.abs(end - sourceEnd), `${t.codec} end`).toBeLessThanOrEqual(frameS);
      const bytes = packets.reduce((a, p) => a + p.size, 0);
      const kbps = (bytes * 8) / (end - start) / 1000;
      const error = (kbps - t.bitrateKbps) / t.bitrateKbps;
      expect(Math.abs(error), `${t.codec} ${t.bitrateKbps}k measured ${kbps.toFixed(1)} kb/s`).toBeLessThan(0.15);
    }
  });

  it('keeps the source timeline to the sample: each click is where the source has it (within 1 ms)', async () => {
    const source = fileOf('live/a');
    const [sourceStream] = (await probeStreams(source)).filter((s) => s.codecType === 'audio');
    const expected = await clickTimes(
      concat([outputs.get('live/a')!.init, ...outputs.get('live/a')!.fragments.map((f) => f.payload)]),
      sourceStream!.timescale,
    );
    expect(expected.length).toBeGreaterThanOrEqual(SOURCE_S - 1);
    for (const t of targets) {
      const file = fileOf(`live/a/audio-${t.codec}-${t.bitrateKbps}k`);
      const got = await clickTimes(file, RATE);
      expect(got.length, t.codec).toBe(expected.length);
      for (let i = 0; i < got.length; i++) {
        expect(Math.abs(got[i]! - expected[i]!), `${t.codec} ${t.bitrateKbps}k click ${i}`).toBeLessThanOrEqual(0.001);
      }
    }
  });

  it('writes Opus in an `Opus` sample entry with a big-endian dOps (version 0, pre_skip of the OpusHead)', () => {
    const init = outputs.get('live/a/audio-opus-64k')!.init;
    const dOps = dOpsOf(init)!;
    expect(dOps).toBeDefined();
    expect(Buffer.from(init).indexOf('Opus')).toBeGreaterThan(0);
    const view = new DataView(dOps.buffer, dOps.byteOffset, dOps.byteLength);
    expect(view.getUint8(0)).toBe(0); // version
    expect(view.getUint8(1)).toBe(2); // channels
    expect(view.getUint16(2)).toBe(312); // pre_skip, big-endian (the OpusHead says 0x3801 little-endian)
    expect(view.getUint32(4)).toBe(RATE); // input sample rate, big-endian
  });

  it('lists each audio rendition in the runner stats with its state, bitrate and packets', () => {
    const stats = handle.stats().filter((s) => s.transcoder === 'audio-ladder');
    expect(stats.map((s) => s.rendition).sort()).toEqual(
      ['audio-aac-128k', 'audio-aac-64k', 'audio-aac-96k', 'audio-opus-64k'].sort(),
    );
    for (const s of stats) {
      expect(s.transcoderStats).toMatchObject({ state: 'ended', kind: 'audio', restarts: 0, droppedFrames: 0 });
      expect(Number(s.transcoderStats?.['framesOut'])).toBeGreaterThan(400);
    }
    expect(ladder.sources()).toEqual([]);
  });
});

describe('--transcode-audio and --transcode-audio-opus', () => {
  it('default to the ladder and 64 kb/s; read the environment; refuse other values', () => {
    const none = () => '';
    expect(parseServe([], {}, none)).toMatchObject({ transcodeAudio: 'ladder', transcodeAudioOpusKbps: 64 });
    expect(
      parseServe([], { LVQR_TRANSCODE_AUDIO: 'passthrough', LVQR_TRANSCODE_AUDIO_OPUS: 'off' }, none),
    ).toMatchObject({
      transcodeAudio: 'passthrough',
      transcodeAudioOpusKbps: undefined,
    });
    expect(parseServe(['--transcode-audio-opus', '48'], {}, none).transcodeAudioOpusKbps).toBe(48);
    expect(() => parseServe(['--transcode-audio', 'aac'], {}, none)).toThrow(/passthrough or ladder/);
    expect(() => parseServe(['--transcode-audio-opus', '2'], {}, none)).toThrow(/between 6 and 510/);
    expect(USAGE).toMatch(/--transcode-audio passthrough\|ladder/);
  });

  it('the service runs the audio ladder only in ladder mode and lists its renditions in /api/v1/transcode', async () => {
    const provider = await napiProvider();
    const audioCodecs = bindAudioWebCodecs(provider.codecs);
    const bytes = readFixture('720p30-nob-aac.mp4');
    const run = async (argv: string[], ladder: boolean) => {
      const config = parseServe([...argv, '--test-pattern', 'off'], {}, () => '');
      const service = createService({ config, audioCodecs });
      try {
        await publish(service.ingest, 'live/s', [{ bytes, durationS: 3 }], { speed: 6 });
        const status = async () => {
          const res = await service.app.request('/api/v1/transcode');
          return (await res.json()) as { audio: { mode: string; renditions: Array<Record<string, unknown>> } };
        };
        if (!ladder) {
          await waitFor(() => service.registry.get('live/s', '1.mp4') !== undefined, 'the source audio');
          return await status();
        }
        return await waitFor(
          async () => {
            const s = await status();
            return s.audio.renditions.length === 3 && s.audio.renditions.every((r) => Number(r['framesOut']) > 100)
              ? s
              : undefined;
          },
          'three AAC renditions with output',
          { timeoutMs: 15_000 },
        );
      } finally {
        await service.close();
      }
    };
    const passthrough = await run(['--transcode-audio', 'passthrough'], false);
    expect(passthrough.audio).toMatchObject({ mode: 'passthrough', renditions: [] });
    const ladder = await run(['--transcode-audio-opus', 'off'], true);
    expect(ladder.audio.mode).toBe('ladder');
    expect(ladder.audio.renditions.map((r) => [r['rendition'], r['codec'], r['bitrateKbps']])).toEqual([
      ['audio-aac-128k', 'mp4a.40.2', 128],
      ['audio-aac-96k', 'mp4a.40.2', 96],
      ['audio-aac-64k', 'mp4a.40.2', 64],
    ]);
  }, 30_000);
});

describe('a source that restarts its stream', () => {
  it('each audio rendition follows with a discontinuity where the source has it, and goes on', async () => {
    const provider = await napiProvider();
    const audioCodecs = bindAudioWebCodecs(provider.codecs);
    const clip = readFixture('720p30-nob-aac.mp4');
    const config = parseServe(
      ['--test-pattern', 'off', '--transcode-rendition', '240p', '--ingest-grace', '0'],
      {},
      () => '',
    );
    const service = createService({ config, audioCodecs });
    const playlist = async (file: string) => {
      const res = await service.app.request(`/hls/live/again/${file}`);
      return res.ok ? res.text() : '';
    };
    /** Media sequence numbers after which a discontinuity is listed, and the listed duration. */
    const summary = (text: string) => {
      let msn = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(text)?.[1] ?? Number.NaN);
      const discontinuities: number[] = [];
      let durationS = 0;
      for (const line of text.split('\n')) {
        if (line === '#EXT-X-DISCONTINUITY') discontinuities.push(msn);
        else if (line.startsWith('#EXTINF:')) durationS += Number.parseFloat(line.slice(8));
        else if (/^(audio-)?seg-\d+\.m4s$/.test(line)) msn += 1;
      }
      return { discontinuities, durationS };
    };
    try {
      // The same 3 s clip twice on one connection: a new init, timestamps from 0 again.
      await publish(
        service.ingest,
        'live/again',
        [
          { bytes: clip, durationS: 3 },
          { bytes: clip, durationS: 3 },
        ],
        { speed: 2 },
      );
      const ended = (file: string) =>
        waitFor(
          async () => {
            const text = await playlist(file);
            return text.includes('#EXT-X-ENDLIST') ? text : undefined;
          },
          `${file} to end`,
          { timeoutMs: 20_000 },
        );
      const source = summary(await ended('audio.m3u8'));
      expect(source.discontinuities).toHaveLength(1);
      for (const rendition of ['audio-aac-64k', 'audio-opus-64k']) {
        const own = summary(await ended(`${rendition}/audio.m3u8`));
        expect(own.discontinuities, rendition).toEqual(source.discontinuities);
        expect(Math.abs(own.durationS - source.durationS), rendition).toBeLessThan(0.1);
      }
    } finally {
      await service.close();
    }
  }, 40_000);
});

describe('a source that gives two audio frames one time', () => {
  it("each audio rendition stays on the source's timeline: the repeated frame is dropped, not a new timeline", async () => {
    // ffmpeg's per-frame fragmenting can write a file's second-to-last AAC frame at the last one's
    // time with a zero duration (seen at every loop of the soak's source): two frames, one time.
    const clip = splitFmp4(readFixture('720p30-frag-every-frame.mp4'));
    const audioPieces = clip.fragments
      .map((piece, index) => ({ piece, index }))
      .filter(({ piece }) => trackIdsOf(piece).length === 1 && trackIdsOf(piece)[0] === 2);
    const a = audioPieces[Math.floor(audioPieces.length / 2)]!;
    const next = audioPieces[audioPieces.indexOf(a) + 1]!;
    const repeatedAt = decodeTimesOf(next.piece).get(2)!;
    const fragments = clip.fragments.slice();
    fragments[a.index] = withZeroDurations(
      withDecodeTimes(a.piece, () => repeatedAt),
      2,
    );
    const provider = await napiProvider();
    const audioCodecs = bindAudioWebCodecs(provider.codecs);
    const config = parseServe(
      ['--test-pattern', 'off', '--transcode-rendition', '240p', '--ingest-grace', '0'],
      {},
      () => '',
    );
    const service = createService({ config, audioCodecs });
    const ended = (file: string) =>
      waitFor(
        async () => {
          const res = await service.app.request(`/hls/live/repeat/${file}`);
          const text = res.ok ? await res.text() : '';
          return text.includes('#EXT-X-ENDLIST') ? text : undefined;
        },
        `${file} to end`,
        { timeoutMs: 20_000 },
      );
    try {
      await publish(service.ingest, 'live/repeat', [{ bytes: concat([clip.init, ...fragments]), durationS: 3 }], {
        speed: 1,
      });
      expect(await ended('audio.m3u8')).not.toContain('#EXT-X-DISCONTINUITY');
      for (const rendition of ['audio-aac-64k', 'audio-opus-64k']) {
        expect(await ended(`${rendition}/audio.m3u8`), rendition).not.toContain('#EXT-X-DISCONTINUITY');
      }
    } finally {
      await service.close();
    }
  }, 40_000);
});
