/**
 * A rung that misses media (shed GOPs, a pause) keeps its source's media sequence numbers: the
 * missing media is listed as EXT-X-GAP segments and GAP=YES parts on the source's boundaries.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { HlsBridge } from '../../src/hls/index.ts';
import {
  appended,
  describeFake,
  FakeTrack,
  get,
  lines,
  type ParsedManifest,
  playlist,
  text,
  timelineOf,
  videoTrack,
} from './harness.ts';

const bridges: HlsBridge[] = [];
afterEach(() => {
  for (const b of bridges.splice(0)) b.close();
});

/** A 1080p source and a 480p rung with the same timestamps; keyframes every second, 2 s segments. */
/** The rungs the ladder says are paused (what `isRungHidden` reports). */
const pausedRungs = new Set<string>();

function stage() {
  const registry = new FragmentBroadcasterRegistry();
  const bridge = new HlsBridge({
    registry,
    describeInit: describeFake,
    isRungHidden: (source, rendition) => pausedRungs.has(`${source}/${rendition}`),
  });
  bridge.start();
  bridges.push(bridge);
  const source = new FakeTrack(registry, 'live/demo', 'video');
  const rung = new FakeTrack(registry, 'live/demo/480p', 'video', {
    origin: { kind: 'rendition', source: 'live/demo', rendition: '480p', transcoder: 'test' },
    init: videoTrack(854, 480),
    bytes: 60,
  });
  let rungFragments = 0;
  return {
    bridge,
    source,
    rung,
    /** Source frames up to frame `end`, then waits until the bridge has them. */
    async sourceTo(end: number): Promise<void> {
      source.frames(end - source.frame, 30);
      await appended(bridge, 'live/demo', 'video', source.frame);
    },
    /** Rung frames from `from` (skipping what lies before) up to frame `end`, then waits until the bridge took them (kept or dropped). */
    async rungTo(from: number, end: number): Promise<void> {
      rung.frame = from;
      rungFragments += end - from;
      rung.frames(end - from, 30);
      await appended(bridge, 'live/demo/480p', 'video', rungFragments, { withDropped: true });
    },
  };
}

type Segment = ParsedManifest['segments'][number];

/** MSN -> [duration, PROGRAM-DATE-TIME] of each listed segment. */
function byMsn(m: ParsedManifest): Map<number, [number, string | undefined]> {
  return new Map(m.segments.map((s: Segment, i) => [(m.mediaSequence ?? 0) + i, [s.duration, s.dateTimeString]]));
}

/** URIs of the segments tagged EXT-X-GAP. */
function gapSegments(raw: string): string[] {
  const out: string[] = [];
  const all = raw.split('\n');
  all.forEach((line, i) => {
    if (line === '#EXT-X-GAP') out.push(all[i + 2]!);
  });
  return out;
}

