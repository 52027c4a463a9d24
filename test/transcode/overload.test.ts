/**
 * The overload policy: the state machine alone on a fake clock; the rung sample rule (start-up and
 * a backlog being worked off are not overload); then the real ladder (real x264, real HLS bridge),
 * once with encoders slow to start, which must not be shed, and once with every encoder slowed
 * until the policy has shed and paused the lowest rung, and back to full speed until that rung
 * resumes.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HlsBridge } from '../../src/hls/index.ts';
import { loopPieces, planPieces } from '../../src/runtime/publish.ts';
import { createRendition } from '../../src/transcode/index.ts';
import { DueSchedule, RungLoad } from '../../src/transcode/ladder/load.ts';
import { OverloadGovernor, type OverloadTransition } from '../../src/transcode/ladder/overload.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { concat } from '../../testkit/fmp4.ts';
import { parse as parseManifest } from '../hls/harness.ts';
import { createHarness, publish, slowEncoders } from '../support/ladder.ts';
import { waitFor } from '../support/wait.ts';

const RUNGS = ['720p', '480p', '240p'];
/** Cheap rungs with the default ladder's names, in its order. */
const SMALL = [
  createRendition('720p', 320, 180, 300, 64),
  createRendition('480p', 256, 144, 200, 64),
  createRendition('240p', 192, 108, 100, 64),
];

/** Drives a governor on a fake clock, one evaluation per second. */
function drive(governor: OverloadGovernor) {
  let now = 0;
  const log: string[] = [];
  return {
    log,
    /** Runs `seconds` evaluations with the rungs named in `behind` behind. */
    run(seconds: number, behind: readonly string[]): OverloadTransition[] {
      const out: OverloadTransition[] = [];
      for (let i = 0; i < seconds; i++) {
        now += 1000;
        for (const t of governor.evaluate(
          now,
          RUNGS.map((name) => ({ name, behind: behind.includes(name) })),
        )) {
          out.push(t);
          log.push(`${now / 1000}s ${t.action} ${t.rung}`);
        }
      }
      return out;
    },
  };
}

describe('overload governor', () => {
  it('sheds in the stated order: GOPs of the lowest-priority rung, then pausing it, then the next rung up', () => {
    const governor = new OverloadGovernor({ sustainMs: 3000, resumeAfterMs: 10_000 });
    const d = drive(governor);
    d.run(2, RUNGS);
    expect(d.log).toEqual([]); // not sustained yet
    d.run(10, RUNGS);
    expect(d.log).toEqual(['3s shed 240p', '6s pause 240p', '9s shed 480p', '12s pause 480p']);
    expect(RUNGS.map((r) => governor.state(r))).toEqual(['running', 'paused', 'paused']);
    // Only 720p works now: it is the whole majority; it goes last.
    d.run(6, ['720p']);
    expect(d.log.slice(4)).toEqual(['15s shed 720p', '18s pause 720p']);
  });

  it('one slow rung among three is not an overload: the policy leaves the ladder alone', () => {
    const governor = new OverloadGovernor();
    const d = drive(governor);
    d.run(60, ['480p']);
    expect(d.log).toEqual([]);
    // Two of three behind is a majority.
    d.run(3, ['480p', '720p']);
    expect(d.log).toEqual(['63s shed 240p']);
  });

  it('recovers one step per calm hold, highest-priority paused rung first, and doubles the hold after a relapse', () => {
    const governor = new OverloadGovernor({ sustainMs: 3000, resumeAfterMs: 10_000, maxResumeAfterMs: 40_000 });
    const d = drive(governor);
    d.run(12, RUNGS); // 240p and 480p paused
    expect(RUNGS.map((r) => governor.state(r))).toEqual(['running', 'paused', 'paused']);
    d.run(10, []);
    expect(d.log.at(-1)).toBe('22s resume 480p');
    expect(governor.state('240p')).toBe('paused');
    // 480p back makes the ladder overloaded again at once: it is shed again, and the hold doubles.
    d.run(6, ['720p', '480p']);
    expect(d.log.slice(-2)).toEqual(['25s shed 480p', '28s pause 480p']);
    expect(governor.holdMs).toBe(20_000);
    d.run(19, []);
    expect(d.log.at(-1)).toBe('28s pause 480p');
    d.run(1, []);
    expect(d.log.at(-1)).toBe('48s resume 480p');
    // A long calm spell resets the hold: 240p comes back after the base hold once calm lasted the maximum.
    d.run(40, []);
    expect(governor.state('240p')).toBe('running');
    expect(governor.holdMs).toBe(10_000);
  });

  it('a shedding rung is restored before any paused rung resumes', () => {
    const governor = new OverloadGovernor({ sustainMs: 1000, resumeAfterMs: 2000 });
    const d = drive(governor);
    d.run(3, RUNGS);
    expect(d.log).toEqual(['1s shed 240p', '2s pause 240p', '3s shed 480p']);
    d.run(2, []);
    expect(d.log.at(-1)).toBe('5s restore 480p');
    d.run(2, []);
    expect(d.log.at(-1)).toBe('7s resume 240p');
  });
});

