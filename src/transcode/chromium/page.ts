/**
 * The page the Chromium backend loads, once per page worker (each page a renderer process of its
 * own): it connects back to the service over a WebSocket and runs the source's decoder and its
 * rungs' encoders in a dedicated Worker (the service names the worker in every configure message),
 * so sources share no thread and no process, and a worker that throws or hangs is ended without
 * touching the others. The page's main thread only routes
 * messages between the socket and the workers (transferring their buffers) and runs the hardware
 * probe. Decoded frames stay in the worker that decoded them (the service holds ids); only
 * compressed chunks and small results go back (`protocol.ts`). An encoder configured smaller than
 * the frames it gets scales them itself (Chromium's encoders scale a frame whose visible size
 * differs from the configured one, with libyuv's box filter).
 */

import { chunkPayload, decodeMessage, encodeMessage, FLAG, HEADER_BYTES, OP } from './protocol.ts';

/** What the page and its workers share: the protocol (its message and chunk writers) and the error message helper. */
const COMMON_SCRIPT = `
'use strict';
const OP = ${JSON.stringify(OP)};
const FLAG = ${JSON.stringify(FLAG)};
const HEADER_BYTES = ${HEADER_BYTES};
const encodeMessage = ${encodeMessage.toString()};
const decodeMessage = ${decodeMessage.toString()};
const chunkPayload = ${chunkPayload.toString()};
const text = new TextEncoder();
function json(payload) {
  return JSON.parse(new TextDecoder().decode(payload));
}
function fail(id, seq, error) {
  send({ op: OP.error, id, seq }, text.encode(String((error && error.message) || error)));
}
`;

/**
 * One source's worker: its decoder, its rungs' encoders and the frames it decoded. Messages come
 * from the page as the socket delivered them and go back as wire messages (buffers transferred);
 * the string `idle` says it holds no codec and no frame any more (the page may end it).
 */
