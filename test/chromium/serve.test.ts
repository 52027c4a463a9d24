/**
 * `serve --transcode-backend chromium` as a process: the ladder of the built-in test pattern runs in
 * the Chromium it launched, `/api/v1/transcode` names the backend, and the browser (every process
 * of it) is gone after the service stops, whether by SIGTERM or by SIGKILL (then the browser
 * notices its DevTools pipe closing and exits on its own).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { getJson, type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { waitFor } from '../support/wait.ts';

/** Live processes as pid -> [parent pid, command line]; zombies count as gone. */
function processes(): Map<number, [number, string]> {
  const table = new Map<number, [number, string]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      table.set(Number(entry), [Number(fields[1]), cmdline]);
    } catch {
      // Gone meanwhile.
    }
  }
  return table;
}

/** The pids of every process below `root`. */
function descendants(root: number): number[] {
  const table = processes();
  const found: number[] = [];
  const walk = (parent: number): void => {
    for (const [pid, [ppid]] of table) {
      if (ppid !== parent) continue;
      found.push(pid);
      walk(pid);
    }
  };
  walk(root);
  return found;
}

/** The Chromium processes the server started (its browser and everything below it). */
function chromiumOf(server: RunningServer): number[] {
  const table = processes();
  const browsers = [...table].filter(([, [ppid, cmd]]) => ppid === server.pid && cmd.includes('lvqr-chromium-'));
  return browsers.flatMap(([pid]) => [pid, ...descendants(pid)]);
}

type TranscodeApi = {
  backend: string;
  sources: Array<{ broadcast: string; rungs: Array<{ rendition: string; state: string; framesOut?: number }> }>;
};

describe('serve --transcode-backend chromium', () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.stop({ signal: 'SIGKILL' });
  });

  async function startWithLadder(runtime: Runtime): Promise<{ server: RunningServer; browser: number[] }> {
    const started = await startServer(['--transcode-backend', 'chromium', '--transcode-rendition', '240p'], {
      runtime,
      denoFlags: ['--allow-run', '--allow-write'],
    });
    server = started;
    expect(started.stdout()).toMatch(/encoder\s+chromium-software/);
    const status = await waitFor(
      async () => {
        const s = await getJson<TranscodeApi>(`${started.url}/api/v1/transcode`);
        const rung = s.sources.find((x) => x.broadcast === 'live/demo')?.rungs.find((r) => r.rendition === '240p');
        return (rung?.framesOut ?? 0) > 0 ? s : undefined;
      },
      'the test pattern ladder to encode in chromium',
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(status.backend).toBe('chromium-software');
    const browser = chromiumOf(started);
    expect(browser.length, 'a browser process tree under the service').toBeGreaterThan(1);
    return { server: started, browser };
  }

  async function expectGone(pids: number[]): Promise<void> {
    await waitFor(
      () => {
        const live = processes();
        return pids.every((pid) => !live.has(pid));
      },
      'every chromium process to exit',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
  }

  it('SIGTERM (node): the service exits 0, leaves no chromium process, and serves thumbnails meanwhile', async () => {
    const { server: started, browser } = await startWithLadder('node');
    // Thumbnails decode in-process (the page's frames have no pixels on this side).
    const thumbnail = await fetch(`${started.url}/hls/live/demo/thumbnail.jpg?width=160`);
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers.get('content-type')).toBe('image/jpeg');
    expect((await thumbnail.arrayBuffer()).byteLength).toBeGreaterThan(100);
    const status = await started.stop({ signal: 'SIGTERM', timeoutMs: 15_000 });
    expect(status.code).toBe(0);
    await expectGone(browser);
  });

  // Bun and Deno run the same shutdown code; what differs per runtime is the spawn and its pipes.
  it.each<Runtime>(['node', 'bun', 'deno'])(
    'SIGKILL (%s): the browser notices and exits by itself',
    async (runtime) => {
      const { server: started, browser } = await startWithLadder(runtime);
      // Only the service: the browser runs in its own process group.
      process.kill(started.pid, 'SIGKILL');
      await started.exited;
      await expectGone(browser);
    },
  );
});
