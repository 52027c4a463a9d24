// The oldest Node this package runs on, and the check the launchers make before anything else.
// (vite 8, which runs the tests, needs 20.19; undici 7 needs 20.18.1.) package.json's `engines`
// states the same version; a test keeps the two equal.

/** The minimum Node version as [major, minor, patch]. */
export const MIN_NODE = [20, 19, 0];

/** Whether Node `version` ("20.18.1") is older than MIN_NODE. */
export function nodeTooOld(version) {
  const have = version.split('.').map(Number);
  for (let i = 0; i < MIN_NODE.length; i++) {
    if ((have[i] ?? 0) !== MIN_NODE[i]) return (have[i] ?? 0) < MIN_NODE[i];
  }
  return false;
}

/** Exits with a clear message when the running Node is too old. */
export function requireSupportedNode() {
  if (!nodeTooOld(process.versions.node)) return;
  console.error(`lvqr-transcode needs Node ${MIN_NODE.join('.')} or newer; this is Node ${process.versions.node}.`);
  process.exit(1);
}
