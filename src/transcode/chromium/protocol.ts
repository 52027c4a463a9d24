/**
 * The wire format between the service and the Chromium page: one binary WebSocket message per
 * call or result, a fixed 32-byte header and an optional payload. Only compressed media and small
 * configurations travel; decoded frames stay in the page and are named by id. Each decoder and
 * encoder runs in a page worker the service names (a configure's `ref`); a frame id is its worker's.
 *
 * Header (little-endian): op u8 · flags u8 · reserved u16 · id u32 (decoder or encoder) · seq u32
 * (the call a result answers) · ref u32 (a frame id) · timestampUs f64 · durationUs f64.
 */

/** Message kinds. Service -> page: configure, decode, encode, flush, close, release, kill, fault. Page -> service: the rest. */
export const OP = {
  /** `ref` names the worker; payload: JSON `{codec, description: number[], codedWidth?, codedHeight?}`. */
  decoderConfigure: 1,
  /** Payload: one access unit; flags: keyframe. */
  decode: 2,
  decoderFlush: 3,
  decoderClose: 4,
  /** `ref` names the worker; payload: JSON `{codec, width, height, bitrate, framerate, hardwareAcceleration}`. */
  encoderConfigure: 5,
  /** `ref` names a frame of the encoder's worker; flags: keyframe. */
  encode: 6,
  encoderFlush: 7,
  encoderClose: 8,
  /** The service holds no more handles of frame `ref` of worker `id`. */
  frameRelease: 9,
  /** Payload: JSON `{hardwareAcceleration}`; answered by `probeResult`. */
  probe: 10,
  /** Worker `id` hangs: end it (answered by `workerGone`). */
  workerKill: 11,
  /** Test only, honoured by a page launched with test hooks: worker `id` throws (payload `throw`) or hangs (`hang`). */
  testFault: 12,
  /** The call `seq` was accepted (its codec's queue is below its bound) or finished (flush). */
  done: 64,
  /** A decoded frame `ref` of decoder `id`. */
  frame: 65,
  /**
   * An encoded chunk of encoder `id`; flags: keyframe, config. Payload: with `config`, a u16
   * codec-string length, the codec string, a u32 description length and the description (avcC)
   * first; then the access unit (length-prefixed NAL units).
   */
  chunk: 66,
  /** Decoder or encoder `id` failed (or call `seq` did); payload: the message (UTF-8). */
  error: 67,
  /** Payload: JSON `{hardware: boolean, error?: string}`. */
  probeResult: 68,
  /** Worker `id` was ended (it threw, or hung): its decoders, encoders and frames are gone; payload: why. */
  workerGone: 69,
} as const;

/** Flag bits. */
export const FLAG = { keyframe: 1, config: 2 } as const;

/** Size of the fixed header, bytes. */
export const HEADER_BYTES = 32;

/** One decoded message. */
export type Message = {
  op: number;
  flags: number;
  id: number;
  seq: number;
  ref: number;
  timestampUs: number;
  durationUs: number;
  payload: Uint8Array;
};

/** Header fields of a message to send (absent numbers are 0). */
export type MessageHead = Partial<Omit<Message, 'payload'>> & { op: number };

/** One message: header then `payload`. */
export function encodeMessage(head: MessageHead, payload?: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + (payload?.length ?? 0));
  const view = new DataView(bytes.buffer);
  view.setUint8(0, head.op);
  view.setUint8(1, head.flags ?? 0);
  view.setUint32(4, head.id ?? 0, true);
  view.setUint32(8, head.seq ?? 0, true);
  view.setUint32(12, head.ref ?? 0, true);
  view.setFloat64(16, head.timestampUs ?? 0, true);
  view.setFloat64(24, head.durationUs ?? 0, true);
  if (payload !== undefined) bytes.set(payload, HEADER_BYTES);
  return bytes;
}

/** Reads one message; undefined when `bytes` is shorter than a header. */
export function decodeMessage(bytes: Uint8Array): Message | undefined {
  if (bytes.length < HEADER_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    op: view.getUint8(0),
    flags: view.getUint8(1),
    id: view.getUint32(4, true),
    seq: view.getUint32(8, true),
    ref: view.getUint32(12, true),
    timestampUs: view.getFloat64(16, true),
    durationUs: view.getFloat64(24, true),
    payload: bytes.subarray(HEADER_BYTES),
  };
}

/** A JSON payload. */
export function jsonPayload(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** A `chunk` payload: with a decoder configuration (the session's first chunk), its codec string and avcC first. */
export function chunkPayload(
  data: Uint8Array,
  config?: { codec?: string | undefined; description: Uint8Array },
): Uint8Array {
  if (config === undefined) return data;
  const codec = new TextEncoder().encode(config.codec ?? '');
  const avcC = config.description;
  const payload = new Uint8Array(6 + codec.length + avcC.length + data.length);
  const view = new DataView(payload.buffer);
  view.setUint16(0, codec.length, true);
  payload.set(codec, 2);
  view.setUint32(2 + codec.length, avcC.length, true);
  payload.set(avcC, 6 + codec.length);
  payload.set(data, 6 + codec.length + avcC.length);
  return payload;
}

/** The decoder configuration and access unit of a `chunk` payload (`chunkPayload` read back). */
export function readChunkPayload(
  flags: number,
  payload: Uint8Array,
): { data: Uint8Array; decoderConfig: { codec: string; description: Uint8Array } | undefined } {
  if ((flags & FLAG.config) === 0) return { data: payload.slice(), decoderConfig: undefined };
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const codecLength = view.getUint16(0, true);
  const codec = new TextDecoder().decode(payload.subarray(2, 2 + codecLength));
  const descriptionLength = view.getUint32(2 + codecLength, true);
  const start = 6 + codecLength;
  return {
    decoderConfig: { codec, description: payload.slice(start, start + descriptionLength) },
    data: payload.slice(start + descriptionLength),
  };
}
