/** The minimum Node version as [major, minor, patch]. */
export const MIN_NODE: readonly [number, number, number];
/** Whether Node `version` ("20.18.1") is older than MIN_NODE. */
export function nodeTooOld(version: string): boolean;
/** Exits with a clear message when the running Node is too old. */
export function requireSupportedNode(): void;
