/**
 * `lvqr-transcode bench`: the capacity self-test starts the real service on a loopback port and
 * publishes its synthetic source to it over HTTP, one fragment per frame, as a publisher would.
 */

import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/server/config.ts';
import { runNode } from '../support/run-node.ts';

describe('lvqr-transcode bench', () => {
  it('--source 1080p publishes a 1080p30 source over HTTP, one fragment per frame, and reports the step from the service', async () => {
    const { code, output } = await runNode([
      'src/runtime/node.ts',
      'bench',
      ...['--source', '1080p', '--max-sources', '1', '--seconds', '2'],
    ]);
    expect(code, output).toBe(0);
    expect(output).toContain('source: 1920x1080 30 fps, 7 Mb/s, one HTTP POST per source, one fragment per frame');
    // sources, sustained (and without the first GOP: not judged in 2 s), dropped, overload actions,
    // worst rung's p99, frames out / expected, fragments ingested, CPU %, the server's loop delay p99.
    const row = /^ +1 +(yes|no) +- +(\d+) +(\d+) +(\d+) \((720p|480p|240p)\) +([\d.]+) +(\d+) +(\d+) +([\d.]+)$/m.exec(
      output,
    );
    expect(row, output).not.toBeNull();
    // Two seconds at 30 fps: the service's ingest counted 60 fragments, and the rungs put frames out.
    expect(Number(row?.[7])).toBe(60);
    expect(Number(row?.[6])).toBeGreaterThan(0);
    expect(Number(row?.[9])).toBeGreaterThan(0);
    expect(output).toMatch(/This machine sustains [01] live 1080p30 source\(s\) through the 720p,480p,240p ladder/);
  }, 120_000);

  it('--source takes 720p or 1080p (720p by default)', () => {
    expect(parseCommand(['bench'], {}, () => '')).toMatchObject({ kind: 'bench', source: '720p', maxSources: 8 });
    expect(parseCommand(['bench', '--source', '1080p'], {}, () => '')).toMatchObject({ source: '1080p' });
    expect(() => parseCommand(['bench', '--source', '4k'], {}, () => '')).toThrow(
      '--source must be 720p or 1080p, got "4k"',
    );
  });
});
