/**
 * Runtime-side tools shared by the Node, Bun and Deno entry points: the test pattern wiring, the
 * publish command and the capacity self-test.
 */

import { Worker } from 'node:worker_threads';
import type { ParserEvent } from '../container/index.ts';
import type { Logger } from '../core/log.ts';
import type { Service } from '../server/service.ts';
import type { TestPatternWorkerData, TestPatternWorkerMessage } from './test-pattern-worker.ts';
import { workerEntry } from './worker-entry.ts';

export { runBench } from './bench.ts';
export { runPublish } from './publish.ts';

/** How long a stopping test pattern may take to flush its encoders before its worker is terminated. */
const STOP_TIMEOUT_MS = 5000;

/**
 * Starts the built-in test pattern publishing `broadcast` into `service`; returns its stop function.
 * The pattern runs in a worker thread (test-pattern-worker.ts) so that drawing and encoding it never
 * holds up the server's answers; its events are published here, in order.
 */
export async function startTestPattern(
  service: Service,
  broadcast: string,
  logger: Logger,
  size: { width: number; height: number } = { width: 1280, height: 720 },
): Promise<() => Promise<void>> {
  const connection = service.ingest.open(broadcast, 'internal');
  const workerData: TestPatternWorkerData = { label: broadcast, ...size };
  const worker = new Worker(workerEntry('test-pattern-worker'), { eval: true, workerData });
  let stopped: (() => void) | undefined;
  const done = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  worker.on('message', (message: TestPatternWorkerMessage) => {
    if (message.type === 'events') connection.publishEvents(message.events as ParserEvent[]);
    else if (message.type === 'log') logger[message.level](message.message, message.fields);
    else stopped?.();
  });
  worker.on('error', (error) => {
    logger.error('test pattern stopped', { error: error.message });
    stopped?.();
  });
  worker.on('exit', () => stopped?.());
  // The test pattern never idles out: it publishes every frame.
  return async () => {
    worker.postMessage({ type: 'stop' });
    const timer = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
    await done;
    clearTimeout(timer);
    await worker.terminate();
    connection.end('eof');
  };
}
