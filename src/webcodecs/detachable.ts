/**
 * Callbacks for a native codec that let the codec be collected once it is closed.
 *
 * `@napi-rs/webcodecs` 1.3.1 keeps the callbacks a codec was constructed with (`output`, `error`)
 * behind strong references that it drops when the codec object is finalized, not at `close()`. A
 * callback that reaches the codec, directly or through the owner that holds it, so closes a cycle
 * through a GC root: the codec, its owner and all they hold stay for the life of the process. In
 * the service that was every publisher session's decoder, encoders and ladder objects, with the
 * last fragment each decoder had seen (reproduced by `test/webcodecs/detachable.test.ts`).
 *
 * `detachable(handlers)` gives callbacks that reach `handlers` through a relay; `detach()`, called
 * when the codec is closed, empties it, after which nothing the codec holds leads back to it.
 */

/** Callbacks that call their handlers until `detach()` and do nothing after. */
export type Detachable<H> = {
  /** Hand these to the native codec. */
  readonly callbacks: H;
  /** Lets go of the handlers (at close; idempotent). */
  detach(): void;
};

/** Detachable callbacks for `handlers` (see the module doc). */
export function detachable<H extends Record<string, (...args: never[]) => unknown>>(handlers: H): Detachable<H> {
  // The callbacks' scope holds the relay and the handlers' names only, never `handlers` itself.
  const relay: { to: Record<string, (a?: unknown, b?: unknown) => unknown> | undefined } = {
    to: handlers as unknown as Record<string, (a?: unknown, b?: unknown) => unknown>,
  };
  const callbacks: Record<string, (a?: unknown, b?: unknown) => void> = {};
  for (const name of Object.keys(handlers)) {
    // Two arguments at most (a codec's output passes a chunk and its metadata): no rest array per
    // call on the per-frame path.
    callbacks[name] = (a?: unknown, b?: unknown): void => {
      relay.to?.[name]?.(a, b);
    };
  }
  return {
    callbacks: callbacks as unknown as H,
    detach: () => {
      relay.to = undefined;
    },
  };
}
