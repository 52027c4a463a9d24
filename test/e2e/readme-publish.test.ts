/**
 * The README's ffmpeg publish command, run as written (its input and host replaced) against the CLI
 * server: the stream plays as LL-HLS with parts of the 200 ms part target, so the playlist keeps its
 * 0.6 s PART-HOLD-BACK. A publisher that sends one fragment per GOP (`frag_keyframe`) makes each
 * part a whole GOP (a fragment is never split), and the playlist raises PART-TARGET to the GOP.
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../../testkit/fixtures.ts';
import { ROOT, type RunningServer, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';
import { type Proc, run } from './helpers.ts';

let server: RunningServer;
let publisher: Proc | undefined;

/** The ffmpeg command of the README's "Publish a stream" section, as argv. */
function readmeCommand(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Publish a stream'));
  const block = /```sh\n(ffmpeg [^`]*?)\n```/.exec(section)?.[1];
  if (block === undefined) throw new Error('no ffmpeg command in the README section "Publish a stream"');
  return block.replace(/\\\n/g, ' ').trim().split(/\s+/);
}

beforeAll(async () => {
  server = await startServer(['--test-pattern', 'off', '--transcode-rendition', 'none']);
}, 60_000);

afterAll(async () => {
  publisher?.kill();
  await server?.stop();
});

describe('README publish command', () => {
  it('publishes a stream whose playlist keeps the 200 ms part target and 0.6 s part hold-back', async () => {
    const argv = readmeCommand().map((a) =>
      a === 'in.mp4' ? fixturePath('720p30-nob-aac.mp4') : a.replace('http://localhost:8080', server.url),
    );
    expect(argv).toContain('-movflags');
    publisher = run(argv[0]!, ['-nostdin', '-v', 'error', ...argv.slice(1)]);
    const playlist = await waitFor(
      async () => {
        const res = await fetch(`${server.url}/hls/live/mystream/playlist.m3u8`);
        const text = res.ok ? await res.text() : '';
        return text.includes('#EXTINF') ? text : undefined;
      },
      'a complete segment of live/mystream',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(playlist).toContain('#EXT-X-PART-INF:PART-TARGET=0.200\n');
    expect(playlist).toContain('PART-HOLD-BACK=0.600,');
  }, 60_000);
});
