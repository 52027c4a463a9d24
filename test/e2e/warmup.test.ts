/**
 * Start-up is not overload: ffmpeg publishes a 720p30 source one fragment per frame, in real time,
 * over one HTTP POST into the CLI server with the overload policy on (its default). The backlog a
 * pipeline builds while it starts (decoder and encoders created, first frames) is worked off, so
 * every rung encodes every source frame: nothing dropped, no rung shed or paused.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { getJson, getText, type RunningServer, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';
import { metricSum, type Proc, run } from './helpers.ts';

const FIXTURE = '720p30-frag-every-frame.mp4';
/** Two passes of the 3 s clip (90 frames each): 6 s of live input. */
const LOOPS = 1;
const SOURCE_FRAMES = 90 * (LOOPS + 1);
const RUNGS = ['720p', '480p', '240p'] as const;

let server: RunningServer;
let publisher: Proc;

/** The sample of metric `name` for rung `rendition` in Prometheus text (0 when absent). */
function rungMetric(text: string, name: string, rendition: string, extra = ''): number {
  const sample = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && l.includes(`rendition="${rendition}"`) && l.includes(extra));
  return sample === undefined ? 0 : Number(sample.slice(sample.lastIndexOf(' ') + 1));
}

beforeAll(async () => {
  server = await startServer(['--test-pattern', 'off', '--ingest-grace', '0']);
  publisher = run('ffmpeg', [
    '-nostdin',
    '-v',
    'error',
    '-re',
    '-stream_loop',
    String(LOOPS),
    '-i',
    fixturePath(FIXTURE),
    '-c',
    'copy',
    '-f',
    'mp4',
    '-movflags',
    'frag_every_frame+empty_moov+default_base_moof',
    `${server.url}/ingest/live/warmup`,
  ]);
});

afterAll(async () => {
  publisher?.kill();
  await server?.stop();
});

describe('a per-frame publisher into a ladder with the overload policy on', () => {
  it('every rung encodes every source frame from the first one: none dropped, no rung shed or paused', async () => {
    expect(await publisher.exited, publisher.output()).toBe(0);
    // The broadcast ends at the end of the POST (no grace): each rung flushes its encoder and ends.
    const text = await waitFor(
      async () => {
        const status = await getJson<{ sources: Array<{ broadcast: string }> }>(`${server.url}/api/v1/transcode`);
        if (status.sources.some((s) => s.broadcast === 'live/warmup')) return undefined;
        return getText(`${server.url}/metrics`);
      },
      'the ladder of live/warmup to end',
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    const log = () => server.stdout().slice(-4000);
    expect(metricSum(text, 'lvqr_transcode_overload_actions_total') ?? 0, log()).toBe(0);
    for (const rung of RUNGS) {
      const counts = {
        seen: rungMetric(text, 'lvqr_transcode_fragments_total', rung),
        out: rungMetric(text, 'lvqr_transcode_output_fragments_total', rung),
        dropped: rungMetric(text, 'lvqr_transcode_dropped_fragments_total', rung),
      };
      expect(counts, `${rung}\n${log()}`).toEqual({ seen: SOURCE_FRAMES, out: SOURCE_FRAMES, dropped: 0 });
    }
  }, 30_000);
});