const WORKER_SCRIPT = `${COMMON_SCRIPT}
/** Calls a codec takes before it waits for room. */
const MAX_QUEUE = 4;
const decoders = new Map();
const encoders = new Map();
const frames = new Map();
let nextFrame = 1;

function send(head, payload) {
  const bytes = encodeMessage(head, payload);
  postMessage(bytes.buffer, [bytes.buffer]);
}
function idleCheck() {
  if (decoders.size === 0 && encoders.size === 0 && frames.size === 0) postMessage('idle');
}
/** Acknowledges call seq once the codec's queue is below its bound. */
function accept(entry, seq, queueSize) {
  if (queueSize() < MAX_QUEUE && entry.waiting.length === 0) send({ op: OP.done, id: entry.id, seq });
  else entry.waiting.push(seq);
}
function drain(entry, queueSize) {
  while (entry.waiting.length > 0 && queueSize() < MAX_QUEUE) send({ op: OP.done, id: entry.id, seq: entry.waiting.shift() });
}
function release(entry) {
  for (const seq of entry.waiting.splice(0)) send({ op: OP.done, id: entry.id, seq });
}

/** Creates and configures a decoder or encoder (Codec) for message m; queueKey names its queue size. */
function open(map, m, Codec, queueKey, output, config) {
  const entry = { id: m.id, waiting: [] };
  entry.queueSize = () => entry.codec[queueKey];
  entry.codec = new Codec({
    output,
    error(error) {
      release(entry);
      fail(m.id, 0, error);
    },
  });
  entry.codec.addEventListener('dequeue', () => drain(entry, entry.queueSize));
  map.set(m.id, entry);
  entry.codec.configure(config);
}

function configureDecoder(m) {
  const config = json(m.payload);
  const output = (frame) => {
    const ref = nextFrame++;
    frames.set(ref, frame);
    send({ op: OP.frame, id: m.id, ref, timestampUs: frame.timestamp, durationUs: frame.duration || 0 });
  };
  open(decoders, m, VideoDecoder, 'decodeQueueSize', output, {
    codec: config.codec,
    description: new Uint8Array(config.description),
    codedWidth: config.codedWidth,
    codedHeight: config.codedHeight,
    optimizeForLatency: true,
  });
}

/** The payload of a browser chunk: its bytes, with the session's decoder config first (protocol.ts, chunkPayload). */
function browserChunkPayload(chunk, metadata) {
  const data = new Uint8Array(chunk.byteLength);
  chunk.copyTo(data);
  const config = metadata && metadata.decoderConfig;
  const description = config && config.description;
  if (description === undefined) return data;
  const avcC = description instanceof ArrayBuffer ? new Uint8Array(description) : new Uint8Array(description.buffer, description.byteOffset, description.byteLength);
  return chunkPayload(data, { codec: config.codec, description: avcC });
}

/** Scales frame to the encoder's size on an OffscreenCanvas with high-quality smoothing. */
function canvasScaled(entry, frame) {
  if (entry.canvas === undefined) {
    entry.canvas = new OffscreenCanvas(entry.width, entry.height);
    entry.context = entry.canvas.getContext('2d', { alpha: false });
    entry.context.imageSmoothingEnabled = true;
    entry.context.imageSmoothingQuality = 'high';
  }
  entry.context.drawImage(frame, 0, 0, entry.width, entry.height);
  return new VideoFrame(entry.canvas, { timestamp: frame.timestamp, duration: frame.duration || undefined });
}

function configureEncoder(m) {
  const config = json(m.payload);
  const output = (chunk, metadata) => {
    const hasConfig = metadata && metadata.decoderConfig && metadata.decoderConfig.description !== undefined;
    const flags = (chunk.type === 'key' ? FLAG.keyframe : 0) | (hasConfig ? FLAG.config : 0);
    send({ op: OP.chunk, id: m.id, flags, timestampUs: chunk.timestamp }, browserChunkPayload(chunk, metadata));
  };
  open(encoders, m, VideoEncoder, 'encodeQueueSize', output, {
    codec: config.codec,
    width: config.width,
    height: config.height,
    bitrate: config.bitrate,
    framerate: config.framerate,
    hardwareAcceleration: config.hardwareAcceleration,
    avc: { format: 'avc' },
    latencyMode: 'quality',
  });
  const entry = encoders.get(m.id);
  entry.scale = config.scale;
  entry.width = config.width;
  entry.height = config.height;
}

async function flush(entry, seq) {
  try {
    await entry.codec.flush();
    send({ op: OP.done, id: entry.id, seq });
  } catch (error) {
    fail(entry.id, seq, error);
  }
}

function close(map, id) {
  const entry = map.get(id);
  map.delete(id);
  if (entry === undefined) return;
  entry.waiting.length = 0;
  if (entry.codec.state !== 'closed') entry.codec.close();
}


/** Test-only faults (the page forwards them only when launched with test hooks): an uncaught error, or a busy loop. */
function testFault(how) {
  if (how === 'hang') for (;;);
  setTimeout(() => {
    throw new Error('test fault');
  });
}

function handle(m) {
  switch (m.op) {
    case OP.decoderConfigure: return configureDecoder(m);
    case OP.encoderConfigure: return configureEncoder(m);
    case OP.decode: {
      const entry = decoders.get(m.id);
      if (entry === undefined) return fail(m.id, m.seq, 'no such decoder');
      entry.codec.decode(new EncodedVideoChunk({
        type: m.flags & FLAG.keyframe ? 'key' : 'delta',
        timestamp: m.timestampUs,
        duration: m.durationUs,
        data: m.payload,
      }));
      return accept(entry, m.seq, entry.queueSize);
    }
    case OP.encode: {
      const entry = encoders.get(m.id);
      const frame = frames.get(m.ref);
      if (entry === undefined || frame === undefined) return fail(m.id, m.seq, entry === undefined ? 'no such encoder' : 'no such frame');
      const keyFrame = (m.flags & FLAG.keyframe) !== 0;
      if (entry.scale === 'canvas' && (frame.displayWidth !== entry.width || frame.displayHeight !== entry.height)) {
        const scaled = canvasScaled(entry, frame);
        entry.codec.encode(scaled, { keyFrame });
        scaled.close();
      } else {
        entry.codec.encode(frame, { keyFrame });
      }
      return accept(entry, m.seq, entry.queueSize);
    }
    case OP.decoderFlush:
    case OP.encoderFlush: {
      const entry = (m.op === OP.decoderFlush ? decoders : encoders).get(m.id);
      if (entry === undefined) return fail(m.id, m.seq, 'closed');
      return void flush(entry, m.seq);
    }
    case OP.decoderClose:
      close(decoders, m.id);
      return idleCheck();
    case OP.encoderClose:
      close(encoders, m.id);
      return idleCheck();
    case OP.frameRelease: {
      const frame = frames.get(m.ref);
      frames.delete(m.ref);
      if (frame !== undefined) frame.close();
      return idleCheck();
    }
    case OP.testFault: return testFault(new TextDecoder().decode(m.payload));
  }
}


onmessage = (event) => {
  const m = decodeMessage(new Uint8Array(event.data));
  if (m === undefined) return;
  try {
    handle(m);
  } catch (error) {
    fail(m.id, m.seq, error);
  }
};
`;

/**
 * The page's main thread: the socket, the workers (created on the first configure that names
 * them, ended when idle or when they fail), the route of each codec to its worker, and the probe.
 */
