/**
 * Worker entry of a codec thread (`--transcode-backend threads`, codec-threads.ts): one source's
 * decoder, its rungs' encoders and its decoded frames, served over the codec protocol
 * (src/transcode/threads/codec-host.ts) through the in-process WebCodecs addon with the same
 * corrections as on the main thread. A call that waits on a codec's lock here holds up only this
 * source, and the server's thread never waits on a codec.
 *
 * Messages from the parent: wire messages (ArrayBuffer). To the parent: the string `ready` once
 * the addon is loaded, then wire messages. The service ends the thread when its source's last codec
 * closes (frames still held go with it).
 */

import { parentPort, workerData } from 'node:worker_threads';
import { decodeMessage, OP } from '../transcode/chromium/protocol.ts';
import { hostCodecs } from '../transcode/threads/codec-host.ts';
import { bindWebCodecs } from '../transcode/webcodecs-binding.ts';
import type { HardwareAccelerationPort } from '../webcodecs/index.ts';
import { napiProvider } from '../webcodecs/index.ts';

/** What the parent passes as `workerData`. */
export type CodecWorkerData = {
  hardwareAcceleration: HardwareAccelerationPort;
  /** Honour `OP.testFault` (tests only): throw an uncaught error, or hang. */
  testHooks?: boolean;
};

const port = parentPort;
if (port === null) throw new Error('codec-worker.ts runs as a worker thread only');
const { hardwareAcceleration, testHooks } = workerData as CodecWorkerData;
const provider = await napiProvider();
/** A quick collection, as each runtime offers one (Node and Deno with `--expose-gc`, Bun always). */
function minorGc(): (() => void) | undefined {
  const { gc, Bun } = globalThis as { gc?: (options?: unknown) => void; Bun?: { gc(force: boolean): void } };
  if (Bun !== undefined) return () => Bun.gc(false);
  return gc === undefined ? undefined : () => gc({ type: 'minor' });
}
const handle = hostCodecs(bindWebCodecs(provider.codecs, { backend: 'software', hardwareAcceleration }), {
  post: (bytes) => port.postMessage(bytes, [bytes.buffer as ArrayBuffer]),
  gc: minorGc(),
});

/** Test-only faults: an uncaught error, or a busy loop. */
function testFault(how: string): void {
  if (how === 'hang') for (;;);
  setTimeout(() => {
    throw new Error('test fault');
  });
}

port.on('message', (data: ArrayBuffer) => {
  const bytes = new Uint8Array(data);
  const message = testHooks === true ? decodeMessage(bytes) : undefined;
  if (message?.op === OP.testFault) testFault(new TextDecoder().decode(message.payload));
  else handle(bytes);
});
port.postMessage('ready');
