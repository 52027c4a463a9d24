/**
 * Runs the real CLI (`lvqr-transcode serve`) as a child process on loopback with an ephemeral port,
 * on Node, Bun or Deno, for end-to-end tests and the soak benchmark. The child leads its own process
 * group, so `stop()` (and the exit hook) reach everything it started.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The runtimes the CLI runs on. */
/** What `deno run` needs to run the service: files, env, the codec addon (FFI), sockets, a GC hook. */
export const DENO_FLAGS = [
  '--allow-read',
  '--allow-env',
  '--allow-ffi',
  '--allow-net',
  '--allow-sys',
  '--v8-flags=--expose-gc',
] as const;

export type Runtime = 'node' | 'bun' | 'deno';

/** How a stopped or crashed server process ended. */
export type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/** A running server. */
export type RunningServer = {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly runtime: Runtime;
  /** Everything the process printed so far (stdout and stderr, interleaved). */
  stdout(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` (default SIGTERM) to the process group; SIGKILLs it after `timeoutMs`. */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ExitStatus>;
};

/** Options of `startServer`. */
export type StartOptions = {
  runtime?: Runtime;
  /** How long to wait for the `listening on` line (default 45 s). */
  timeoutMs?: number;
  env?: Record<string, string>;
  /** More `deno run` permissions (the chromium backend needs `--allow-run --allow-write`). */
  denoFlags?: readonly string[];
};

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const bin = (name: string) => path.join(ROOT, 'node_modules', '.bin', name);

/** The command line that runs the CLI with `cliArgs` on `runtime`. */
export function cliCommand(
  runtime: Runtime,
  cliArgs: readonly string[],
  denoFlags: readonly string[] = [],
): { command: string; args: string[] } {
  switch (runtime) {
    case 'node':
      // The launcher users run: it compiles the service and runs it without a TypeScript loader.
      return { command: process.execPath, args: [path.join(ROOT, 'bin', 'lvqr-transcode.mjs'), ...cliArgs] };
    case 'bun':
      return { command: bin('bun'), args: ['src/runtime/bun.ts', ...cliArgs] };
    case 'deno':
      return {
        command: bin('deno'),
        args: ['run', ...DENO_FLAGS, ...denoFlags, 'src/runtime/deno.ts', ...cliArgs],
      };
  }
}

const live = new Set<ChildProcess>();
let hooked = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // A crashed or timed-out test file must not leave servers behind.
  process.on('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

const MAX_OUTPUT = 1024 * 1024;

/**
 * Starts `lvqr-transcode serve --port 0 --host 127.0.0.1 <serveArgs>` and resolves once it prints
 * `listening on 127.0.0.1:<port>`. Rejects with the captured output when the process exits first
 * or the line does not come within `timeoutMs`.
 */
export async function startServer(
  serveArgs: readonly string[] = [],
  options: StartOptions = {},
): Promise<RunningServer> {
  const runtime = options.runtime ?? 'node';
  const timeoutMs = options.timeoutMs ?? 45_000;
  const { command, args } = cliCommand(
    runtime,
    ['serve', '--port', '0', '--host', '127.0.0.1', ...serveArgs],
    options.denoFlags,
  );
  hookExit();
  const child = spawn(command, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...options.env },
  });
  live.add(child);
  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (error) => {
      live.delete(child);
      append(Buffer.from(`\n[spawn error] ${error.message}\n`));
      resolve({ code: null, signal: null });
    });
  });
  const describe = () => `${runtime} ${[command, ...args].join(' ')}`;

  const port = await new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match !== null) {
        clearInterval(timer);
        resolve(Number(match[1]));
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(timer);
        killGroup(child, 'SIGKILL');
        reject(new Error(`server did not start within ${timeoutMs} ms (${describe()}); output:\n${output}`));
      }
    }, 20);
    void exited.then((status) => {
      if (/listening on 127\.0\.0\.1:\d+/.test(output)) return;
      clearInterval(timer);
      reject(
        new Error(`server exited before listening (${JSON.stringify(status)}; ${describe()}); output:\n${output}`),
      );
    });
  });

  let stopping: Promise<ExitStatus> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    runtime,
    stdout: () => output,
    exited,
    stop({ signal = 'SIGTERM', timeoutMs: killAfterMs = 10_000 } = {}) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        killGroup(child, signal);
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), killAfterMs);
        const status = await exited;
        clearTimeout(timer);
        // Anything the server left in its group (it should leave nothing).
        killGroup(child, 'SIGKILL');
        return status;
      })();
      return stopping;
    },
  };
}

/** Fetches `url` and parses JSON; throws with the body on a non-2xx status. */
export async function getJson<T = unknown>(url: string): Promise<T> {
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${url} -> ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** Fetches `url` as text; undefined on a non-2xx status. */
export async function getText(url: string, init?: RequestInit): Promise<string | undefined> {
  const res = await fetch(url, init);
  const text = await res.text();
  return res.ok ? text : undefined;
}
