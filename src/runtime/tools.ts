/**
 * Runtime-side tools shared by the Node, Bun and Deno entry points: the test pattern wiring, the
 * publish command and the capacity self-test.
 */

import type { Logger } from '../core/log.ts';
import type { Service } from '../server/service.ts';
import { TestPatternSource } from '../testpattern/index.ts';
import { napiProvider } from '../webcodecs/index.ts';

export { runBench } from './bench.ts';
export { runPublish } from './publish.ts';

/** Starts the built-in test pattern publishing `broadcast` into `service`; returns its stop function. */
export async function startTestPattern(
  service: Service,
  broadcast: string,
  logger: Logger,
): Promise<() => Promise<void>> {
  const provider = await napiProvider();
  const connection = service.ingest.open(broadcast, 'internal');
  const source = new TestPatternSource({
    codecs: provider.codecs,
    publish: (events) => connection.publishEvents(events),
    label: broadcast,
    logger,
  });
  // The test pattern never idles out: it publishes every frame.
  await source.start();
  return async () => {
    await source.stop();
    connection.end('eof');
  };
}
