/** vitest globalSetup: makes the media fixtures when any is missing, so `npm test` works on a fresh clone. */

import { ensureFixtures } from '../testkit/fixtures.ts';

/** Makes the media fixtures unless every clip exists. */
export default function setup(): void {
  ensureFixtures('global-setup');
}
