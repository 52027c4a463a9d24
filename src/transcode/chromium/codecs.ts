/**
 * The ladder's codec contract (`VideoCodecs`) served by decoders and encoders that run in a
 * Chromium page. Decoded frames stay in the page: the service holds `ChromiumFrame` handles (an id
 * and a timestamp, shared by clones and counted, so the page frees a frame when its last handle
 * closes), and an encoder is handed the id. Only compressed media crosses (`protocol.ts`).
 *
 * Each source runs in a page worker of its own, and each worker in a page (so a renderer process) of
 * its own: a decoder is placed in a new worker (or in the worker of a source whose decoder was
 * replaced: one that holds encoders and no decoder), and an encoder is configured at its first
 * frame, in the worker that holds that frame, so frames never leave their worker. An encoder
 * handed a frame of another worker fails (the rung rebuilds it at the next keyframe, in that
 * worker). Every message names the worker it is for; the connection delivers it to that worker's
 * page (opening the page on the first one) and closes the page once the worker is released.
 *
 * The browser is reached through a `PageConnection` the launcher attaches; when it goes (the
 * browser was killed) every decoder and encoder of that connection fails, with its pending calls:
 * the ladder rebuilds them at the next keyframe, on the next connection. A worker that throws, a
 * page that crashes, or a worker that leaves a call unanswered too long (its page is told to end
 * it, and is closed when it does not in time) fails only its own decoders and encoders the same
 * way: the other sources do not notice.
 */

import { CodecError, type ErrorCode, errorMessage } from '../../core/errors.ts';
import { RecentIds } from '../../core/recent-ids.ts';
import { highProfileCodec } from '../../webcodecs/avc.ts';
import type { DecoderLike, EncodedChunk, EncoderLike, VideoCodecs, VideoFrameLike } from '../codecs.ts';
import {
  decodeMessage,
  encodeMessage,
  FLAG,
  jsonPayload,
  type Message,
  type MessageHead,
  OP,
  readChunkPayload,
} from './protocol.ts';

/** One live connection to the browser: a page per worker. */
export interface PageConnection {
  /** Sends one message to the page of `worker`, opening that page first (throws when it is gone). */
  send(bytes: Uint8Array, worker: number): void;
  /** The page of `worker` stopped answering: close it (its codecs already failed). */
  kill(reason: string, worker: number): void;
  /** Nothing runs in `worker` any more: its page may close. */
  release(worker: number): void;
}

/** Which encoders the page runs, and the name they are reported under. */
export type ChromiumEncoderChoice = {
  /** The name reported for the encoders (e.g. `chromium-software`). */
  backend: string;
  /** Encoder preference passed to the page. */
  hardwareAcceleration: 'no-preference' | 'prefer-hardware';
};

/** Options of `ChromiumCodecs`. */
export type ChromiumCodecsOptions = ChromiumEncoderChoice & {
  /** Longest a call waits for a (re)connected page, ms (default 15 s). */
  connectTimeoutMs?: number;
  /** A call the page has not answered after this long means the page hangs, ms (default 15 s). */
  callTimeoutMs?: number;
  /**
   * Where a rung's picture is scaled: by the encoder (libyuv box filter, the default) or on an
   * OffscreenCanvas with high-quality smoothing first (README "Backends" has the comparison).
   */
  scaling?: 'encoder' | 'canvas';
  /**
   * What the far side is called in errors: `label` names a worker's home (default `chromium page`,
   * errors read "chromium page worker gone: ..."), `host` what leaves a call unanswered (`page`).
   */
  label?: string;
  host?: string;
};

type Pending = {
  owner: number;
  /** The page worker it was sent to. */
  worker: number;
  /** When the call was sent (`Date.now()`). */
  sentAtMs: number;
  resolve: (message: Message) => void;
  reject: (error: unknown) => void;
};

/** A failable codec of the page; `code` is what its failed calls reject with. */
type Owner = {
  code: ErrorCode;
  decoder: boolean;
  /** The page worker it runs in (undefined until it is configured there). */
  worker: number | undefined;
  fail(error: unknown): void;
  onMessage(message: Message): void;
};

/** A page worker: the codecs that run in it, and when the page was asked to end it (it hangs). */
type PageWorker = { owners: Set<number>; killAskedAtMs: number | undefined };

