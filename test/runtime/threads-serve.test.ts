/**
 * `serve --transcode-backend threads` as a process on Node (through the launcher: compiled
 * JavaScript, so the codec threads load the compiled worker entry), Bun and Deno (the TypeScript
 * worker entry): the built-in test pattern's ladder encodes in
 * codec threads, `/api/v1/transcode` names the encoder and counts the threads (one per source), and
 * SIGTERM ends the service cleanly.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { getJson, type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';

type TranscodeApi = {
  backend: string;
  codecThreads: number;
  sources: Array<{ broadcast: string; rungs: Array<{ rendition: string; framesOut?: number; lastError?: string }> }>;
};

describe('serve --transcode-backend threads', () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.stop({ signal: 'SIGKILL' });
  });

  it.each<Runtime>(['node', 'bun', 'deno'])(
    '%s: encodes the test pattern ladder in a codec thread and exits 0 on SIGTERM',
    async (runtime) => {
      server = await startServer(['--transcode-backend', 'threads', '--transcode-rendition', '240p'], { runtime });
      const started = server;
      expect(started.stdout()).toMatch(/encoder\s+software/);
      const status = await waitFor(
        async () => {
          const s = await getJson<TranscodeApi>(`${started.url}/api/v1/transcode`);
          const rung = s.sources.find((x) => x.broadcast === 'live/demo')?.rungs.find((r) => r.rendition === '240p');
          return (rung?.framesOut ?? 0) >= 60 ? s : undefined;
        },
        'the test pattern ladder to encode two seconds in a codec thread',
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      expect(status.backend).toBe('software');
      const rung = status.sources.find((x) => x.broadcast === 'live/demo')!.rungs[0]!;
      expect(rung.lastError).toBeUndefined();
      expect(status.codecThreads, 'one codec thread for the one source').toBe(1);
      await waitFor(
        async () => {
          const playlist = await fetch(`${started.url}/hls/live/demo/240p/playlist.m3u8`);
          return playlist.status === 200 && /#EXTINF/.test(await playlist.text());
        },
        "the rung's playlist to list a whole segment",
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      const exit = await started.stop({ signal: 'SIGTERM', timeoutMs: 15_000 });
      expect(exit.code).toBe(0);
      server = undefined;
    },
  );
});
