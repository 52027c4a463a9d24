/**
 * Runtime-neutral macrotask yields. Native codec callbacks (WebCodecs outputs, `dequeue` events)
 * are delivered through the event loop: a loop that only awaits microtasks starves them.
 */

type ImmediateFn = (callback: () => void) => unknown;
type TimeoutFn = (callback: () => void, ms: number) => unknown;
type ClearTimeoutFn = (handle: unknown) => void;

type Channel = {
  port1: { onmessage: ((event: unknown) => void) | null; close(): void };
  port2: { postMessage(message: unknown): void; close(): void };
};

const scope = globalThis as unknown as {
  setImmediate?: ImmediateFn;
  setTimeout: TimeoutFn;
  clearTimeout: ClearTimeoutFn;
  MessageChannel?: new () => Channel;
};

let channel: Channel | undefined;
const channelWaiters: Array<() => void> = [];

function viaChannel(resolve: () => void): boolean {
  if (typeof scope.MessageChannel !== 'function') return false;
  if (channel === undefined) {
    const created = new scope.MessageChannel();
    channel = created;
    created.port1.onmessage = () => {
      const waiter = channelWaiters.shift();
      if (channelWaiters.length === 0) {
        // An open port with a listener keeps some runtimes alive: close it when idle.
        created.port1.close();
        created.port2.close();
        if (channel === created) channel = undefined;
      }
      waiter?.();
    };
  }
  channelWaiters.push(resolve);
  channel.port2.postMessage(0);
  return true;
}

/** Resolves on a later macrotask: `setImmediate` where it exists, else a MessageChannel, else `setTimeout(0)`. */
export function yieldMacrotask(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (typeof scope.setImmediate === 'function') {
      scope.setImmediate(resolve);
      return;
    }
    if (viaChannel(resolve)) return;
    scope.setTimeout(resolve, 0);
  });
}

/** Resolves after `ms` milliseconds (a plain `setTimeout`, available in every supported runtime). */
export function sleepMs(ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    scope.setTimeout(resolve, ms);
  });
}

/**
 * A wake-up signal: `wait(maxMs)` resolves at the next `wake()` or after `maxMs`, whichever comes
 * first (the timeout guards against a producer whose wake-up event never fires).
 */
export class Signal {
  #waiters: Array<() => void> = [];

  /** Resolves at the next `wake()` or after `maxMs`. */
  wait(maxMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        scope.clearTimeout(timer);
        resolve();
      };
      const timer = scope.setTimeout(finish, maxMs);
      this.#waiters.push(finish);
    });
  }

  /** Releases every current waiter. */
  wake(): void {
    const waiters = this.#waiters;
    if (waiters.length === 0) return;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}
