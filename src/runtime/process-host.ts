/** The parts of a runtime host that Node and Bun share: `process` arguments and environment, files through `node:fs`. */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { RuntimeHost } from '../server/main.ts';

const require = createRequire(import.meta.url);

/** Arguments, environment, file reads and the hls.js bundle for the dashboard, where `process` exists. */
export const processHostBasics: Pick<RuntimeHost, 'argv' | 'env' | 'readFile' | 'readHlsJs'> = {
  argv: process.argv.slice(2),
  env: process.env,
  readFile: (path) => readFileSync(path, 'utf8'),
  readHlsJs: () => readFileSync(require.resolve('hls.js/dist/hls.min.js'), 'utf8'),
};