/**
 * Feeds `load` one second of a 30 fps rung (the second `k` of a fake clock) whose frames reach the
 * encoder with lags going from `fromMs` to `toMs` (plus `jitterMs` on every other frame), then
 * returns whether its sample is behind.
 */
function second(load: RungLoad, k: number, [fromMs, toMs]: readonly [number, number], jitterMs = 30): boolean {
  for (let i = 0; i < 30; i++) {
    load.noteLag(fromMs + ((toMs - fromMs) * i) / 29 + (i % 2) * jitterMs, k * 1000 + (i * 1000) / 30);
  }
  return load.sample('r', 0, 1000).behind;
}

/** A rung whose encoder session has produced output. */
function started(): RungLoad {
  const load = new RungLoad();
  load.noteOutput();
  return load;
}

/** Whether each second of `lags` is behind, for one started rung. */
function behindEachSecond(lags: ReadonlyArray<readonly [number, number]>): boolean[] {
  const load = started();
  return lags.map((lag, k) => second(load, k, lag));
}

/** A start-up: the lag climbs past the 1 s bar for two seconds, then falls at a realtime factor of 1.1. */
const START_UP: ReadonlyArray<readonly [number, number]> = [
  [200, 1100],
  [1100, 1600],
  ...Array.from({ length: 8 }, (_, k) => [1600 - 100 * k, 1500 - 100 * k] as const),
];

