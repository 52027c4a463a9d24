/** vitest globalSetup: makes the media fixtures when any is missing, so `npm test` works on a fresh clone. */

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { FIXTURES_DIR, fixturesPresent } from './support/fixtures.ts';

/** Runs test/fixtures/make-fixtures.sh unless every clip exists. */
export default function setup(): void {
  if (fixturesPresent()) return;
  console.log('[global-setup] making media fixtures (test/fixtures/make-fixtures.sh)');
  execFileSync('bash', [path.join(FIXTURES_DIR, 'make-fixtures.sh')], { stdio: 'inherit' });
}