const PAGE_SCRIPT = `${COMMON_SCRIPT}
const params = new URLSearchParams(location.search);
const testHooks = params.get('hooks') === '1';
const workerUrl = URL.createObjectURL(new Blob([${JSON.stringify(WORKER_SCRIPT)}], { type: 'text/javascript' }));
/** Worker id -> { worker, codecs: Set of codec ids }. */
const workers = new Map();
/** Codec id -> worker id. */
const routes = new Map();
/** Ids of ended workers: never created again. */
const ended = new Set();
const socket = new WebSocket('ws://' + location.host + '/link?token=' + encodeURIComponent(params.get('token')) + '&page=' + encodeURIComponent(params.get('page')));
socket.binaryType = 'arraybuffer';

function send(head, payload) {
  forward(encodeMessage(head, payload));
}
function forward(bytes) {
  if (socket.readyState === WebSocket.OPEN) socket.send(bytes);
}

/** Ends worker id; with a reason, its codecs failed and the service hears it. */
function end(id, reason) {
  const entry = workers.get(id);
  if (entry === undefined) return;
  workers.delete(id);
  ended.add(id);
  entry.worker.terminate();
  for (const codec of entry.codecs) routes.delete(codec);
  if (reason !== undefined) send({ op: OP.workerGone, id }, text.encode(reason));
}

function start(id) {
  const entry = { worker: new Worker(workerUrl, { name: 'source-' + id }), codecs: new Set() };
  workers.set(id, entry);
  entry.worker.onmessage = (event) => {
    if (event.data !== 'idle') return forward(event.data);
    if (entry.codecs.size === 0 && workers.get(id) === entry) end(id, undefined);
  };
  entry.worker.onerror = (event) => {
    event.preventDefault();
    end(id, 'its worker failed: ' + (event.message || 'error'));
  };
  entry.worker.onmessageerror = () => end(id, 'its worker got a message it could not read');
  return entry;
}

/** Encodes a few frames under the given preference: whether it works says whether it is available. */
async function probe(m) {
  const { hardwareAcceleration } = json(m.payload);
  const answer = (result) => send({ op: OP.probeResult, seq: m.seq }, text.encode(JSON.stringify(result)));
  try {
    const config = { codec: 'avc1.42001f', width: 320, height: 240, bitrate: 500000, framerate: 30, hardwareAcceleration, avc: { format: 'avc' } };
    const support = await VideoEncoder.isConfigSupported(config);
    if (!support.supported) return answer({ ok: false, error: 'configuration not supported' });
    let chunks = 0;
    let failure;
    const encoder = new VideoEncoder({ output: () => { chunks += 1; }, error: (e) => { failure = e; } });
    encoder.configure(config);
    const canvas = new OffscreenCanvas(320, 240);
    const context = canvas.getContext('2d');
    for (let i = 0; i < 3; i++) {
      context.fillStyle = 'rgb(' + i * 80 + ',100,50)';
      context.fillRect(0, 0, 320, 240);
      const frame = new VideoFrame(canvas, { timestamp: i * 33333 });
      encoder.encode(frame, { keyFrame: i === 0 });
      frame.close();
    }
    await encoder.flush();
    encoder.close();
    answer(failure === undefined && chunks === 3 ? { ok: true } : { ok: false, error: String(failure || chunks + ' chunks') });
  } catch (error) {
    answer({ ok: false, error: String((error && error.message) || error) });
  }
}


/** Routes one message from the service (buffer) to the worker it concerns. */
function route(m, buffer) {
  switch (m.op) {
    case OP.decoderConfigure:
    case OP.encoderConfigure: {
      if (ended.has(m.ref)) return fail(m.id, 0, 'its worker is gone');
      const entry = workers.get(m.ref) || start(m.ref);
      entry.codecs.add(m.id);
      routes.set(m.id, m.ref);
      return entry.worker.postMessage(buffer, [buffer]);
    }
    case OP.frameRelease: {
      const entry = workers.get(m.id);
      if (entry !== undefined) entry.worker.postMessage(buffer, [buffer]);
      return;
    }
    case OP.probe: return void probe(m);
    case OP.workerKill: return end(m.id, 'it left a call unanswered too long (hung)');
    case OP.testFault: {
      const entry = workers.get(m.id);
      if (testHooks && entry !== undefined) entry.worker.postMessage(buffer, [buffer]);
      return;
    }
  }
  const entry = workers.get(routes.get(m.id));
  if (entry === undefined) {
    if (m.op !== OP.decoderClose && m.op !== OP.encoderClose) fail(m.id, m.seq, 'no such decoder or encoder');
    return;
  }
  if (m.op === OP.decoderClose || m.op === OP.encoderClose) {
    entry.codecs.delete(m.id);
    routes.delete(m.id);
  }
  entry.worker.postMessage(buffer, [buffer]);
}

socket.onmessage = (event) => {
  const m = decodeMessage(new Uint8Array(event.data));
  if (m === undefined) return;
  try {
    route(m, event.data);
  } catch (error) {
    fail(m.id, m.seq, error);
  }
};
`;

/** The HTML of the page (the script inline; the workers' script is a blob it makes). */
export const PAGE_HTML = `<!doctype html><meta charset="utf-8"><title>lvqr-transcode codecs</title><script>${PAGE_SCRIPT}</script>`;