describe('rung load sample', () => {
  it('a start-up backlog that is being worked off is not behind; a lag that holds or grows is', () => {
    expect(behindEachSecond(START_UP)).toEqual([true, true, false, false, false, false, false, false, false, false]);
    // A realtime factor of 0.8: 200 ms more every second.
    const slow = Array.from({ length: 5 }, (_, k) => [600 + 200 * k, 800 + 200 * k] as const);
    expect(behindEachSecond(slow)).toEqual([false, true, true, true, true]);
    // Realtime, 1.2 s late: not catching up.
    expect(
      behindEachSecond([
        [1200, 1200],
        [1210, 1190],
        [1190, 1210],
      ]),
    ).toEqual([true, true, true]);
  });

  it('frames of a burst of fragments are due one frame apart, as a realtime pipeline reaches them, at most 1 s past their arrival', () => {
    const frame = 1000 / 30;
    const schedule = new DueSchedule();
    // Nine one-frame fragments that arrive together (one network read) at 10 000 ms.
    const burst = Array.from({ length: 9 }, () => schedule.due(10_000, 0, frame));
    expect(burst.map((ms) => Math.round(ms - 10_000))).toEqual([0, 33, 67, 100, 133, 167, 200, 233, 267]);
    // The next burst arrives late (after 0.5 s): its first frame is due at its arrival.
    expect(schedule.due(10_500, 0, frame)).toBe(10_500);
    // A one-fragment GOP: its frames are due at their offsets inside it.
    schedule.reset();
    expect([0, 1, 2].map((i) => Math.round(schedule.due(20_000, i * frame, frame) - 20_000))).toEqual([0, 33, 67]);
    // A publisher far ahead of realtime (90 frames at once): never due more than 1 s past arrival.
    schedule.reset();
    const ahead = Array.from({ length: 90 }, () => schedule.due(30_000, 0, frame));
    expect(ahead[30]! - 30_000).toBeCloseTo(1000, 6);
    expect(ahead[89]).toBe(31_000);
    // Unknown arrival: unknown due time.
    expect(schedule.due(0, 0, frame)).toBe(0);
  });

  it('a rung fed bursts of per-frame fragments at 0.7x realtime is behind every interval, not only in those that end a burst', () => {
    const frame = 1000 / 30;
    const schedule = new DueSchedule();
    const load = started();
    const verdicts: boolean[] = [];
    let handledMs = 0;
    let sampleAtMs = 1200;
    // Bursts of 9 frames every 300 ms; the encoder takes 50 ms a frame (0.67x realtime).
    for (let burst = 0; burst < 40; burst++) {
      const arrival = 1000 + burst * 300;
      for (let i = 0; i < 9; i++) {
        const due = schedule.due(arrival, 0, frame);
        handledMs = Math.max(handledMs, arrival) + 50;
        // One sample every 300 ms (the ladder asks for 200, a busy event loop takes longer).
        if (handledMs > sampleAtMs) {
          verdicts.push(load.sample('r', 0, 400).behind);
          sampleAtMs += 300;
        }
        load.noteLag(handledMs - due, handledMs);
      }
    }
    // The lag grows past 400 ms within 2 s; from then on every sample is behind.
    expect(verdicts.slice(4)).toEqual(verdicts.slice(4).map(() => true));
  });

  it('until its encoder session produces output a rung is behind only when its queue overflows', () => {
    const load = new RungLoad();
    // Waiting for the frame rate, creating the encoder, its first frames: 1.5 s of waiting.
    expect(load.sample('r', 1500, 1000).behind).toBe(false);
    expect(second(load, 1, [1500, 1700])).toBe(false);
    load.noteOverflow();
    expect(load.sample('r', 0, 1000).behind).toBe(true);
    load.noteOutput();
    expect(second(load, 3, [1700, 1800])).toBe(true);
    // A rebuilt encoder starts again.
    load.noteSessionStart();
    expect(second(load, 4, [1800, 1900])).toBe(false);
  });

  it('a queue overflow is behind even while catching up; an encoder that takes nothing is behind by its oldest frame', () => {
    const load = started();
    load.noteOverflow();
    expect(second(load, 0, [1300, 1200])).toBe(true);
    expect(second(load, 1, [1200, 1100])).toBe(false);
    // Nothing reached the encoder this interval and its oldest frame has waited 1.5 s.
    expect(load.sample('r', 1500, 1000).behind).toBe(true);
  });

  it('a shedding rung drops every other whole GOP, and one that runs again mid-GOP drops the rest of a GOP it was dropping', () => {
    // One 4-frame GOP per entry: the policy's verdict for each frame (the first is a forced keyframe).
    const gop = (load: RungLoad) => [true, false, false, false].map((key) => load.drops(key));
    const load = new RungLoad();
    expect(gop(load)).toEqual([false, false, false, false]);
    load.set('shedding');
    expect(gop(load)).toEqual([true, true, true, true]);
    expect(gop(load)).toEqual([false, false, false, false]);
    // Restored two frames into a dropped GOP: its tail, which lacks its keyframe, is dropped too.
    expect([load.drops(true), load.drops(false)]).toEqual([true, true]);
    load.set('running');
    expect([load.drops(false), load.drops(false)]).toEqual([true, true]);
    expect(gop(load)).toEqual([false, false, false, false]);
    // Restored inside a GOP it keeps: nothing more is dropped.
    load.set('shedding');
    expect(gop(load)).toEqual([true, true, true, true]);
    expect(load.drops(true)).toBe(false);
    load.set('running');
    expect([load.drops(false), load.drops(false)]).toEqual([false, false]);
    // Resumed after a pause mid-GOP: the rung starts again at the next keyframe.
    load.set('paused');
    expect(gop(load)).toEqual([true, true, true, true]);
    expect(load.drops(true)).toBe(true);
    load.set('running');
    expect(load.drops(false)).toBe(true);
    expect(gop(load)).toEqual([false, false, false, false]);
  });

  it('three rungs working off a start-up backlog are never shed; three falling further behind are', () => {
    const shed = (lags: ReadonlyArray<readonly [number, number]>): string[] => {
      const governor = new OverloadGovernor();
      const loads = RUNGS.map(() => started());
      const log: string[] = [];
      lags.forEach((lag, k) => {
        const samples = RUNGS.map((name, i) => ({ name, behind: second(loads[i]!, k, lag) }));
        for (const t of governor.evaluate((k + 1) * 1000, samples)) log.push(`${k + 1}s ${t.action} ${t.rung}`);
      });
      return log;
    };
    expect(shed(START_UP)).toEqual([]);
    // The lag keeps growing (a realtime factor of 0.7): shed, then paused, a sustain time apart.
    expect(shed(Array.from({ length: 8 }, (_, k) => [200 + 300 * k, 500 + 300 * k] as const))).toEqual([
      '5s shed 240p',
      '8s pause 240p',
    ]);
  });
});

