/**
 * A stream as ffmpeg publishes it when it re-fragments an fMP4 one fragment per frame
 * (`-c copy -movflags +frag_every_frame`): its decode times jump one frame ahead after the first
 * fragment and repeat one before each keyframe of the file it read. The ladder (real x264) keeps
 * the first GOP and counts every frame it does not encode.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Fmp4StreamParser } from '../../src/container/index.ts';
import { fixturePath } from '../../testkit/fixtures.ts';
import { allFragments, createHarness, publish } from '../support/ladder.ts';

const FIXTURE = '720p30-nob-aac.mp4';
const FRAMES = 90;
const RUNGS = ['720p', '480p', '240p'];

/** `FIXTURE` re-fragmented by ffmpeg, one fragment per frame. */
function refragmented(): Uint8Array {
  const dir = mkdtempSync(path.join(tmpdir(), 'lvqr-per-frame-'));
  try {
    const out = path.join(dir, 'per-frame.mp4');
    const command =
      '-nostdin -v error -i IN -c copy -f mp4 -movflags frag_every_frame+empty_moov+default_base_moof OUT';
    const args = command.split(' ').map((a) => (a === 'IN' ? fixturePath(FIXTURE) : a === 'OUT' ? out : a));
    execFileSync('ffmpeg', args);
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Decode time and keyframe flag of every video fragment of `file`, as ingest reads them. */
function videoFragments(file: Uint8Array): Array<{ dts: number; duration: number; keyframe: boolean }> {
  const parser = new Fmp4StreamParser();
  return [...parser.push(file), ...parser.end()].flatMap((e) =>
    e.type === 'fragment' && e.fragment.trackId === '0.mp4'
      ? [{ dts: e.fragment.dts, duration: e.fragment.duration, keyframe: e.fragment.flags.keyframe }]
      : [],
  );
}

describe('a publisher whose per-frame decode times slip', () => {
  it('every rung encodes the first GOP whole; a frame whose decode time repeats is counted as dropped, none is lost unseen', async () => {
    const file = refragmented();
    const fragments = videoFragments(file);
    expect(fragments).toHaveLength(FRAMES);
    // What ffmpeg writes: a one-frame hole after the first fragment, and a repeated decode time
    // before each later keyframe (the frame that ends each GOP of the file it read).
    const slipAt = fragments.findIndex((f, i) => i > 0 && f.dts > fragments[i - 1]!.dts + fragments[i - 1]!.duration);
    expect(slipAt).toBe(1);
    const repeats = fragments.filter((f, i) => i > 0 && f.dts === fragments[i - 1]!.dts).length;
    expect(repeats).toBeGreaterThan(0);

    const harness = await createHarness();
    try {
      const broadcast = 'live/slip';
      await publish(harness.ingest, broadcast, [{ bytes: file, durationS: 3 }]);
      await harness.settled(broadcast);
      const firstGop = fragments.findIndex((f, i) => i > 0 && f.keyframe);
      for (const r of RUNGS) {
        const out = allFragments(harness.outputs.get(`${broadcast}/${r}`)!);
        const dropped = await harness.metric('lvqr_transcode_dropped_fragments_total', { rendition: r });
        // Only the repeated decode time before the second keyframe can be missing from the first GOP.
        expect(out.filter((f) => f.dts < fragments[firstGop]!.dts).length, r).toBeGreaterThanOrEqual(firstGop - 1);
        expect(out.length + dropped, r).toBe(FRAMES);
        expect(dropped, r).toBeLessThanOrEqual(repeats);
      }
    } finally {
      await harness.close();
    }
  }, 60_000);
});
