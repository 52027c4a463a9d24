/**
 * The threads backend (`--transcode-backend threads`): the ladder's codecs run in worker threads,
 * one per source (its decoder, its rungs' encoders and its decoded frames: codec-worker.ts), and
 * the server's thread holds only frame ids. The in-process addon takes a codec's lock on the
 * calling thread while that codec works on a frame, so on the main thread one busy encoder held up
 * every source and every HTTP answer; here it holds up its own source only.
 *
 * The service side is the one the chromium backend uses (`ChromiumCodecs`: frame handles, which
 * thread each codec runs in, calls and answers, a thread that fails or hangs fails its source's
 * codecs only); this file gives it a connection whose "pages" are worker threads.
 */

import { Worker } from 'node:worker_threads';
import type { Logger } from '../core/log.ts';
import { RecentIds } from '../core/recent-ids.ts';
import { ChromiumCodecs, type PageConnection } from '../transcode/chromium/index.ts';
import type { HardwareAccelerationPort } from '../webcodecs/index.ts';
import type { CodecWorkerData } from './codec-worker.ts';
import { workerEntry } from './worker-entry.ts';

/** Options of `CodecThreads`. */
export type CodecThreadsOptions = {
  /** Name the encoders are reported under (from the probe), e.g. `software`. */
  backend: string;
  hardwareAcceleration: HardwareAccelerationPort;
  logger: Logger;
  /** A call a thread has not answered after this long means it hangs, ms (default 15 s). */
  callTimeoutMs?: number;
  /** Tests only: threads honour `ChromiumCodecs.injectWorkerFault` (throw, hang). */
  testHooks?: boolean;
};

/** How long a codec thread may take to load the addon before the backend counts as broken, ms. */
const START_TIMEOUT_MS = 15_000;

/** Worker threads that run the codecs, and the `VideoCodecs` (`codecs`) that uses them. */
export class CodecThreads {
  readonly codecs: ChromiumCodecs;
  readonly #threads = new Map<number, Worker>();
  readonly #ended = new RecentIds();
  readonly #options: CodecThreadsOptions;
  /** A started thread no source has yet. */
  #spare: Worker | undefined;
  #closed = false;

  constructor(options: CodecThreadsOptions) {
    this.#options = options;
    this.codecs = new ChromiumCodecs({
      backend: options.backend,
      hardwareAcceleration: options.hardwareAcceleration === 'prefer-hardware' ? 'prefer-hardware' : 'no-preference',
      ...(options.callTimeoutMs === undefined ? {} : { callTimeoutMs: options.callTimeoutMs }),
      label: 'codec thread',
      host: 'codec thread',
    });
    const connection: PageConnection = {
      send: (bytes, id) => {
        const thread = this.#threads.get(id) ?? this.#start(id);
        thread.postMessage(bytes, [bytes.buffer as ArrayBuffer]);
      },
      kill: (reason, id) => {
        this.#options.logger.warn('threads backend: ending a codec thread that stopped answering', { reason });
        this.#end(id);
      },
      release: (id) => this.#end(id),
    };
    this.codecs.attach(connection);
  }

  /** Threads that run a source's codecs now (the spare aside). */
  get size(): number {
    return this.#threads.size;
  }

  /**
   * Starts the spare thread and waits until it has loaded the addon: resolves, or rejects with why
   * this runtime cannot run codec threads (the service checks once at start-up).
   */
  async start(): Promise<void> {
    const thread = this.#refill();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      timer.unref?.();
      thread.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      thread.once('error', (error) => reject(error));
      thread.once('exit', (code) => reject(new Error(`it exited (code ${code})`)));
    });
  }

  /**
   * Starts a spare thread when there is none: a new source takes it with the addon already loaded
   * (starting a thread and loading the addon took 0.1-0.3 s, which a source's first frames waited
   * for). A spare that fails is dropped; the next source starts one.
   */
  #refill(): Worker {
    if (this.#spare !== undefined) return this.#spare;
    const workerData: CodecWorkerData = {
      hardwareAcceleration: this.#options.hardwareAcceleration,
      ...(this.#options.testHooks === true ? { testHooks: true } : {}),
    };
    const spare = new Worker(workerEntry('codec-worker'), { eval: true, workerData, name: 'codecs' });
    const drop = (): void => {
      if (this.#spare === spare) this.#spare = undefined;
    };
    spare.once('error', drop);
    spare.once('exit', drop);
    this.#spare = spare;
    return spare;
  }

  #start(id: number): Worker {
    if (this.#closed) throw new Error('the codec threads are closed');
    if (this.#ended.has(id)) throw new Error(`codec thread ${id} has ended`);
    const thread = this.#refill();
    this.#spare = undefined;
    this.#refill();
    this.#threads.set(id, thread);
    thread.on('message', (data: ArrayBuffer | string) => {
      if (typeof data !== 'string' && this.#threads.get(id) === thread) this.codecs.receive(new Uint8Array(data));
    });
    thread.on('error', (error) => this.#gone(id, thread, `its thread failed: ${error.message}`));
    thread.on('exit', (code) => this.#gone(id, thread, `its thread exited (code ${code})`));
    return thread;
  }

  /** Ends thread `id` (released, or hung): nothing more goes to or comes from it. */
  #end(id: number): void {
    const thread = this.#threads.get(id);
    this.#threads.delete(id);
    this.#ended.add(id);
    void thread?.terminate();
  }

  /** Thread `id` failed or exited on its own: its codecs fail with their calls. */
  #gone(id: number, thread: Worker, reason: string): void {
    if (this.#threads.get(id) !== thread) return;
    this.#threads.delete(id);
    this.#ended.add(id);
    this.#options.logger.warn('threads backend: a codec thread ended', { reason });
    this.codecs.pageGone(id, reason);
  }

  /** Fails every codec and ends every thread. */
  async close(): Promise<void> {
    this.#closed = true;
    this.codecs.close();
    const threads = [...this.#threads.values(), ...(this.#spare === undefined ? [] : [this.#spare])];
    this.#threads.clear();
    this.#spare = undefined;
    await Promise.all(threads.map((thread) => thread.terminate()));
  }
}