describe('HLS rung GAP segments', () => {
  it('a rung that skips media keeps the source MSNs: GAP parts and an EXT-X-GAP segment fill the skipped time', async () => {
    const s = stage();
    await s.sourceTo(300); // 10 s: segments 0-3 complete, 4 open
    await s.rungTo(0, 90); // 0-3 s
    await s.rungTo(210, 300); // skips 3-7 s, resumes at the 7 s keyframe
    const src = await playlist(s.bridge, '/hls/live/demo/playlist.m3u8');
    const out = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(out.raw).not.toContain('#EXT-X-DISCONTINUITY');
    const srcSegs = byMsn(src.manifest);
    const outSegs = byMsn(out.manifest);
    expect([...outSegs.keys()]).toEqual([0, 1, 2, 3]);
    for (const msn of [0, 1, 2, 3]) expect(outSegs.get(msn)).toEqual(srcSegs.get(msn));
    expect(gapSegments(out.raw)).toEqual(['seg-2.m4s']);
    // Segment 3 starts with 6-7 s missing: five GAP=YES parts, then the rung's own parts.
    const parts3 = lines(out.raw, '#EXT-X-PART:').filter((l) => l.includes('part-3-'));
    expect(parts3.slice(0, 6)).toEqual([
      ...[0, 1, 2, 3, 4].map((i) => `#EXT-X-PART:DURATION=0.200,URI="part-3-${i}.m4s",GAP=YES`),
      '#EXT-X-PART:DURATION=0.200,URI="part-3-5.m4s",INDEPENDENT=YES',
    ]);
    expect(out.manifest.segments[3]!.parts?.[0]).toMatchObject({ gap: true });
    // GAP media is never served.
    for (const path of ['seg-2.m4s', 'part-3-0.m4s']) {
      const res = await get(s.bridge, `/hls/live/demo/480p/${path}`);
      expect(res.status, path).toBe(404);
      expect(text(res)).toContain('hls.not_found');
    }
    expect((await get(s.bridge, '/hls/live/demo/480p/seg-1.m4s')).status).toBe(200);
  });

  it('a rung that encodes part of a GOP, then skips to a later keyframe, keeps the source MSNs and target duration', async () => {
    const s = stage();
    await s.sourceTo(600); // 20 s: segments 0-8 complete, 9 open
    await s.rungTo(0, 130); // 0-4.33 s: the GOP at 4 s only in part
    await s.rungTo(240, 600); // skips to the 8 s keyframe
    const src = await playlist(s.bridge, '/hls/live/demo/playlist.m3u8');
    const out = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    const srcSegs = byMsn(src.manifest);
    const outSegs = byMsn(out.manifest);
    expect(out.manifest.targetDuration, out.raw).toBe(2);
    for (const [msn, seg] of outSegs) expect(seg, `${msn}\n${out.raw}`).toEqual(srcSegs.get(msn));
    expect([...outSegs.keys()].at(-1)).toBe([...srcSegs.keys()].at(-1));
  });

  it('a paused rung follows its source with GAP segments, answers blocking reloads, and resumes at the source MSN', async () => {
    const s = stage();
    await s.sourceTo(90);
    await s.rungTo(0, 90); // both at 3 s
    pausedRungs.add('live/demo/480p');
    await s.sourceTo(570); // the rung is paused; the source goes on to 19 s (segment 8 ends at 18 s)
    const paused = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(paused.raw).not.toContain('#EXT-X-ENDLIST');
    expect(paused.raw).not.toContain('#EXT-X-DISCONTINUITY');
    const src = byMsn((await playlist(s.bridge, '/hls/live/demo/playlist.m3u8')).manifest);
    const out = byMsn(paused.manifest);
    expect(Math.max(...out.keys())).toBe(8);
    for (const [msn, seg] of out) expect(seg, `segment ${msn}`).toEqual(src.get(msn));
    expect(gapSegments(paused.raw)).toEqual([2, 3, 4, 5, 6, 7, 8].filter((m) => out.has(m)).map((m) => `seg-${m}.m4s`));

    // A blocking reload for the next MSN is answered once the source completes that segment.
    const held = get(s.bridge, '/hls/live/demo/480p/playlist.m3u8', '_HLS_msn=9');
    await s.sourceTo(690); // 23 s: segment 9 (18-20 s) and 10 (20-22 s) complete
    const answer = await held;
    expect(answer.status).toBe(200);
    expect(gapSegments(text(answer))).toContain('seg-9.m4s');

    // The rung comes back at its 23 s keyframe, inside the source's segment 11 (22-24 s).
    pausedRungs.delete('live/demo/480p');
    await s.sourceTo(720);
    await s.rungTo(690, 720);
    await s.sourceTo(780);
    await s.rungTo(720, 780);
    const back = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    const src2 = byMsn((await playlist(s.bridge, '/hls/live/demo/playlist.m3u8')).manifest);
    const out2 = byMsn(back.manifest);
    for (const msn of [11, 12]) expect(out2.get(msn), `segment ${msn}`).toEqual(src2.get(msn));
    expect(gapSegments(back.raw)).not.toContain('seg-11.m4s');
    expect(lines(back.raw, '#EXT-X-PART:').filter((l) => l.includes('part-11-') && l.endsWith('GAP=YES'))).toHaveLength(
      5,
    );
    expect(back.raw).not.toContain('#EXT-X-DISCONTINUITY');
    expect((await get(s.bridge, '/hls/live/demo/480p/seg-11.m4s')).status).toBe(200);
  });

  it('media that stops inside a part: that part is listed as GAP, never as a short part of media before the GAP (a player waiting at the edge meets the GAP first)', async () => {
    const s = stage();
    await s.sourceTo(150); // 5 s: segments 0 (0-2 s) and 1 (2-4 s) complete
    await s.rungTo(0, 92); // 0-3.067 s: parts of segment 1 up to 3.0 s listed, two frames in progress
    const before = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(lines(before.raw, '#EXT-X-PART:').filter((l) => l.includes('part-1-'))).toHaveLength(5);
    await s.rungTo(120, 150); // resumes at the 4 s keyframe
    const out = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    const parts1 = lines(out.raw, '#EXT-X-PART:').filter((l) => l.includes('part-1-'));
    // Five parts of media (2.0-3.0 s), then GAP for 3.0-4.0 s: the two frames in progress went into it.
    expect(parts1.slice(0, 5).every((l) => !l.includes('GAP'))).toBe(true);
    expect(parts1.slice(5)).toEqual(
      [5, 6, 7, 8, 9].map((i) => `#EXT-X-PART:DURATION=0.200,URI="part-1-${i}.m4s",GAP=YES`),
    );
    // Segment 1 keeps the source's duration and date; segment 2 starts with the rung's own media.
    const src = byMsn((await playlist(s.bridge, '/hls/live/demo/playlist.m3u8')).manifest);
    expect(byMsn(out.manifest).get(1)).toEqual(src.get(1));
    expect(lines(out.raw, '#EXT-X-PART:').find((l) => l.includes('part-2-0'))).toContain('INDEPENDENT=YES');
    expect(out.raw).not.toContain('#EXT-X-DISCONTINUITY');
  });

  it('a paused rung whose open segment held only a part in progress lists that segment as EXT-X-GAP', async () => {
    const s = stage();
    await s.sourceTo(90);
    await s.rungTo(0, 62); // segment 1 (from 2 s) holds two frames, not yet a part
    pausedRungs.add('live/demo/480p');
    try {
      await s.sourceTo(570);
      const paused = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
      expect(gapSegments(paused.raw)).toContain('seg-1.m4s');
      expect((await get(s.bridge, '/hls/live/demo/480p/seg-1.m4s')).status).toBe(404);
      expect((await get(s.bridge, '/hls/live/demo/480p/seg-0.m4s')).status).toBe(200);
    } finally {
      pausedRungs.delete('live/demo/480p');
    }
  });

  it('a rung that is only slow (not paused; its fragments late, but all of them) gets no GAP, however far behind', async () => {
    const s = stage();
    await s.sourceTo(600); // the source is 20 s ahead of the rung at first...
    await s.rungTo(0, 150); // ...then 15 s: far behind, but the ladder did not pause it
    await s.sourceTo(630);
    await s.rungTo(150, 630);
    const out = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(out.raw).not.toContain('GAP');
    expect(out.raw).not.toContain('#EXT-X-DISCONTINUITY');
  });

  it('a rung paused just before its source restarts with its clock at 0, twice, follows both new timelines with GAP segments and resumes on the source’s', async () => {
    const s = stage();
    await s.sourceTo(600);
    await s.rungTo(0, 600); // both at 20 s
    pausedRungs.add('live/demo/480p');
    try {
      await s.sourceTo(630); // 21 s: the rung is only a second behind, nothing to list as GAP yet
      // The publisher comes back with its clock at 0 (media times far below the rung's last), twice.
      s.source.restart(videoTrack(1920, 1080), 0);
      await s.sourceTo(930); // 10 s on the second timeline
      s.source.restart(videoTrack(1920, 1080), 0);
      await s.sourceTo(1230); // 10 s on the third
      const src = (await playlist(s.bridge, '/hls/live/demo/playlist.m3u8')).manifest;
      const paused = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
      // The paused rung lists every complete source segment (as GAP), on the source's timelines.
      const complete = timelineOf(src).slice(0, -1);
      expect(timelineOf(paused.manifest).slice(0, complete.length), paused.raw).toEqual(complete);
    } finally {
      pausedRungs.delete('live/demo/480p');
    }
    // The rung's new encoder session: the same init, timestamps from 0 as the source's.
    s.rung.frame = 930;
    s.rung.restart(videoTrack(854, 480), 0);
    await s.rungTo(930, 1230);
    await s.sourceTo(1290);
    await s.rungTo(1230, 1290);
    const src = await playlist(s.bridge, '/hls/live/demo/playlist.m3u8');
    const { raw, manifest: rung } = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(timelineOf(rung), raw).toEqual(timelineOf(src.manifest));
    expect(rung.targetDuration, raw).toBe(2);
    const srcSegs = byMsn(src.manifest);
    // The rung's own media of 0-8 s on the third timeline was already listed as GAP: dropped, not listed again.
    for (const [msn, seg] of byMsn(rung)) expect(seg, `${msn}\n${raw}`).toEqual(srcSegs.get(msn));
    expect(gapSegments(raw)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19].map((m) => `seg-${m}.m4s`));
  });

  it('a rung that lagged when its source restarted lists the source’s last old segment as GAP and starts its new timeline at the source’s number', async () => {
    const s = stage();
    // Source: segments 0-2 of 2 s, then 1 s of segment 3 when its publisher restarts (frame 210).
    await s.sourceTo(210);
    // The rung lagged: its output stops at frame 130, inside segment 2.
    await s.rungTo(0, 130);
    s.source.restart(videoTrack(1920, 1080, 'avc1.640029'), 0);
    await s.sourceTo(330);
    // The rung's new encoder session: a new init, timestamps from 0 as the source's.
    s.rung.frame = 210;
    s.rung.restart(videoTrack(854, 480, 'avc1.4d401f'), 0);
    await s.rungTo(210, 330);
    const src = (await playlist(s.bridge, '/hls/live/demo/playlist.m3u8')).manifest;
    const { raw, manifest: rung } = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    const restartMsn = (m: ParsedManifest) => (m.mediaSequence ?? 0) + m.segments.findIndex((x) => x.discontinuity);
    expect(restartMsn(src)).toBe(4);
    expect(restartMsn(rung), raw).toBe(4);
    // Segment 3 (the source's last of the old session) is a GAP segment of the rung, with its duration.
    expect(gapSegments(raw)).toEqual(['seg-3.m4s']);
    expect(byMsn(rung).get(3)).toEqual(byMsn(src).get(3));
  });

  it('a rung whose new timeline starts a GOP after its source’s lists the source’s first new segment as GAP: same numbers, same timelines', async () => {
    const s = stage();
    // Source: segments 0-2 of 2 s, then its publisher restarts at frame 180 (timestamps from 0).
    await s.sourceTo(180);
    await s.rungTo(0, 180);
    s.source.restart(videoTrack(1920, 1080, 'avc1.640029'), 0);
    await s.sourceTo(330); // new timeline: segments 3 (0-2 s) and 4 (2-4 s), 5 open
    // The rung's new session starts at the 2 s keyframe (it dropped the first GOP).
    s.rung.frame = 180;
    s.rung.restart(videoTrack(854, 480, 'avc1.4d401f'), 0);
    await s.rungTo(240, 330);
    const src = await playlist(s.bridge, '/hls/live/demo/playlist.m3u8');
    const { raw, manifest: rung } = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(timelineOf(rung), raw).toEqual(timelineOf(src.manifest));
    expect(gapSegments(raw)).toEqual(['seg-3.m4s']);
    for (const msn of [3, 4]) expect(byMsn(rung).get(msn), raw).toEqual(byMsn(src.manifest).get(msn));
  });

  it('a rung whose last old media comes after its source restarted still cuts it on the source’s old boundaries: no GAP, no lost segment', async () => {
    const s = stage();
    // Source: segments 0-2 of 2 s, then 1 s of segment 3 (a keyframe at frame 180) when it restarts.
    await s.sourceTo(210);
    await s.rungTo(0, 150);
    s.source.restart(videoTrack(1920, 1080, 'avc1.640029'), 0);
    await s.sourceTo(270);
    // The rung's encoders were behind: its frames 150-209 (segment 3's keyframe among them) come
    // only now, after the source's new timeline began; then its new session.
    await s.rungTo(150, 210);
    s.rung.restart(videoTrack(854, 480, 'avc1.4d401f'), 0);
    await s.rungTo(210, 330);
    await s.sourceTo(330);
    const src = (await playlist(s.bridge, '/hls/live/demo/playlist.m3u8')).manifest;
    const { raw, manifest: rung } = await playlist(s.bridge, '/hls/live/demo/480p/playlist.m3u8');
    expect(gapSegments(raw)).toEqual([]);
    // Segments 2 and 3 are the source's, in number, duration and date.
    expect(byMsn(rung).get(2)).toEqual(byMsn(src).get(2));
    expect(byMsn(rung).get(3)).toEqual(byMsn(src).get(3));
  });
});
