import { describe, expect, it } from 'vitest';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import {
  AudioPassthroughTranscoderFactory,
  defaultLadder,
  PassthroughTranscoderFactory,
  PRESET_720P,
  type RenditionSpec,
  TranscodeRunner,
  type Transcoder,
  type TranscoderContext,
  type TranscoderFactory,
} from '../../src/transcode/index.ts';
import { frag, videoMeta } from '../support/fragments.ts';
import { waitFor } from '../support/wait.ts';

const INIT = new Uint8Array([0, 0, 0, 8, 0x66, 0x74, 0x79, 0x70]);

function factoryOf(name: string, build: (ctx: TranscoderContext) => Transcoder | undefined, rendition = PRESET_720P) {
  return { name, rendition, build } satisfies TranscoderFactory;
}

describe('TranscodeRunner', () => {
  it('passthrough sees every fragment and stops when the source ends', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner().withFactory(new PassthroughTranscoderFactory(PRESET_720P)).install(reg);
    const bc = reg.getOrCreate('live/demo', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 5; i++) bc.emit(frag(i));
    reg.remove('live/demo', '0.mp4');
    await waitFor(() => handle.stats()[0]?.state === 'ended', 'task end');
    expect(handle.fragmentsSeen('passthrough', '720p', 'live/demo', '0.mp4')).toBe(5);
    expect(handle.panics('passthrough', '720p', 'live/demo', '0.mp4')).toBe(0);
  });

  it('the default ladder spawns one task per rendition, each seeing every fragment', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const runner = new TranscodeRunner().withLadder(defaultLadder(), (spec) => new PassthroughTranscoderFactory(spec));
    expect(runner.factoryCount).toBe(3);
    const handle = runner.install(reg);
    const bc = reg.getOrCreate('live/ladder', '0.mp4', videoMeta(INIT));
    bc.emit(frag(0));
    bc.emit(frag(1));
    await waitFor(
      () => handle.tracked().every(([, r]) => handle.fragmentsSeen('passthrough', r, 'live/ladder', '0.mp4') === 2),
      'every rung saw both fragments',
    );
    expect(
      handle
        .tracked()
        .map(([, r]) => r)
        .sort(),
    ).toEqual(['240p', '480p', '720p']);
  });

  it('a factory that opts out spawns nothing (passthrough skips non-video tracks)', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner().withFactory(new PassthroughTranscoderFactory(PRESET_720P)).install(reg);
    const audio = reg.getOrCreate('live/demo', '1.mp4', { codec: 'mp4a.40.2', timescale: 48_000, initSegment: INIT });
    audio.emit(frag(0, { track: '1.mp4' }));
    expect(handle.tracked()).toEqual([]);
  });

  it('an exception in onFragment is caught and counted, and the loop goes on', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const metrics = createMetrics();
    const handle = new TranscodeRunner({ metrics })
      .withFactory(
        factoryOf('panicky', () => ({
          onFragment(f) {
            if (f.groupId === 2) throw new Error('simulated encoder fault at group 2');
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/panic', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 5; i++) bc.emit(frag(i, { gop: 1 }));
    await waitFor(() => handle.fragmentsSeen('panicky', '720p', 'live/panic', '0.mp4') === 5, '5 fragments');
    expect(handle.panics('panicky', '720p', 'live/panic', '0.mp4')).toBe(1);
    const [stats] = handle.stats();
    expect(stats?.panicsByPhase.fragment).toBe(1);
    expect(stats?.lastError).toMatch(/group 2/);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/lvqr_transcode_panics_total\{transcoder="panicky",rendition="720p",phase="fragment"\} 1/);
    expect(text).toMatch(/lvqr_transcode_fragments_total\{transcoder="panicky",rendition="720p"\} 5/);
  });

  it('an exception in onStart skips the drain loop (no fragment is delivered)', async () => {
    const reg = new FragmentBroadcasterRegistry();
    let delivered = 0;
    let stopped = 0;
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('bad-start', () => ({
          onStart() {
            throw new Error('cannot start');
          },
          onFragment() {
            delivered++;
          },
          onStop() {
            stopped++;
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/x', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 3; i++) bc.emit(frag(i));
    await waitFor(() => handle.stats()[0]?.state === 'failed', 'failed state');
    expect(handle.panics('bad-start', '720p', 'live/x', '0.mp4')).toBe(1);
    expect(handle.stats()[0]?.panicsByPhase.start).toBe(1);
    expect(delivered).toBe(0);
    expect(stopped).toBe(0);
    expect(handle.fragmentsSeen('bad-start', '720p', 'live/x', '0.mp4')).toBe(0);
  });

  it('an exception in onStop is counted under phase stop', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('bad-stop', () => ({
          onFragment() {},
          async onStop() {
            throw new Error('stop failed');
          },
        })),
      )
      .install(reg);
    reg.getOrCreate('live/x', '0.mp4', videoMeta(INIT)).emit(frag(0));
    reg.remove('live/x', '0.mp4');
    await waitFor(() => handle.stats()[0]?.state === 'ended', 'end');
    expect(handle.stats()[0]?.panicsByPhase.stop).toBe(1);
  });

  it('an empty runner spawns nothing', () => {
    const reg = new FragmentBroadcasterRegistry();
    const runner = new TranscodeRunner();
    expect(runner.factoryCount).toBe(0);
    const handle = runner.install(reg);
    reg.getOrCreate('live/x', '0.mp4', videoMeta(INIT)).emit(frag(0));
    expect(handle.tracked()).toEqual([]);
  });

  it('a default runner is empty', () => {
    expect(new TranscodeRunner().factoryCount).toBe(0);
  });

  it('a downstream subscriber still sees every fragment while the runner drains', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner().withFactory(new PassthroughTranscoderFactory(PRESET_720P)).install(reg);
    const bc = reg.getOrCreate('live/both', '0.mp4', videoMeta(INIT));
    const downstream = bc.subscribe();
    for (let i = 0; i < 10; i++) bc.emit(frag(i));
    reg.remove('live/both', '0.mp4');
    const got: number[] = [];
    for await (const f of downstream) got.push(f.dts / 3000);
    expect(got).toEqual([...Array(10).keys()]);
    await waitFor(() => handle.fragmentsSeen('passthrough', '720p', 'live/both', '0.mp4') === 10, 'runner saw 10');
  });

  it('awaits async hooks in order: onStart before fragments, each onFragment before the next', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const log: string[] = [];
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('async', () => ({
          async onStart() {
            await sleep(10);
            log.push('start');
          },
          async onFragment(f) {
            log.push(`in ${f.objectId}`);
            await sleep(3);
            log.push(`out ${f.objectId}`);
          },
          async onStop() {
            await sleep(1);
            log.push('stop');
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/a', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 3; i++) bc.emit(frag(i));
    reg.remove('live/a', '0.mp4');
    await waitFor(() => handle.stats()[0]?.state === 'ended', 'end');
    expect(log).toEqual(['start', 'in 0', 'out 0', 'in 1', 'out 1', 'in 2', 'out 2', 'stop']);
  });

  it('waits for an init segment that arrives after the entry was created (LVQR race)', async () => {
    const reg = new FragmentBroadcasterRegistry();
    let startedWith: Uint8Array | undefined;
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('needs-init', () => ({
          onStart(ctx) {
            startedWith = ctx.meta.initSegment;
          },
          onFragment() {},
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/late', '0.mp4', videoMeta());
    await new Promise((r) => setTimeout(r, 5));
    expect(handle.stats()[0]?.state).toBe('waiting-init');
    bc.setInitSegment(INIT);
    bc.emit(frag(0));
    await waitFor(() => handle.fragmentsSeen('needs-init', '720p', 'live/late', '0.mp4') === 1, 'one fragment');
    expect(startedWith).toBe(INIT);
  });

  it('a new init mid-stream reaches onMetaChange before the first fragment that follows it', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const log: string[] = [];
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('meta', () => ({
          onFragment(f) {
            log.push(`f${f.objectId}`);
          },
          onMetaChange(m) {
            log.push(`meta ${m.initSegment?.length}`);
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/m', '0.mp4', videoMeta(INIT));
    bc.emit(frag(0));
    bc.setInitSegment(new Uint8Array(3));
    bc.emit(frag(1));
    await waitFor(() => handle.fragmentsSeen('meta', '720p', 'live/m', '0.mp4') === 2, 'two fragments');
    expect(log).toEqual(['f0', 'meta 3', 'f1']);
  });

  it('handle.close() stops every task (onStop runs) and a later broadcast spawns nothing', async () => {
    const reg = new FragmentBroadcasterRegistry();
    let stops = 0;
    const handle = new TranscodeRunner()
      .withLadder(defaultLadder(), (spec) =>
        factoryOf(
          'counting',
          () => ({
            onFragment() {},
            onStop() {
              stops++;
            },
          }),
          spec,
        ),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/one', '0.mp4', videoMeta(INIT));
    bc.emit(frag(0));
    await waitFor(() => handle.stats().every((s) => s.fragmentsSeen === 1), 'all saw one');
    await handle.close();
    expect(stops).toBe(3);
    expect(handle.stats().every((s) => s.state === 'ended')).toBe(true);
    expect(bc.subscriberCount).toBe(0);
    reg.getOrCreate('live/two', '0.mp4', videoMeta(INIT)).emit(frag(0));
    expect(handle.tracked().filter(([, , b]) => b === 'live/two')).toEqual([]);
    await handle.close();
  });

  it('a source named live/720p is transcoded (no guessing from the name)', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner().withFactory(new PassthroughTranscoderFactory(PRESET_720P)).install(reg);
    reg.getOrCreate('live/720p', '0.mp4', videoMeta(INIT)).emit(frag(0));
    await waitFor(() => handle.fragmentsSeen('passthrough', '720p', 'live/720p', '0.mp4') === 1, 'live/720p seen');
  });

  it('never transcodes its own outputs: rendition-tagged broadcasts are skipped', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner()
      .withFactory(new PassthroughTranscoderFactory(PRESET_720P))
      .withFactory(new AudioPassthroughTranscoderFactory(PRESET_720P, reg))
      .install(reg);
    const audio = reg.getOrCreate('live/demo', '1.mp4', { codec: 'mp4a.40.2', timescale: 48_000, initSegment: INIT });
    audio.emit(frag(0, { track: '1.mp4' }));
    await waitFor(() => reg.get('live/demo/720p', '1.mp4'), 'audio output created');
    reg.getOrCreate('x/y/480p', '0.mp4', videoMeta(INIT), {
      origin: { kind: 'rendition', source: 'x/y', rendition: '480p', transcoder: 'software' },
    });
    const broadcasts = handle.tracked().map(([, , b]) => b);
    expect(broadcasts).toEqual(['live/demo']);
  });

  it('a hook that never settles times out, is counted, and the loop goes on', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner({ callTimeoutMs: 30 })
      .withFactory(
        factoryOf('hang', () => ({
          onFragment(f) {
            if (f.objectId === 1) return new Promise<void>(() => {});
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/h', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 3; i++) bc.emit(frag(i));
    await waitFor(() => handle.fragmentsSeen('hang', '720p', 'live/h', '0.mp4') === 3, 'three fragments');
    const [stats] = handle.stats();
    expect(stats?.timeouts).toBe(1);
    expect(stats?.panicsByPhase.fragment).toBe(1);
    await handle.close();
  });

  it('a transcoder that throws on every call is retried with a doubling back-off; fragments in between are skipped, counted, and delivery resumes at a keyframe', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const metrics = createMetrics();
    let now = 0;
    const calls: number[] = [];
    const handle = new TranscodeRunner({ metrics, retryBaseMs: 100, retryMaxMs: 400, now: () => now })
      .withFactory(
        factoryOf('broken', () => ({
          onFragment(f) {
            calls.push(f.dts / 3000);
            throw new Error('broken encoder');
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/broken', '0.mp4', videoMeta(INIT));
    const seen = () => handle.fragmentsSeen('broken', '720p', 'live/broken', '0.mp4');
    // Fragment i at i * 50 ms of the fake clock, a keyframe every 5.
    for (let i = 0; i < 40; i++) {
      bc.emit(frag(i, { gop: 5 }));
      await waitFor(() => seen() === i + 1, `fragment ${i}`);
      now += 50;
    }
    // Calls at 0 ms; after 100 ms at the next keyframe (250 ms); after 200 ms (500 ms); after
    // 400 ms (1000 ms), the cap; after 400 ms again (1500 ms).
    expect(calls).toEqual([0, 5, 10, 20, 30]);
    const [stats] = handle.stats();
    expect(stats?.panics).toBe(calls.length);
    expect(stats?.consecutiveFailures).toBe(calls.length);
    expect(stats?.skipped).toBe(40 - calls.length);
    expect(stats?.state).toBe('backoff');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      new RegExp(
        `lvqr_transcode_dropped_fragments_total\\{transcoder="broken",rendition="720p"\\} ${40 - calls.length}`,
      ),
    );
    expect(text).toMatch(/lvqr_transcode_panics_total\{transcoder="broken",rendition="720p",phase="fragment"\} 5/);
    await handle.close();
  });

  it('a success after failures resets the back-off', async () => {
    const reg = new FragmentBroadcasterRegistry();
    let now = 0;
    let failing = true;
    const delivered: number[] = [];
    const handle = new TranscodeRunner({ retryBaseMs: 100, now: () => now })
      .withFactory(
        factoryOf('flaky', () => ({
          onFragment(f) {
            delivered.push(f.dts / 3000);
            if (failing) throw new Error('flaky');
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/flaky', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 8; i++) {
      if (i === 3) failing = false;
      bc.emit(frag(i, { gop: 1 }));
      await waitFor(() => handle.fragmentsSeen('flaky', '720p', 'live/flaky', '0.mp4') === i + 1, `fragment ${i}`);
      now += 60;
    }
    // Fragment i at i * 60 ms: 0 fails (100 ms back-off), 1 is skipped, 2 fails (200 ms), 3 to 5
    // are skipped, 6 succeeds (the clock is at 360 ms), and so does 7 without any wait.
    expect(delivered).toEqual([0, 2, 6, 7]);
    const [stats] = handle.stats();
    expect(stats?.consecutiveFailures).toBe(0);
    expect(stats?.state).toBe('running');
    await handle.close();
  });

  it('a throwing factory build is isolated to that factory', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('explodes', () => {
          throw new Error('build failed');
        }),
      )
      .withFactory(new PassthroughTranscoderFactory(PRESET_720P))
      .install(reg);
    reg.getOrCreate('live/b', '0.mp4', videoMeta(INIT)).emit(frag(0));
    await waitFor(() => handle.fragmentsSeen('passthrough', '720p', 'live/b', '0.mp4') === 1, 'passthrough ran');
  });

  it('stats of ended broadcasts are bounded', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const handle = new TranscodeRunner({ retainEnded: 5 })
      .withFactory(new PassthroughTranscoderFactory(PRESET_720P))
      .install(reg);
    for (let i = 0; i < 40; i++) {
      reg.getOrCreate(`live/${i}`, '0.mp4', videoMeta(INIT)).emit(frag(0));
      reg.remove(`live/${i}`, '0.mp4');
    }
    await waitFor(() => handle.stats().every((s) => s.state === 'ended'), 'all ended');
    expect(handle.tracked().length).toBe(5);
    expect(JSON.parse(JSON.stringify(handle.stats()))[0].transcoder).toBe('passthrough');
  });

  it('a lagging video task resumes at a keyframe and its lag is visible', async () => {
    const reg = new FragmentBroadcasterRegistry({ broadcaster: { capacity: 8 } });
    const seen: Array<{ key: boolean; i: number }> = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const handle = new TranscodeRunner()
      .withFactory(
        factoryOf('slow', () => ({
          async onFragment(f) {
            if (seen.length === 0) await gate;
            seen.push({ key: f.flags.keyframe, i: f.dts / 3000 });
          },
        })),
      )
      .install(reg);
    const bc = reg.getOrCreate('live/lag', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 40; i++) bc.emit(frag(i, { gop: 6 }));
    release();
    reg.remove('live/lag', '0.mp4');
    await waitFor(() => handle.stats()[0]?.state === 'ended', 'end');
    expect(handle.stats()[0]?.lagged).toBeGreaterThan(0);
    for (let j = 1; j < seen.length; j++) {
      if (seen[j]!.i !== seen[j - 1]!.i + 1) expect(seen[j]!.key).toBe(true);
    }
    expect(seen.at(-1)?.i).toBe(39);
  });
});

describe('AudioPassthroughTranscoderFactory', () => {
  const audioMeta = (init: Uint8Array) => ({ codec: 'mp4a.40.2', timescale: 48_000, initSegment: init });

  it('opts out of non-audio tracks', () => {
    const reg = new FragmentBroadcasterRegistry();
    const f = new AudioPassthroughTranscoderFactory(PRESET_720P, reg);
    const ctx = (track: string): TranscoderContext => ({
      broadcast: 'live/demo',
      track,
      meta: audioMeta(INIT),
      rendition: PRESET_720P,
      signal: new AbortController().signal,
    });
    for (const t of ['0.mp4', 'captions', 'catalog']) expect(f.build(ctx(t))).toBeUndefined();
    expect(f.build(ctx('1.mp4'))).toBeDefined();
    expect(f.name).toBe('audio-passthrough');
  });

  it('copies <source>/1.mp4 into <source>/<rendition>/1.mp4 sharing payload bytes, follows init changes, ends with the source', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const metrics = createMetrics();
    const ladder: RenditionSpec[] = defaultLadder();
    new TranscodeRunner()
      .withLadder(ladder, (spec) => new AudioPassthroughTranscoderFactory(spec, reg, metrics))
      .install(reg);
    const src = reg.getOrCreate('live/demo', '1.mp4', audioMeta(INIT));
    const out = await waitFor(() => reg.get('live/demo/480p', '1.mp4'), '480p audio output');
    expect(out.origin).toEqual({
      kind: 'rendition',
      source: 'live/demo',
      rendition: '480p',
      transcoder: 'audio-passthrough',
    });
    expect(out.meta.initSegment).toBe(INIT);
    const sub = out.subscribe();
    const sent = frag(0, { track: '1.mp4' });
    src.emit(sent);
    const got = await sub.next();
    expect(got?.payload).toBe(sent.payload);
    const newInit = new Uint8Array([9, 9]);
    src.setInitSegment(newInit);
    src.emit(frag(1, { track: '1.mp4' }));
    await sub.next();
    expect(sub.meta.initSegment).toBe(newInit);
    reg.remove('live/demo', '1.mp4');
    expect(await sub.next()).toBeUndefined();
    await waitFor(() => reg.get('live/demo/480p', '1.mp4') === undefined, 'output removed');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/lvqr_transcode_output_fragments_total\{transcoder="audio-passthrough",rendition="480p"\} 2/);
    expect(text).toMatch(
      new RegExp(`lvqr_transcode_output_bytes_total\\{transcoder="audio-passthrough",rendition="240p"\\} ${2 * 16}`),
    );
  });

  it('replan: a rendition that left the ladder ends before the next keyframe, a new one starts there, one that kept its name with other figures is replaced there; close() ends both', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const spec = (name: string, width: number): RenditionSpec => ({
      name,
      width,
      height: (width / 16) * 9,
      videoBitrateKbps: 500,
      audioBitrateKbps: 64,
    });
    let ladder: RenditionSpec[] = [spec('a', 640), spec('b', 320)];
    /** Fragment indexes each built transcoder received, by rendition and width. */
    const seen = new Map<string, number[]>();
    const stopped: string[] = [];
    const handle = new TranscodeRunner()
      .withLadder(
        ladder,
        (r) =>
          factoryOf(
            'fake',
            () => {
              const id = `${r.name}@${r.width}`;
              seen.set(id, []);
              return {
                onFragment: (f) => void seen.get(id)!.push(f.dts / 3000),
                onStop: () => void stopped.push(id),
              };
            },
            r,
          ),
        () => ladder,
      )
      .install(reg);
    const bc = reg.getOrCreate('live/re', '0.mp4', videoMeta(INIT));
    for (let i = 0; i < 3; i++) bc.emit(frag(i, { gop: 5 }));
    await waitFor(() => seen.get('b@320')?.length === 3, 'the first ladder running');
    // b leaves, c arrives, a keeps its name at another width.
    ladder = [spec('a', 480), spec('c', 160)];
    handle.replan('live/re');
    for (let i = 3; i < 8; i++) bc.emit(frag(i, { gop: 5 }));
    await waitFor(() => seen.get('c@160')?.length === 5 && stopped.length === 2, 'the new ladder running');
    // The old tasks got everything up to the keyframe at 5, the new ones everything from the replan on.
    expect(seen.get('a@640')).toEqual([0, 1, 2, 3, 4]);
    expect(seen.get('b@320')).toEqual([0, 1, 2, 3, 4]);
    expect(seen.get('a@480')).toEqual([3, 4, 5, 6, 7]);
    expect(seen.get('c@160')).toEqual([3, 4, 5, 6, 7]);
    expect(stopped.sort()).toEqual(['a@640', 'b@320']);
    // A replan with nothing changed starts nothing new.
    handle.replan('live/re');
    expect([...seen.keys()].sort()).toEqual(['a@480', 'a@640', 'b@320', 'c@160']);
    await handle.close();
    expect(stopped.sort()).toEqual(['a@480', 'a@640', 'b@320', 'c@160']);
  });
});
