/**
 * The Chrome DevTools Protocol over `--remote-debugging-pipe`: the browser reads commands on its
 * fd 3 and writes answers and events on its fd 4, each a JSON text ended by a NUL byte. Only what
 * the chromium backend needs: commands with their answers (rejected when the browser answers with
 * an error, goes away or does not answer in time) and events by name.
 */

import type { Readable, Writable } from 'node:stream';

/** An event of the browser (`method` and `params`, and the session it came from, if any). */
export type CdpEvent = { method: string; params: Record<string, unknown>; sessionId?: string };

/** Longest a command waits for its answer, ms. */
const COMMAND_TIMEOUT_MS = 10_000;

/** One end of the DevTools pipe of a launched browser. */
export class CdpPipe {
  readonly #input: Writable;
  #buffer = '';
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { resolve: (result: Record<string, unknown>) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  #closed: Error | undefined;
  /** Called with each event. */
  onEvent: (event: CdpEvent) => void = () => {};

  /** Speaks to the browser over `input` (its fd 3) and `output` (its fd 4). */
  constructor(input: Writable, output: Readable) {
    this.#input = input;
    input.on('error', (error: Error) => this.close(error));
    output.on('error', (error: Error) => this.close(error));
    output.on('close', () => this.close(new Error('the DevTools pipe closed')));
    output.on('data', (data: Buffer) => this.#read(data.toString('utf8')));
  }

  /** Sends `method` (to `sessionId`'s target when given); resolves with the browser's result. */
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer from the browser within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      timer.unref?.();
      this.#pending.set(id, { resolve, reject, timer });
      this.#input.write(
        `${JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) })}\0`,
      );
    });
  }

  /** Rejects every command waiting and refuses new ones (idempotent). */
  close(error: Error = new Error('the DevTools pipe closed')): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#pending.clear();
  }

  #read(text: string): void {
    this.#buffer += text;
    for (let end = this.#buffer.indexOf('\0'); end !== -1; end = this.#buffer.indexOf('\0')) {
      const raw = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 1);
      let message: {
        id?: number;
        result?: Record<string, unknown>;
        error?: { message?: string };
        method?: string;
        params?: Record<string, unknown>;
        sessionId?: string;
      };
      try {
        message = JSON.parse(raw);
      } catch {
        continue;
      }
      if (message.id !== undefined) {
        const pending = this.#pending.get(message.id);
        if (pending === undefined) continue;
        this.#pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.error !== undefined) pending.reject(new Error(message.error.message ?? 'DevTools error'));
        else pending.resolve(message.result ?? {});
      } else if (message.method !== undefined) {
        this.onEvent({
          method: message.method,
          params: message.params ?? {},
          ...(message.sessionId === undefined ? {} : { sessionId: message.sessionId }),
        });
      }
    }
  }
}
