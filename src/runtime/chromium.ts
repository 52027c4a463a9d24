/**
 * Runs the Chromium backend's browser: a loopback HTTP + WebSocket server (127.0.0.1, ephemeral
 * port, a random token) that serves the codec page and takes its connections, and one long-lived
 * headless Chromium driven over its DevTools pipe, which opens one page (its own renderer process)
 * per page worker the codecs name, and closes it when they release it. Node, Bun and Deno run it
 * alike (`node:` modules and `ws`).
 *
 * Crash safety: a page that crashes or closes its socket, or that stops answering (the codecs say
 * so), fails only the codecs of its worker (the ladder rebuilds them at the source's next
 * keyframe, in a new page); a page that does not close when told to, or a browser that exits,
 * detaches the codecs (all of them fail) and the browser is killed and relaunched after a
 * back-off. The browser dies with the service: `stop` kills its process group, and it is started
 * with `--remote-debugging-pipe`, so it exits by itself when the service's end of that pipe closes
 * (the service was killed); the profile folder such a service leaves behind is removed by the next
 * start.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { Backoff } from '../core/backoff.ts';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { RecentIds } from '../core/recent-ids.ts';
import { type ChromiumCodecs, PAGE_HTML, type PageConnection } from '../transcode/chromium/index.ts';
import { CdpPipe } from './cdp-pipe.ts';

/** The Chromium of Debian's `chromium` package. */
const DEFAULT_EXECUTABLE = '/usr/bin/chromium';

/** Flags of every launch: headless, off the network, no throttling of background pages. */
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
  // No renderer process started ahead for the next page: each source's page gets a process of its
  // own when it opens (a spare that hung or died with the others would take the next source down).
  '--disable-features=SpareRendererForSitePerProcess',
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
  /** Longest a launch may take until the browser answers, ms (default 20 s). */
  launchTimeoutMs?: number;
  /** Tests only: the page honours `ChromiumCodecs.injectWorkerFault` (the service never sets it). */
  testHooks?: boolean;
};

/** Messages a page that is still opening holds for its worker (its codecs wait for answers, so few). */
const MAX_QUEUED = 1024;
/** How long a page told to close (it hung) may take before the browser is killed, ms. */
const CLOSE_GRACE_MS = 5000;

/** One page of the browser: the page worker it runs, its DevTools target and its socket. */
type Page = {
  worker: number;
  targetId: string | undefined;
  socket: WebSocket | undefined;
  /** Messages for it before its socket connected. */
  queue: Uint8Array[];
};

/** The browser process and its pages, relaunched after a crash until `stop`. */
export class ChromiumBrowser {
  readonly #options: ChromiumBrowserOptions;
  readonly #token = randomBytes(16).toString('hex');
  readonly #backoff: Backoff;
  #server: Server | undefined;
  #wss: WebSocketServer | undefined;
  #port = 0;
  #child: ChildProcess | undefined;
  #cdp: CdpPipe | undefined;
  readonly #profiles = new Map<ChildProcess, string>();
  /** The open pages of the running browser, by page worker. */
  readonly #pages = new Map<number, Page>();
  /** Page workers whose page closed or went (the most recent ones): never opened again. */
  readonly #closedPages = new RecentIds();
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

