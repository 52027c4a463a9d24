/**
 * Worker entry of the built-in test pattern: draws, encodes and packages the pattern off the
 * server's JavaScript thread and posts each batch of parser events to the parent
 * (`startTestPattern` in tools.ts). Drawing a 1280x720 frame and converting it for the encoder
 * takes milliseconds of synchronous work per frame; on the server's thread that delayed every
 * HTTP answer (a blocking playlist reload, a part) by as much.
 *
 * Messages to the parent: `{ type: 'events', events }`, `{ type: 'log', level, message, fields }`,
 * `{ type: 'stopped' }`. From the parent: `{ type: 'stop' }`.
 */

import { parentPort, workerData } from 'node:worker_threads';
import type { LogFields, Logger, LogLevel } from '../core/log.ts';
import { TestPatternSource } from '../testpattern/index.ts';
import { napiProvider } from '../webcodecs/index.ts';

/** What the parent passes as `workerData`. */
export type TestPatternWorkerData = { label: string; width: number; height: number };

/** A message from the worker. */
export type TestPatternWorkerMessage =
  | { type: 'events'; events: unknown[] }
  | { type: 'log'; level: LogLevel; message: string; fields?: LogFields }
  | { type: 'stopped' };

const port = parentPort;
if (port === null) throw new Error('test-pattern-worker.ts runs as a worker thread only');
const post = (message: TestPatternWorkerMessage): void => port.postMessage(message);

const logAt =
  (level: LogLevel) =>
  (message: string, fields?: LogFields): void =>
    post({ type: 'log', level, message, ...(fields === undefined ? {} : { fields }) });
const logger: Logger = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

const { label, width, height } = workerData as TestPatternWorkerData;
/** 4 Mb/s at 1280x720, scaled with the picture's area. */
const videoBitrateBps = Math.max(200_000, Math.round((4_000_000 * width * height) / (1280 * 720)));
const provider = await napiProvider();
const source = new TestPatternSource({
  codecs: provider.codecs,
  publish: (events) => post({ type: 'events', events }),
  label,
  width,
  height,
  videoBitrateBps,
  logger,
});
port.on('message', (message: { type: string }) => {
  if (message.type !== 'stop') return;
  void source.stop().finally(() => {
    post({ type: 'stopped' });
    port.close();
  });
});
await source.start();
