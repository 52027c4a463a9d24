/**
 * Runs the Chromium backend's browser: a loopback HTTP + WebSocket server (127.0.0.1, ephemeral
 * port, a random token) that serves the codec page and takes its connection, and one long-lived
 * headless Chromium that loads it. Node, Bun and Deno run it alike (`node:` modules and `ws`).
 *
 * Crash safety: a page whose socket closes, a page that stops answering (the codecs say so), or a
 * browser that exits detaches the codecs (their decoders and encoders fail; the ladder rebuilds
 * them at the next keyframe) and the browser is killed and relaunched after a back-off. The browser dies with the service: `stop` kills its process group,
 * and it is started with `--remote-debugging-pipe`, so it exits by itself when the service's end of
 * that pipe closes (the service was killed); the profile folder such a service leaves behind is
 * removed by the next start.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type WebSocket, WebSocketServer } from 'ws';
import { Backoff } from '../core/backoff.ts';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { type ChromiumCodecs, PAGE_HTML } from '../transcode/chromium/index.ts';

/** The Chromium of Debian's `chromium` package. */
const DEFAULT_EXECUTABLE = '/usr/bin/chromium';

/** Flags of every launch (STACK-NOTES, Chromium). */
const BASE_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--remote-debugging-pipe',
];
/** Flags without an accelerator (software codecs only). */
const SOFTWARE_FLAGS = ['--disable-gpu'];
/** Flags that let Chromium use a VA-API GPU for video where the machine has one. */
const HARDWARE_FLAGS = [
  '--ignore-gpu-blocklist',
  '--enable-features=VaapiVideoDecoder,VaapiVideoEncoder,VaapiVideoDecodeLinuxGL,AcceleratedVideoEncoder',
];

/** Profile folders are `<tmpdir>/lvqr-chromium-<service pid>-<random>`. */
const PROFILE_PREFIX = 'lvqr-chromium-';

/**
 * Removes the profile folders of services that are gone (a SIGKILLed service cannot remove its
 * own): those whose pid no longer runs. A folder whose pid runs (or was reused) stays.
 */
function removeStaleProfiles(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = entry.startsWith(PROFILE_PREFIX) ? Number.parseInt(entry.slice(PROFILE_PREFIX.length), 10) : 0;
    if (!(pid > 0) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as { code?: string }).code === 'ESRCH')
        rmSync(path.join(tmpdir(), entry), { recursive: true, force: true });
    }
  }
}

/** Options of the browser. */
export type ChromiumBrowserOptions = {
  /** The Chromium binary (default `/usr/bin/chromium`). */
  executable?: string;
  /** Let Chromium use a GPU (else `--disable-gpu`). */
  hardware: boolean;
  codecs: ChromiumCodecs;
  logger: Logger;
  /** First relaunch delay and longest one, ms (default 500 and 30 000). */
  relaunchBaseMs?: number;
  relaunchMaxMs?: number;
  /** Longest a launch may take until the page connects, ms (default 20 s). */
  launchTimeoutMs?: number;
  /** Tests only: the page honours `ChromiumCodecs.injectWorkerFault` (the service never sets it). */
  testHooks?: boolean;
};

/** The browser process and its page, relaunched after a crash until `stop`. */
export class ChromiumBrowser {
  readonly #options: ChromiumBrowserOptions;
  readonly #token = randomBytes(16).toString('hex');
  readonly #backoff: Backoff;
  #server: Server | undefined;
  #wss: WebSocketServer | undefined;
  #port = 0;
  #child: ChildProcess | undefined;
  readonly #profiles = new Map<ChildProcess, string>();
  #socket: WebSocket | undefined;
  #stderr = '';
  #stopped = false;
  #relaunch: ReturnType<typeof setTimeout> | undefined;
  #launches = 0;
  #connectWaiters: Array<(error?: Error) => void> = [];

