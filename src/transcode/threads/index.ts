/**
 * The threads backend's far side: `hostCodecs` serves the codec protocol (../chromium/protocol.ts)
 * over in-process codecs, in a worker thread per source. Starting the threads and binding them to
 * the service side (`ChromiumCodecs`) is src/runtime/codec-threads.ts; the worker entry is
 * src/runtime/codec-worker.ts.
 */

export { type CodecHostOptions, hostCodecs } from './codec-host.ts';