/** A fragmented MP4 played `passes` times as one live stream (see `loopPieces`). */
function looped(file: Uint8Array, passes: number): { bytes: Uint8Array; durationS: number } {
  const planned = planPieces(file);
  const pieces: Uint8Array[] = [];
  for (const piece of loopPieces(planned)) {
    if (piece.timeS >= passes * planned.durationS) break;
    pieces.push(piece.bytes);
  }
  return { bytes: concat(pieces), durationS: passes * planned.durationS };
}

/**
 * 3 s of 360p30 H.264 (no B-frames, 1 s GOP) that ffmpeg encodes and fragments one frame per
 * fragment, as a low-latency publisher sends.
 */
function perFrame360p(): Uint8Array {
  const dir = mkdtempSync(path.join(tmpdir(), 'lvqr-startup-'));
  try {
    const out = path.join(dir, 'per-frame.mp4');
    const video = [
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-threads',
      '1',
      '-bf',
      '0',
      '-g',
      '30',
      '-pix_fmt',
      'yuv420p',
    ];
    const lavfi = ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-t', '3'];
    const movflags = ['-movflags', 'frag_every_frame+empty_moov+default_base_moof'];
    execFileSync('ffmpeg', ['-nostdin', '-v', 'error', ...lavfi, ...video, '-f', 'mp4', ...movflags, out]);
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('overload policy on the real ladder', () => {
  it('start-up is not overload: encoder sessions whose first frame takes 4 s leave a backlog that the ladder works off, and no rung is shed or drops a frame', async () => {
    const harness = await createHarness({
      renditions: SMALL,
      // The default policy: 1 s bar, 3 s sustain, sampled every second.
      ladder: { overload: {} },
      // A slow start (4 s for the first frame of the session), then realtime with some headroom
      // (10 ms a frame): the backlog takes seconds to work off.
      wrap: (real) => slowEncoders(real, (frame) => (frame === 0 ? 4000 : 10)),
    });
    const passes = 3;
    const broadcast = 'live/startup';
    try {
      await publish(harness.ingest, broadcast, [looped(perFrame360p(), passes)]);
      await harness.settled(broadcast);
      expect(await harness.metric('lvqr_transcode_overload_actions_total')).toBe(0);
      for (const r of RUNGS) {
        const frames = harness.outputs.get(`${broadcast}/${r}`)!.sessions.flatMap((s) => s.fragments).length;
        expect(
          { frames, dropped: await harness.metric('lvqr_transcode_dropped_fragments_total', { rendition: r }) },
          r,
        ).toEqual({
          frames: 90 * passes,
          dropped: 0,
        });
        // The start-up backlog stayed within the queue's bound (held back by its soft limit).
        expect(harness.maxQueued.get(`${broadcast}/${r}`) ?? 0, r).toBeLessThan(60);
      }
      console.log(
        `[overload] start-up backlog: queue peaks ${RUNGS.map((r) => `${r} ${harness.maxQueued.get(`${broadcast}/${r}`)}`).join(', ')} of 60`,
      );
    } finally {
      await harness.close();
    }
  }, 60_000);

  it('with every encoder too slow, the lowest rung sheds GOPs, then pauses and leaves the master; it resumes at the source media sequence numbers (the missing media listed as GAP) once there is headroom', async () => {
    let slow = true;
    const harness = await createHarness({
      // Small rungs: the injected slowness, not the machine's load, decides when the ladder is behind.
      renditions: SMALL,
      ladder: {
        maxQueuedFrames: 30,
        overload: { intervalMs: 200, behindLagMs: 400, sustainMs: 1200, resumeAfterMs: 1500 },
      },
      // About 20 frames per second while slow: every rung falls behind a 30 fps source.
      wrap: (real) => slowEncoders(real, () => (slow ? 50 : 0)),
    });
    const hls = new HlsBridge({
      registry: harness.registry,
      isRungHidden: (source, rendition) => harness.ladder.isRungPaused(source, rendition),
    });
    hls.start();
    // Up to 90 s of source, cut short once the test saw all it needs: a loaded machine slows every
    // step (the shed, the pause, the resume, the segment after the hole), and a source that ends
    // before them leaves the test waiting in vain (it did with 24 s and with 36 s of source).
    const passes = 30;
    const loopedLong = looped(readFixture('720p30-frag-every-frame.mp4'), passes);
    const enough = new AbortController();
    const broadcast = 'live/overload';
    const rungState = (rendition: string): unknown =>
      harness.handle
        .stats()
        .find((t) => t.broadcast === broadcast && t.rendition === rendition && t.endedAtMs === undefined)
        ?.transcoderStats?.['load'];
    const master = async (): Promise<string> => String((await hls.handle(`/hls/${broadcast}/master.m3u8`)).body);
    try {
      // 0.3 s of media per chunk, as with the 120 chunks of a 36 s source.
      const publishing = publish(harness.ingest, broadcast, [loopedLong], {
        chunks: passes * 10,
        until: enough.signal,
      });
      await waitFor(() => rungState('240p') === 'shedding', '240p to shed GOPs', { timeoutMs: 20_000, intervalMs: 10 });
      expect(rungState('720p')).toBe('running');
      expect(rungState('480p')).toBe('running');
      await waitFor(() => rungState('240p') === 'paused', '240p to pause', { timeoutMs: 20_000, intervalMs: 10 });
      slow = false;
      expect(harness.ladder.isRungPaused(broadcast, '240p')).toBe(true);
      expect(await harness.metric('lvqr_transcode_paused_rungs', { rendition: '240p' })).toBe(1);
      expect(await master()).not.toContain('240p/playlist.m3u8');
      // A blocking reload for the paused rung's next segment is answered (GAP segments or its own media).
      const rungList = async (): Promise<string> =>
        String((await hls.handle(`/hls/${broadcast}/240p/playlist.m3u8`)).body);
      const lastMsn = (raw: string): number => {
        const m = parseManifest(raw);
        return (m.mediaSequence ?? 0) + m.segments.length - 1;
      };
      const blocked = hls.handle(
        `/hls/${broadcast}/240p/playlist.m3u8`,
        new URLSearchParams({ _HLS_msn: String(lastMsn(await rungList()) + 1) }),
      );

      await waitFor(() => rungState('240p') === 'running', '240p to resume', { timeoutMs: 20_000, intervalMs: 10 });
      await waitFor(async () => (await master()).includes('240p/playlist.m3u8'), '240p back in the master', {
        timeoutMs: 8000,
        intervalMs: 20,
      });
      expect((await blocked).status).toBe(200);
      // The media the rung skipped or missed is listed as GAP on the source's boundaries: the same
      // media sequence number is the same PROGRAM-DATE-TIME and duration in both playlists. A hole
      // that spans one of the source's whole segments is an EXT-X-GAP segment; a shorter one (the
      // paused spell can be shorter than a segment) GAP=YES parts of the segment it falls in, listed
      // once the rung's first fragment after it arrives: as long as resuming may take under load.
      await waitFor(async () => /#EXT-X-GAP|GAP=YES/.test(await rungList()), 'GAP media in the 240p playlist', {
        timeoutMs: 20_000,
        intervalMs: 20,
      });
      const bySeq = (m: ReturnType<typeof parseManifest>) =>
        new Map(m.segments.map((x, i) => [(m.mediaSequence ?? 0) + i, [x.dateTimeString, x.duration]]));
      const compared = async () => {
        const src = bySeq(parseManifest(String((await hls.handle(`/hls/${broadcast}/playlist.m3u8`)).body)));
        const common = [...bySeq(parseManifest(await rungList()))].filter(([msn]) => src.has(msn));
        return { src, common };
      };
      // Both playlists list at least three of the same media sequence numbers once the rung caught up.
      const { src, common } = await waitFor(
        async () => {
          const c = await compared();
          return c.common.length >= 3 ? c : undefined;
        },
        'three media sequence numbers in both the source and the 240p playlist',
        { timeoutMs: 8000, intervalMs: 50 },
      );
      for (const [msn, seg] of common) expect(seg, `segment ${msn}`).toEqual(src.get(msn));
      enough.abort();
      await publishing;
      await harness.settled(broadcast);

      // At least one shed and one pause (a busy machine can relapse after the resume and shed again).
      expect(
        await harness.metric('lvqr_transcode_overload_actions_total', { rendition: '240p', action: 'shed' }),
      ).toBeGreaterThanOrEqual(1);
      expect(
        await harness.metric('lvqr_transcode_overload_actions_total', { rendition: '240p', action: 'pause' }),
      ).toBeGreaterThanOrEqual(1);
      expect(
        await harness.metric('lvqr_transcode_overload_actions_total', { rendition: '240p', action: 'resume' }),
      ).toBeGreaterThanOrEqual(1);
      expect(await harness.metric('lvqr_transcode_overload_actions_total', { rendition: '720p' })).toBe(0);
      expect(await harness.metric('lvqr_transcode_paused_rungs')).toBe(0);
      // Queues stayed within their bound the whole time.
      for (const r of RUNGS) expect(harness.maxQueued.get(`${broadcast}/${r}`) ?? 0).toBeLessThanOrEqual(30);
      // 240p lost more than the others (shed GOPs and the paused spell), and resumed at a keyframe.
      const dropped = (r: string) => harness.metric('lvqr_transcode_dropped_fragments_total', { rendition: r });
      expect(await dropped('240p')).toBeGreaterThan(0);
      const output = harness.outputs.get(`${broadcast}/240p`)!;
      const fragments = output.sessions.flatMap((s) => s.fragments);
      const gaps = fragments.filter((f, i) => i > 0 && f.dts - fragments[i - 1]!.dts > fragments[i - 1]!.duration);
      expect(gaps.length).toBeGreaterThan(0);
      for (const f of gaps) expect(f.flags.keyframe).toBe(true);
    } finally {
      enough.abort();
      hls.close();
      await harness.close();
    }
  }, 150_000);
});
