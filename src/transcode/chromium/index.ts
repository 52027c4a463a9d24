/**
 * The chromium backend's codecs, one job per file: protocol.ts (the binary messages between the
 * service and the page) -> page.ts (the page: one worker per source holds its decoder, its rungs'
 * encoders and its decoded frames; the main thread relays) -> codecs.ts (`VideoCodecs` on the
 * service side: counted frame handles, which worker each codec runs in, calls and their answers, a
 * worker that fails or hangs fails its source's codecs, a page that goes fails everything on it).
 *
 * The service side (codecs.ts) also drives the threads backend, whose codec threads run the same
 * protocol over the in-process addon (src/transcode/threads/codec-host.ts).
 *
 * Not here: launching and relaunching the browser and its loopback server (src/runtime/chromium.ts,
 * it touches processes and sockets), choosing the backend and the encoder policy
 * (src/runtime/chromium-codecs.ts).
 */

export {
  ChromiumCodecs,
  type ChromiumCodecsOptions,
  type ChromiumEncoderChoice,
  ChromiumFrame,
  type PageConnection,
} from './codecs.ts';
export { PAGE_HTML } from './page.ts';
export {
  chunkPayload,
  decodeMessage,
  encodeMessage,
  FLAG,
  HEADER_BYTES,
  type Message,
  type MessageHead,
  OP,
} from './protocol.ts';
