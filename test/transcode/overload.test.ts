/**
 * The overload policy: the state machine alone on a fake clock, then the real ladder (real x264,
 * real HLS bridge) with every encoder slowed until the policy has shed and paused the lowest rung,
 * and back to full speed until that rung resumes.
 */

import { describe, expect, it } from 'vitest';
import { HlsBridge } from '../../src/hls/index.ts';
import { loopPieces, planPieces } from '../../src/runtime/publish.ts';
import { createRendition } from '../../src/transcode/index.ts';
import { OverloadGovernor, type OverloadTransition } from '../../src/transcode/ladder/overload.ts';
import { readFixture } from '../../testkit/fixtures.ts';
import { concat } from '../../testkit/fmp4.ts';
import { parse as parseManifest } from '../hls/harness.ts';
import { createHarness, publish, wrapCodecs } from '../support/ladder.ts';
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

describe('overload policy on the real ladder', () => {
  it('with every encoder too slow, the lowest rung sheds GOPs, then pauses and leaves the master; it resumes at the source media sequence numbers (the missing media listed as GAP) once there is headroom', async () => {
    let slow = true;
    const harness = await createHarness({
      // Small rungs: the injected slowness, not the machine's load, decides when the ladder is behind.
      renditions: SMALL,
      ladder: {
        maxQueuedFrames: 30,
        overload: { intervalMs: 200, behindLagMs: 400, sustainMs: 1200, resumeAfterMs: 1500 },
      },
      wrap: (real) =>
        wrapCodecs(real, {
          encoder: (_config, make) => {
            const encoder = make();
            return {
              // About 20 frames per second while slow: every rung falls behind a 30 fps source.
              encode: async (frame, options) => {
                if (slow) await new Promise<void>((resolve) => setTimeout(resolve, 50));
                return encoder.encode(frame, options);
              },
              flush: () => encoder.flush(),
              close: () => encoder.close(),
            };
          },
        }),
    });
    const hls = new HlsBridge({
      registry: harness.registry,
      isRungHidden: (source, rendition) => harness.ladder.isRungPaused(source, rendition),
    });
    hls.start();
    const fixture = '720p30-frag-every-frame.mp4';
    const planned = planPieces(readFixture(fixture));
    // Long enough that the rung can resume and catch up even when the whole suite loads the machine.
    const passes = 8;
    const pieces: Uint8Array[] = [];
    for (const piece of loopPieces(planned)) {
      if (piece.timeS >= passes * planned.durationS) break;
      pieces.push(piece.bytes);
    }
    const broadcast = 'live/overload';
    const rungState = (rendition: string): unknown =>
      harness.handle
        .stats()
        .find((t) => t.broadcast === broadcast && t.rendition === rendition && t.endedAtMs === undefined)
        ?.transcoderStats?.['load'];
    const master = async (): Promise<string> => String((await hls.handle(`/hls/${broadcast}/master.m3u8`)).body);
    try {
      const publishing = publish(harness.ingest, broadcast, [
        { bytes: concat(pieces), durationS: passes * planned.durationS },
      ]);
      await waitFor(() => rungState('240p') === 'shedding', '240p to shed GOPs', { timeoutMs: 8000, intervalMs: 10 });
      expect(rungState('720p')).toBe('running');
      expect(rungState('480p')).toBe('running');
      await waitFor(() => rungState('240p') === 'paused', '240p to pause', { timeoutMs: 8000, intervalMs: 10 });
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
      // media sequence number is the same PROGRAM-DATE-TIME and duration in both playlists.
      await waitFor(async () => (await rungList()).includes('#EXT-X-GAP'), 'GAP segments in the 240p playlist', {
        timeoutMs: 8000,
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
      hls.close();
      await harness.close();
    }
  }, 60_000);
});
