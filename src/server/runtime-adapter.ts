/**
 * What the HTTP app needs of the runtime under it. Each runtime file (`src/runtime/{node,bun,deno}.ts`)
 * implements it; the app only calls it, so it never knows which runtime it runs on.
 */

import type { Context } from 'hono';
import type { UpgradeWebSocket } from 'hono/ws';

/** The runtime's side of the HTTP surface: WebSocket upgrades, client addresses, raw request targets. */
export interface HttpRuntime {
  /**
   * The runtime's WebSocket upgrader. When the runtime enforces its message limit itself it reports
   * it as a close with code 1009 (Message Too Big), whatever its own socket library says.
   */
  readonly upgradeWebSocket?: UpgradeWebSocket<unknown>;
  /** The client's address as the runtime sees it (per-client limits); undefined when unknown. */
  clientAddress?(c: Context): string | undefined;
  /**
   * The path of the request target as the client sent it, before URL normalisation (`live/../x`,
   * `%2e%2e`), when the runtime keeps it; undefined otherwise.
   */
  rawTargetPath?(c: Context): string | undefined;
}

/** The runtime's client address for a request, or undefined when it cannot tell. */
export function clientAddressOf(runtime: HttpRuntime | undefined, c: Context): string | undefined {
  try {
    return runtime?.clientAddress?.(c);
  } catch {
    return undefined;
  }
}
