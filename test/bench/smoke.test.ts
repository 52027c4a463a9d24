import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runNode } from '../support/run-node.ts';

describe('benchmarks', () => {
  it('every benchmark still runs end to end in its seconds-long smoke mode (npm run bench -- --smoke)', async () => {
    const { output } = await runNode(['bench/run-all.ts', '--smoke']);
    expect(output, output.slice(-4000)).toMatch(/^bench: 8 passed, 0 failed$/m);
    // Each benchmark printed its table with real figures.
    expect(output).toMatch(/\| 4 \| [\d.]+ \(/);
    expect(output).toMatch(/worst rung p99 \*\*\d+ ms\*\*/);
    // Whether one source is sustained depends on what else runs on the box; the step must have run.
    // Its source went over HTTP: 2 s at 30 fps is 60 fragments counted by the service's ingest. Once
    // with the default backend, once with the threads backend; the server's loop delay was measured.
    const capacityRows = output.match(
      /^\| 1 \| (yes|no) \| - \| \d+ \| \d+ \| \d+ \(\d+p\) \| [\d.]+ \| 60 \| \d+ \| [\d.]+ \|$/gm,
    );
    expect(capacityRows, output.slice(-4000)).toHaveLength(2);
    expect(output).toMatch(/This machine sustains \*\*\d+\*\* live 720p30 source\(s\) over HTTP/);
    expect(output).toMatch(/with the threads backend \*\*\d+\*\*/);
    // The ffmpeg reference ran on the same clip.
    expect(output).toMatch(/^\| 1 \| (yes|no) \| [\d.]+ \| \d+ \|$/m);
    expect(output).toMatch(/ffmpeg keeps \*\*\d+\*\* realtime/);
    expect(output).toMatch(/\| ours \| [\d.]+ \(/);
    expect(output).toMatch(/\| ours, threads backend \(--transcode-backend threads\) \| [\d.]+ \(/);
    // The viewer latency of both players, with hls.js in chromium.
    expect(output).toMatch(/^\| hls\.js defaults \| 20 \| -?\d+ \| -?\d+ \| -?\d+ \|/m);
    expect(output).toMatch(/^\| dashboard \| 20 \| -?\d+ \| -?\d+ \| -?\d+ \|/m);
    // The cluster: every rendition followed on the single process and on the edge, CPU per role,
    // and held requests on one and two edges.
    for (const r of ['source', '720p', '480p', '240p']) {
      expect(output).toMatch(
        new RegExp(
          `^\\| ${r} \\| [1-9]\\d* / [1-9]\\d* \\| -?\\d+ / -?\\d+ / -?\\d+ \\| -?\\d+ / -?\\d+ / -?\\d+ \\|`,
          'm',
        ),
      );
    }
    expect(output).toMatch(/^\| transcode \(B\) \| [\d.]+ \|$/m);
    // Wake-ups are less the floor (a lone request's), so noise can take a percentile below 0.
    expect(output).toMatch(/^\| 2 \| 20 \| [1-9]\d* \| -?[\d.]+ \| -?[\d.]+ \| 0 \| (yes|no) \|$/m);
    expect(output).toMatch(
      /answered at p99 <= 20 ms \(of 20 tried\): 1 edge: (\*\*20\*\*|none); 2 edges: (\*\*20\*\*|none)\./,
    );
    // Session churn: five publisher sessions, memory sampled after the last one.
    expect(output).toMatch(/^\| 5 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$/m);
  }, 420_000);

  it('the soak runs a healthy and a reconnecting broadcast with players for seconds and loses no fragment of the healthy one (npm run soak -- --smoke)', async () => {
    const { code, output } = await runNode(['bench/soak.ts', '--smoke']);
    expect(code, output.slice(-6000)).toBe(0);
    // The healthy broadcast's video and audio: every sample sent is in a source segment.
    expect(output).toMatch(/^\| soak\/b0 \| video \| [1-9]\d* \| [1-9]\d* \| 0 \| 0 \|$/m);
    expect(output).toMatch(/^\| soak\/b0 \| audio \| [1-9]\d* \| [1-9]\d* \| 0 \| 0 \|$/m);
    // The other publisher did reconnect; every rung was audited.
    expect(output).toMatch(/^\| soak\/b1 \| flaky \| ([2-9]|\d{2,}) \(/m);
    for (const rung of ['720p', '480p', '240p']) expect(output).toContain(`| soak/b0 ${rung} |`);
    // Where a failure can be looked into: the server's warnings by message, and its whole log.
    expect(output).toMatch(
      /^Server warnings and errors by message: .+\(the whole log: `bench\/out\/smoke\/soak\/server\.log`/m,
    );
    expect(existsSync('bench/out/smoke/soak/server.log')).toBe(true);
    expect(output).toMatch(
      /no crash: \*\*pass\*\*; every variant's segments on its source's timelines: \*\*pass\*\*; every playlist's target duration stays at the source's 2 s: \*\*pass\*\*; 0 lost fragments on the healthy broadcast: \*\*pass\*\*/,
    );
  }, 120_000);
});