/** A connection and what lives on it. */
type Link = {
  connection: PageConnection;
  owners: Map<number, Owner>;
  workers: Map<number, PageWorker>;
  /** Workers that ended (the most recent ones): nothing is configured in them or sent to them again. */
  ended: RecentIds;
  alive: boolean;
  /** Checks that the page answers its calls in time. */
  watchdog: ReturnType<typeof setInterval>;
};

/** The frame named by one id in a page worker; shared by every handle (clone) of it. */
type SharedFrame = { ref: number; worker: number; handles: number; link: Link };

/** A handle of a decoded frame that stays in the page. */
export class ChromiumFrame implements VideoFrameLike {
  readonly timestamp: number;
  readonly #shared: SharedFrame;
  readonly #release: (shared: SharedFrame) => void;
  #closed = false;

  /** A new handle of `shared`. */
  constructor(timestamp: number, shared: SharedFrame, release: (shared: SharedFrame) => void) {
    this.timestamp = timestamp;
    this.#shared = shared;
    this.#release = release;
    shared.handles += 1;
  }

  /** The page's frame id and connection (undefined once this handle closed). */
  get shared(): SharedFrame | undefined {
    return this.#closed ? undefined : this.#shared;
  }

  clone(): ChromiumFrame {
    if (this.#closed) throw new CodecError('codec.closed', 'clone of a closed frame');
    return new ChromiumFrame(this.timestamp, this.#shared, this.#release);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#shared.handles -= 1;
    if (this.#shared.handles === 0) this.#release(this.#shared);
  }
}

/**
 * Sends a message that needs no answer (a close, a release) to `worker`'s page while `link` lives.
 * A page that is closing drops it: the page and everything in it are going anyway.
 */
function post(link: Link, bytes: Uint8Array, worker: number): void {
  if (!link.alive || link.ended.has(worker)) return;
  try {
    link.connection.send(bytes, worker);
  } catch {
    // Dropped with the page.
  }
}

/**
 * `VideoCodecs` whose decoders and encoders run in a Chromium page, or in any other place that
 * speaks the same protocol: the threads backend's codec threads (src/runtime/codec-threads.ts).
 */
export class ChromiumCodecs implements VideoCodecs {
  #options: ChromiumCodecsOptions;
  #link: Link | undefined;
  #waiters: Array<() => void> = [];
  #nextId = 1;
  #nextSeq = 1;
  #nextWorker = 1;
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  /** Codecs with no page yet (`attach` brings one). */
  constructor(options: ChromiumCodecsOptions) {
    this.#options = options;
  }

  get #label(): string {
    return this.#options.label ?? 'chromium page';
  }

  /** The name the encoders are reported under. */
  get backend(): string {
    return this.#options.backend;
  }

  /** Switches the encoders created from now on (after the probe decided). */
  useEncoder(choice: ChromiumEncoderChoice): void {
    this.#options = { ...this.#options, ...choice };
  }

  /** A page connected: new decoders and encoders (and those waiting) use it. */
  attach(connection: PageConnection): void {
    this.detach('replaced by a new page connection');
    const timeoutMs = this.#options.callTimeoutMs ?? 15_000;
    const watchdog = setInterval(() => this.#checkAnswers(connection, timeoutMs), Math.min(1000, timeoutMs / 4));
    watchdog.unref?.();
    this.#link = { connection, owners: new Map(), workers: new Map(), ended: new RecentIds(), alive: true, watchdog };
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /**
   * A call unanswered for `timeoutMs`: the page is asked to end the worker it waits on; a worker
   * still there `timeoutMs / 2` later (or a call that no worker runs, the probe's) fails, and its
   * page is closed.
   */
  #checkAnswers(connection: PageConnection, timeoutMs: number): void {
    const link = this.#link;
    if (link?.connection !== connection) return;
    const now = Date.now();
    const hung = new Set<number>();
    for (const pending of this.#pending.values()) {
      if (now - pending.sentAtMs < timeoutMs) continue;
      const worker = pending.worker;
      const entry = link.workers.get(worker);
      if (entry === undefined || (entry.killAskedAtMs !== undefined && now - entry.killAskedAtMs >= timeoutMs / 2)) {
        hung.add(worker);
      } else if (entry.killAskedAtMs === undefined) {
        entry.killAskedAtMs = now;
        post(link, encodeMessage({ op: OP.workerKill, id: worker }), worker);
      }
    }
    for (const worker of hung) {
      const reason = `the ${this.#options.host ?? 'page'} left a call unanswered for ${timeoutMs} ms`;
      // Kill first: the browser closes the page and watches that it goes (the release that
      // `#workerGone` makes then finds it closed already).
      connection.kill(reason, worker);
      this.#workerGone(link, worker, reason);
    }
  }

  /**
   * Worker `worker` of `link` is gone (the page ended it, the page crashed or hung): its codecs fail
   * with their pending calls, and its page is released.
   */
  #workerGone(link: Link, worker: number, reason: string): void {
    link.ended.add(worker);
    const entry = link.workers.get(worker);
    link.workers.delete(worker);
    const error = new CodecError('codec.closed', `${this.#label} worker gone: ${reason}`);
    for (const [seq, pending] of this.#pending) {
      if (pending.worker !== worker) continue;
      this.#pending.delete(seq);
      pending.reject(error);
    }
    for (const id of entry?.owners ?? []) {
      const owner = link.owners.get(id);
      link.owners.delete(id);
      owner?.fail(error);
    }
    link.connection.release(worker);
  }

  /** The page of `worker` went away (it crashed, or closed its connection): as if its worker failed. */
  pageGone(worker: number, reason: string): void {
    const link = this.#link;
    if (link !== undefined && !link.ended.has(worker)) this.#workerGone(link, worker, `its page ${reason}`);
  }

  /** The page workers that run codecs now, oldest first (one per source). */
  workerIds(): number[] {
    return [...(this.#link?.workers.keys() ?? [])];
  }

  /**
   * Test only: makes page worker `worker` throw an uncaught error or hang. A page launched without
   * test hooks ignores it.
   */
  injectWorkerFault(worker: number, how: 'throw' | 'hang'): void {
    if (this.#link !== undefined)
      post(this.#link, encodeMessage({ op: OP.testFault, id: worker }, new TextEncoder().encode(how)), worker);
  }

  /** The page went away: everything on it fails with `reason`. */
  detach(reason: string): void {
    const link = this.#link;
    if (link === undefined) return;
    this.#link = undefined;
    link.alive = false;
    clearInterval(link.watchdog);
    const error = new CodecError('codec.closed', `${this.#label} gone: ${reason}`);
    for (const [seq, pending] of this.#pending) {
      this.#pending.delete(seq);
      pending.reject(error);
    }
    for (const owner of [...link.owners.values()]) owner.fail(error);
    link.owners.clear();
  }

  /** Fails everything and refuses new work. */
  close(): void {
    this.#closed = true;
    this.detach('closed');
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** One message from the page. */
  receive(bytes: Uint8Array): void {
    const message = decodeMessage(bytes);
    const link = this.#link;
    if (message === undefined || link === undefined) return;
    if (message.op === OP.workerGone) {
      this.#workerGone(link, message.id, new TextDecoder().decode(message.payload));
      return;
    }
    if (message.op === OP.done || message.op === OP.probeResult || (message.op === OP.error && message.seq !== 0)) {
      const pending = this.#pending.get(message.seq);
      if (pending === undefined) return;
      this.#pending.delete(message.seq);
      if (message.op === OP.error)
        pending.reject(new CodecError('codec.config', new TextDecoder().decode(message.payload)));
      else pending.resolve(message);
      return;
    }
    link.owners.get(message.id)?.onMessage(message);
  }

  /**
   * Encodes a few frames in a page of its own under `hardwareAcceleration` (closed after); resolves
   * with whether that worked.
   */
  async probe(hardwareAcceleration: string): Promise<{ ok: boolean; error?: string }> {
    const link = await this.#connected();
    const worker = this.#nextWorker++;
    try {
      const answer = await this.#call(link, 0, worker, { op: OP.probe }, jsonPayload({ hardwareAcceleration }));
      return JSON.parse(new TextDecoder().decode(answer.payload)) as { ok: boolean; error?: string };
    } finally {
      if (!link.ended.has(worker)) {
        link.ended.add(worker);
        if (link.alive) link.connection.release(worker);
      }
    }
  }

  createDecoder(
    config: Parameters<VideoCodecs['createDecoder']>[0],
    onFrame: (frame: VideoFrameLike) => void,
    onError: (error: unknown) => void,
  ): DecoderLike {
    const codec = this.#openCodec(
      OP.decoderConfigure,
      {
        codec: config.codec,
        description: [...config.description],
        codedWidth: config.codedWidth,
        codedHeight: config.codedHeight,
      },
      onError,
      (message, link, worker) => {
        if (message.op !== OP.frame) return;
        const shared = { ref: message.ref, worker, handles: 0, link };
        onFrame(new ChromiumFrame(message.timestampUs, shared, this.#releaseFrame));
      },
    );
    const { id } = codec;
    return {
      decode: async (sample) => {
        const link = await codec.live();
        const flags = sample.keyframe ? FLAG.keyframe : 0;
        const head = { op: OP.decode, id, flags, timestampUs: sample.timestampUs, durationUs: sample.durationUs };
        await this.#call(link, id, codec.worker(), head, sample.data);
      },
      flush: async () => {
        const link = await codec.live();
        await this.#call(link, id, codec.worker(), { op: OP.decoderFlush, id });
      },
      close: () => codec.close(OP.decoderClose),
    };
  }

  createEncoder(
    config: Parameters<VideoCodecs['createEncoder']>[0],
    onChunk: (chunk: EncodedChunk) => void,
    onError: (error: unknown) => void,
  ): EncoderLike {
    /** Duration and whether a keyframe was asked for, per timestamp in flight. */
    const inFlight = new Map<number, { durationUs: number; keyFrame: boolean }>();
    const codec = this.#openCodec(
      OP.encoderConfigure,
      {
        codec: highProfileCodec(config.width, config.height, config.framerate),
        width: config.width,
        height: config.height,
        bitrate: config.bitrateBps,
        framerate: config.framerate,
        hardwareAcceleration: this.#options.hardwareAcceleration,
        scale: this.#options.scaling ?? 'encoder',
      },
      onError,
      (message) => {
        if (message.op !== OP.chunk) return;
        const asked = inFlight.get(message.timestampUs);
        inFlight.delete(message.timestampUs);
        const { data, decoderConfig } = readChunkPayload(message.flags, message.payload);
        const keyframe = (message.flags & FLAG.keyframe) !== 0;
        onChunk({
          data,
          timestampUs: message.timestampUs,
          durationUs: asked?.durationUs ?? 0,
          keyframe,
          requestedKeyframe: keyframe && asked?.keyFrame === true,
          decoderConfig,
        });
      },
    );
    const { id } = codec;
    return {
      encode: async (frame, options) => {
        const link = await codec.live();
        const shared = frame instanceof ChromiumFrame ? frame.shared : undefined;
        if (shared === undefined || shared.link !== link) {
          throw new CodecError('codec.closed', 'the frame is not (or no longer) in the page');
        }
        codec.placeIn(link, shared.worker);
        inFlight.set(frame.timestamp, { durationUs: options.durationUs, keyFrame: options.keyFrame });
        const head = {
          op: OP.encode,
          id,
          ref: shared.ref,
          flags: options.keyFrame ? FLAG.keyframe : 0,
          timestampUs: frame.timestamp,
          durationUs: options.durationUs,
        };
        await this.#call(link, id, shared.worker, head);
      },
      flush: async () => {
        const link = await codec.live();
        // Not configured yet (no frame came): nothing to flush.
        if (codec.placed()) await this.#call(link, id, codec.worker(), { op: OP.encoderFlush, id });
      },
      close: () => codec.close(OP.encoderClose),
    };
  }

  /**
   * A decoder or encoder in the page. A decoder is configured with `config` in its worker once a
   * page is connected; an encoder when `placeIn` names the worker of its first frame. A failure
   * (its error in the page, its worker or the page gone) reaches `onError` once; later calls
   * reject with it.
   */
  #openCodec(
    configureOp: number,
    config: unknown,
    onError: (error: unknown) => void,
    onMessage: (message: Message, link: Link, worker: number) => void,
  ): {
    id: number;
    live(): Promise<Link>;
    placed(): boolean;
    /** The worker it is configured in (it is, once `live` resolved for a decoder, `placed` for an encoder). */
    worker(): number;
    placeIn(link: Link, worker: number): void;
    close(closeOp: number): void;
  } {
    const id = this.#nextId++;
    const decoder = configureOp === OP.decoderConfigure;
    let failed: unknown;
    let link: Link | undefined;
    const owner: Owner = {
      code: decoder ? 'codec.decode_failed' : 'codec.encode_failed',
      decoder,
      worker: undefined,
      fail(error) {
        if (failed !== undefined) return;
        failed = error;
        onError(error);
      },
      onMessage(message) {
        if (message.op === OP.error) {
          owner.fail(new CodecError(owner.code, new TextDecoder().decode(message.payload)));
        } else if (link !== undefined && owner.worker !== undefined) {
          onMessage(message, link, owner.worker);
        }
      },
    };
    const placeIn = (l: Link, worker: number): void => this.#place(l, id, owner, worker, configureOp, config);
    const ready = this.#connected().then((l) => {
      link = l;
      l.owners.set(id, owner);
      if (decoder) placeIn(l, this.#decoderWorker(l));
      return l;
    });
    ready.catch(() => {});
    return {
      id,
      async live() {
        const l = await ready;
        if (failed !== undefined) throw failed;
        return l;
      },
      placed: () => owner.worker !== undefined,
      worker: () => owner.worker ?? 0,
      placeIn,
      close: (closeOp) => this.#closeOwner(ready, id, closeOp, owner),
    };
  }

  /** The worker of a source whose decoder was replaced (it holds encoders, no decoder), or a new one. */
  #decoderWorker(link: Link): number {
    for (const [worker, entry] of link.workers) {
      if (![...entry.owners].some((id) => link.owners.get(id)?.decoder)) return worker;
    }
    return this.#nextWorker++;
  }

  /**
   * Configures codec `id` in page worker `worker` (once; a codec already in another worker, or a
   * worker the page ended, fails it and throws).
   */
  #place(link: Link, id: number, owner: Owner, worker: number, op: number, config: unknown): void {
    if (owner.worker === worker) return;
    if (owner.worker !== undefined || link.ended.has(worker)) {
      const error = new CodecError(
        'codec.closed',
        owner.worker === undefined
          ? `${this.#label} worker ${worker} is gone`
          : 'its frames come from another page worker',
      );
      owner.fail(error);
      throw error;
    }
    owner.worker = worker;
    let entry = link.workers.get(worker);
    if (entry === undefined) {
      entry = { owners: new Set(), killAskedAtMs: undefined };
      link.workers.set(worker, entry);
    }
    entry.owners.add(id);
    link.connection.send(encodeMessage({ op, id, ref: worker }, jsonPayload(config)), worker);
  }

  #closeOwner(ready: Promise<Link>, id: number, op: number, owner: Owner): void {
    owner.fail = () => {};
    void ready.then(
      (link) => {
        link.owners.delete(id);
        for (const [seq, pending] of this.#pending) {
          if (pending.owner !== id) continue;
          this.#pending.delete(seq);
          pending.reject(new CodecError('codec.closed', 'closed'));
        }
        const worker = owner.worker;
        const entry = worker === undefined ? undefined : link.workers.get(worker);
        if (entry === undefined || worker === undefined) return;
        entry.owners.delete(id);
        post(link, encodeMessage({ op, id }), worker);
        if (entry.owners.size > 0) return;
        // Its last codec: the worker's page closes (frames still held there are freed with it).
        link.workers.delete(worker);
        link.ended.add(worker);
        if (link.alive) link.connection.release(worker);
      },
      () => {},
    );
  }

  readonly #releaseFrame = (shared: SharedFrame): void => {
    post(shared.link, encodeMessage({ op: OP.frameRelease, id: shared.worker, ref: shared.ref }), shared.worker);
  };

  /** Sends one call to `worker`'s page and resolves with its answer. */
  #call(link: Link, owner: number, worker: number, head: MessageHead, payload?: Uint8Array): Promise<Message> {
    if (!link.alive) return Promise.reject(new CodecError('codec.closed', `${this.#label} gone`));
    if (link.ended.has(worker)) return Promise.reject(new CodecError('codec.closed', `${this.#label} worker gone`));
    const seq = this.#nextSeq++;
    return new Promise<Message>((resolve, reject) => {
      this.#pending.set(seq, { owner, worker, sentAtMs: Date.now(), resolve, reject });
      try {
        link.connection.send(encodeMessage({ ...head, seq }, payload), worker);
      } catch (error) {
        this.#pending.delete(seq);
        reject(new CodecError('codec.closed', `${this.#label} unreachable: ${errorMessage(error)}`));
      }
    });
  }

  /** The current link, waiting up to the connect timeout for one. */
  async #connected(): Promise<Link> {
    const deadline = Date.now() + (this.#options.connectTimeoutMs ?? 15_000);
    while (this.#link === undefined) {
      if (this.#closed) throw new CodecError('codec.closed', `${this.#label} codecs closed`);
      const left = deadline - Date.now();
      if (left <= 0) throw new CodecError('codec.closed', `no ${this.#label} connected`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        const waiters = this.#waiters;
        function wake(): void {
          clearTimeout(timer);
          const at = waiters.indexOf(wake);
          if (at !== -1) waiters.splice(at, 1);
          resolve();
        }
        waiters.push(wake);
      });
    }
    return this.#link;
  }
}