  /** A browser for `options.codecs`; nothing runs before `start`. */
  constructor(options: ChromiumBrowserOptions) {
    this.#options = options;
    this.#backoff = new Backoff({
      baseMs: options.relaunchBaseMs ?? 500,
      maxMs: options.relaunchMaxMs ?? 30_000,
      now: () => Date.now(),
    });
  }

  /** The browser's process id (undefined between a crash and its relaunch). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** How many times the browser was launched. */
  get launches(): number {
    return this.#launches;
  }

  /** Starts the server and the browser; resolves once the page connected (rejects when it did not in time). */
  async start(): Promise<void> {
    removeStaleProfiles();
    this.#server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/' || url.searchParams.get('token') !== this.#token) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(PAGE_HTML);
    });
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
    this.#server.on('upgrade', (request, socket, head) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/link' || url.searchParams.get('token') !== this.#token || this.#stopped) {
        socket.destroy();
        return;
      }
      this.#wss?.handleUpgrade(request, socket, head, (ws) => this.#connected(ws));
    });
    await new Promise<void>((resolve, reject) => {
      this.#server?.once('error', reject);
      this.#server?.listen(0, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    const connected = this.#waitForPage();
    try {
      this.#launch();
    } catch (error) {
      connected.catch(() => {});
      throw new Error(`cannot run ${this.#options.executable ?? DEFAULT_EXECUTABLE}: ${errorMessage(error)}`);
    }
    await connected;
  }

  /** Kills the browser, closes the server (idempotent). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#relaunch);
    for (const wake of this.#connectWaiters.splice(0)) wake(new Error('chromium stopped'));
    this.#socket?.terminate();
    this.#options.codecs.close();
    await this.#kill();
    this.#wss?.close();
    await new Promise<void>((resolve) =>
      this.#server === undefined ? resolve() : this.#server.close(() => resolve()),
    );
  }

  #waitForPage(): Promise<void> {
    const timeoutMs = this.#options.launchTimeoutMs ?? 20_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`the page did not connect within ${timeoutMs} ms`)), timeoutMs);
      const done = (error?: Error): void => {
        clearTimeout(timer);
        const at = this.#connectWaiters.indexOf(done);
        if (at !== -1) this.#connectWaiters.splice(at, 1);
        if (error === undefined) resolve();
        else
          reject(new Error(`${error.message}${this.#stderr === '' ? '' : `; chromium said: ${this.#stderr.trim()}`}`));
      };
      this.#connectWaiters.push(done);
    });
  }

  #launch(): void {
    if (this.#stopped) return;
    this.#launches += 1;
    this.#stderr = '';
    const profile = mkdtempSync(path.join(tmpdir(), `${PROFILE_PREFIX}${process.pid}-`));
    const flags = [
      ...BASE_FLAGS,
      ...(this.#options.hardware ? HARDWARE_FLAGS : SOFTWARE_FLAGS),
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${this.#port}/?token=${this.#token}${this.#options.testHooks === true ? '&hooks=1' : ''}`,
    ];
    const executable = this.#options.executable ?? DEFAULT_EXECUTABLE;
    // fds 3 and 4 are the DevTools pipe: Chromium exits when the service's ends of it close.
    const child = spawn(executable, flags, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
    this.#child = child;
    this.#profiles.set(child, profile);
    child.stderr?.on('data', (data: Buffer) => {
      this.#stderr = (this.#stderr + data.toString('utf8')).slice(-2000);
    });
    child.once('error', (error) => this.#gone(child, `cannot run ${executable}: ${errorMessage(error)}`));
    child.once('exit', (code, signal) => this.#gone(child, `chromium exited (${signal ?? `code ${code}`})`));
  }

  #connected(ws: WebSocket): void {
    this.#socket?.terminate();
    this.#socket = ws;
    ws.binaryType = 'nodebuffer';
    const child = this.#child;
    this.#options.codecs.attach({
      send(bytes) {
        if (ws.readyState !== ws.OPEN) throw new Error('socket closed');
        ws.send(bytes);
      },
      kill: (reason) => {
        if (child !== undefined && this.#socket === ws) this.#gone(child, reason);
      },
    });
    this.#backoff.succeed();
    ws.on('message', (data: Buffer) => {
      if (this.#socket === ws)
        this.#options.codecs.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    ws.once('close', () => {
      if (this.#socket !== ws) return;
      this.#socket = undefined;
      // The page went (a crash, or the browser with it): start over with a fresh browser.
      if (child !== undefined) this.#gone(child, 'the page closed its connection');
    });
    for (const wake of this.#connectWaiters.splice(0)) wake();
  }

  /** The browser `child` (or its page) is gone: fail its codecs, make sure it is dead, relaunch later. */
  #gone(child: ChildProcess, reason: string): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#socket?.terminate();
    this.#socket = undefined;
    this.#options.codecs.detach(reason);
    void this.#killProcess(child);
    if (this.#stopped) return;
    if (this.#launches === 1 && this.#connectWaiters.length > 0) {
      // The first launch failed: `start` reports it rather than retrying.
      for (const wake of this.#connectWaiters.splice(0)) wake(new Error(reason));
      return;
    }
    const delay = this.#backoff.fail();
    this.#options.logger.warn('chromium backend: browser gone; relaunching', {
      reason,
      retryMs: delay,
      stderr: this.#stderr.trim().slice(-300) || undefined,
    });
    this.#relaunch = setTimeout(() => this.#launch(), delay);
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined) await this.#killProcess(child);
  }

  /** Kills `child`'s whole process group (browser, zygote, renderers) and removes its profile. */
  async #killProcess(child: ChildProcess): Promise<void> {
    const exited =
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((resolve) => child.once('exit', () => resolve()));
    for (const target of [-(child.pid ?? 0), child.pid ?? 0]) {
      try {
        if (target !== 0) process.kill(target, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 3000)))]);
    clearTimeout(timer);
    const profile = this.#profiles.get(child);
    this.#profiles.delete(child);
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
  }
}