  /** The page workers whose page is open now. */
  get openPages(): number[] {
    return [...this.#pages.keys()];
  }

  /** Starts the server and the browser; resolves once the browser answers (rejects when it did not in time). */
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
      const page = this.#pages.get(Number(url.searchParams.get('page')));
      if (
        url.pathname !== '/link' ||
        url.searchParams.get('token') !== this.#token ||
        this.#stopped ||
        page === undefined ||
        page.socket !== undefined
      ) {
        socket.destroy();
        return;
      }
      this.#wss?.handleUpgrade(request, socket, head, (ws) => this.#connected(page, ws));
    });
    await new Promise<void>((resolve, reject) => {
      this.#server?.once('error', reject);
      this.#server?.listen(0, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    const ready = this.#waitForBrowser();
    try {
      this.#launch();
    } catch (error) {
      ready.catch(() => {});
      throw new Error(`cannot run ${this.#options.executable ?? DEFAULT_EXECUTABLE}: ${errorMessage(error)}`);
    }
    await ready;
  }

  /** Kills the browser, closes the server (idempotent). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#relaunch);
    for (const wake of this.#connectWaiters.splice(0)) wake(new Error('chromium stopped'));
    this.#dropPages();
    this.#options.codecs.close();
    await this.#kill();
    this.#wss?.close();
    await new Promise<void>((resolve) =>
      this.#server === undefined ? resolve() : this.#server.close(() => resolve()),
    );
  }

  /** Test only: crashes the renderer of `worker`'s page (DevTools `Page.crash`). */
  async crashPage(worker: number): Promise<void> {
    const page = this.#pages.get(worker);
    const cdp = this.#cdp;
    if (page?.targetId === undefined || cdp === undefined) throw new Error(`no open page for worker ${worker}`);
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
    // Never answered: the renderer is gone.
    cdp.send('Page.crash', {}, String(sessionId)).catch(() => {});
  }

  #waitForBrowser(): Promise<void> {
    const timeoutMs = this.#options.launchTimeoutMs ?? 20_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`the browser did not answer within ${timeoutMs} ms`)), timeoutMs);
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
      'about:blank',
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
    const input = child.stdio[3];
    const output = child.stdio[4];
    if (!isWritable(input) || !isReadable(output)) {
      this.#gone(child, 'this runtime gave the browser no DevTools pipe (fds 3 and 4)');
      return;
    }
    const cdp = new CdpPipe(input, output);
    this.#cdp = cdp;
    cdp.onEvent = (event) => {
      if (event.method !== 'Target.targetCrashed' || this.#cdp !== cdp) return;
      for (const page of this.#pages.values()) {
        if (page.targetId !== event.params['targetId']) continue;
        this.#pageGone(page, 'crashed');
      }
    };
    cdp
      .send('Target.setDiscoverTargets', { discover: true })
      .then(() => this.#ready(child))
      .catch((error) => this.#gone(child, `the browser did not answer: ${errorMessage(error)}`));
  }

  /** The browser `child` answers: the codecs may use it. */
  #ready(child: ChildProcess): void {
    if (this.#child !== child || this.#stopped) return;
    const connection: PageConnection = {
      send: (bytes, worker) => {
        if (this.#child !== child) throw new Error('the browser is gone');
        const page = this.#pages.get(worker) ?? this.#openPage(worker);
        const socket = page.socket;
        if (socket !== undefined && socket.readyState === socket.OPEN) socket.send(bytes);
        else if (page.queue.length < MAX_QUEUED) page.queue.push(bytes);
        else throw new Error(`page ${worker} did not connect (${MAX_QUEUED} messages wait)`);
      },
      kill: (reason, worker) => {
        const page = this.#pages.get(worker);
        if (this.#child !== child || page === undefined) return;
        this.#options.logger.warn('chromium backend: closing a page that stopped answering', { reason });
        this.#closePage(page);
        // A page that cannot even be closed takes the browser down with it.
        const timer = setTimeout(() => {
          if (this.#child === child && page.socket !== undefined && page.socket.readyState !== page.socket.CLOSED)
            this.#gone(child, `a page did not close after ${reason}`);
        }, CLOSE_GRACE_MS);
        timer.unref?.();
      },
      release: (worker) => {
        const page = this.#pages.get(worker);
        if (this.#child === child && page !== undefined) this.#closePage(page);
      },
    };
    this.#options.codecs.attach(connection);
    this.#backoff.succeed();
    for (const wake of this.#connectWaiters.splice(0)) wake();
  }

  /** Opens the page of `worker` (messages wait for its socket). */
  #openPage(worker: number): Page {
    if (this.#closedPages.has(worker)) throw new Error(`the page of worker ${worker} is closed`);
    const cdp = this.#cdp;
    if (cdp === undefined) throw new Error('the browser is gone');
    const page: Page = { worker, targetId: undefined, socket: undefined, queue: [] };
    this.#pages.set(worker, page);
    const hooks = this.#options.testHooks === true ? '&hooks=1' : '';
    const url = `http://127.0.0.1:${this.#port}/?token=${this.#token}&page=${worker}${hooks}`;
    cdp.send('Target.createTarget', { url }).then(
      ({ targetId }) => {
        page.targetId = String(targetId);
        // Closed meanwhile: close its target now.
        if (this.#pages.get(worker) !== page) this.#closeTarget(page);
      },
      (error) => this.#pageGone(page, `could not be opened (${errorMessage(error)})`),
    );
    return page;
  }

  #connected(page: Page, ws: WebSocket): void {
    page.socket = ws;
    ws.binaryType = 'nodebuffer';
    for (const bytes of page.queue.splice(0)) ws.send(bytes);
    ws.on('message', (data: Buffer) => {
      if (this.#pages.get(page.worker) === page)
        this.#options.codecs.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    // After a crash DevTools reports (`Target.targetCrashed`) the page is gone already: this does nothing.
    ws.once('close', () => this.#pageGone(page, 'closed its connection'));
  }

  /** Closes `page` (its worker was released, or it hung): nothing more is delivered to or from it. */
  #closePage(page: Page): void {
    if (this.#pages.get(page.worker) !== page) return;
    this.#pages.delete(page.worker);
    this.#closedPages.add(page.worker);
    page.queue.length = 0;
    this.#closeTarget(page);
  }

  #closeTarget(page: Page): void {
    if (page.targetId !== undefined) this.#cdp?.send('Target.closeTarget', { targetId: page.targetId }).catch(() => {});
  }

  /** `page` crashed or its socket closed: its worker's codecs fail; the page is closed. */
  #pageGone(page: Page, reason: string): void {
    if (this.#pages.get(page.worker) !== page) return;
    this.#closePage(page);
    page.socket?.terminate();
    this.#options.logger.warn('chromium backend: a page is gone; its source restarts at its next keyframe', {
      reason,
    });
    this.#options.codecs.pageGone(page.worker, reason);
  }

  /** Forgets every page of the browser (it is going). */
  #dropPages(): void {
    for (const page of this.#pages.values()) {
      this.#closedPages.add(page.worker);
      page.socket?.terminate();
    }
    this.#pages.clear();
  }

  /** The browser `child` is gone (or must go): fail its codecs, make sure it is dead, relaunch later. */
  #gone(child: ChildProcess, reason: string): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#cdp?.close();
    this.#cdp = undefined;
    this.#dropPages();
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

function isWritable(stream: unknown): stream is Writable {
  return typeof (stream as Writable | null)?.write === 'function';
}

function isReadable(stream: unknown): stream is Readable {
  return typeof (stream as Readable | null)?.on === 'function';
}
