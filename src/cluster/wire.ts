/**
 * One fragment as NATS messages and back. The payload (`moof`+`mdat`) is the message body; its
 * timing and flags travel in one header. A sync point (a fragment a reader may start at) carries
 * the track's meta in headers and its init segment in front of the payload, so a reader that
 * starts there needs nothing else. A body larger than the server's max payload is split into
 * chunks on the track's chunk subject and put back together whole by `Reassembler`.
 */

import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { concatBytes } from '../core/bytes.ts';
import type { Fragment, FragmentMeta } from '../fragment/fragment.ts';
import type { TrackSubjects } from './names.ts';
import type { SegmentMark } from './segment-marker.ts';

const H_FRAGMENT = 'Lvqr-Fragment';
const H_META = 'Lvqr-Meta';
const H_CODEC = 'Lvqr-Codec';
const H_TIMESCALE = 'Lvqr-Timescale';
const H_FRAME_RATE = 'Lvqr-Frame-Rate';
const H_INIT = 'Lvqr-Init';
const H_CHUNKS = 'Lvqr-Chunks';
const H_CHUNK = 'Lvqr-Chunk';
const H_SEGMENT = 'Lvqr-Segment';

/** Room left in each message for its headers, below the server's max payload. */
export const HEADER_ROOM_BYTES = 4096;

/** The meta a sync point carries, with the id that tells a reader whether it changed. */
export type WireMeta = { readonly id: string; readonly meta: FragmentMeta };

/** One message to publish. */
export type WireMessage = { readonly subject: string; readonly headers: MsgHdrs; readonly data: Uint8Array };

/**
 * What a reader gets back: the fragment, at a sync point the meta in effect, and on a keyframe that
 * starts an LL-HLS segment (a source's video) that segment's numbering.
 */
export type Decoded = {
  readonly fragment: Fragment;
  readonly meta: WireMeta | undefined;
  readonly segment: SegmentMark | undefined;
};

/** A segment mark from its header: `msn discontinuitySequence [anchorDateMs anchorTimeS]`. */
function decodeMark(text: string): SegmentMark | undefined {
  const mark = text.split(' ').map(Number);
  const [msn, discontinuitySequence, dateMs, timeS] = mark;
  if (mark.length !== 2 && mark.length !== 4) return undefined;
  if (![msn, discontinuitySequence].every((n) => Number.isInteger(n) && n! >= 0)) return undefined;
  const numbering = { msn: msn!, discontinuitySequence: discontinuitySequence! };
  if (mark.length === 2 || !Number.isFinite(dateMs) || !Number.isFinite(timeS)) return numbering;
  return { ...numbering, dateAnchor: { dateMs: dateMs!, timeS: timeS! } };
}

/** The segment mark a message carries (a keyframe that starts a segment), or undefined. */
export function segmentMarkOf(h: MsgHdrs | undefined): SegmentMark | undefined {
  const text = h?.get(H_SEGMENT) ?? '';
  return text === '' ? undefined : decodeMark(text);
}

function flagsText(f: Fragment['flags']): string {
  return `${f.keyframe ? 1 : 0}${f.independent ? 1 : 0}${f.discardable ? 1 : 0}`;
}

/**
 * The messages of `fragment` on `subjects`; `meta` makes it a sync point, `segment` marks the start
 * of an LL-HLS segment. Each message body is at most `maxBodyBytes`.
 */
export function encodeFragment(
  subjects: TrackSubjects,
  fragment: Fragment,
  meta: WireMeta | undefined,
  maxBodyBytes: number,
  segment?: SegmentMark,
): WireMessage[] {
  const h = headers();
  if (segment !== undefined) {
    const anchor = segment.dateAnchor === undefined ? '' : ` ${segment.dateAnchor.dateMs} ${segment.dateAnchor.timeS}`;
    h.set(H_SEGMENT, `${segment.msn} ${segment.discontinuitySequence}${anchor}`);
  }
  h.set(
    H_FRAGMENT,
    [
      fragment.dts,
      fragment.pts,
      fragment.duration,
      fragment.groupId,
      fragment.objectId,
      fragment.priority,
      flagsText(fragment.flags),
      fragment.ingestTimeMs,
    ].join(' '),
  );
  let body = fragment.payload;
  if (meta !== undefined) {
    const init = meta.meta.initSegment ?? new Uint8Array(0);
    h.set(H_META, meta.id);
    h.set(H_CODEC, meta.meta.codec);
    h.set(H_TIMESCALE, String(meta.meta.timescale));
    if (meta.meta.frameRate !== undefined) h.set(H_FRAME_RATE, String(meta.meta.frameRate));
    h.set(H_INIT, String(init.byteLength));
    body = concatBytes([init, fragment.payload]);
  }
  const subject = meta === undefined ? subjects.fragment : subjects.sync;
  if (body.byteLength <= maxBodyBytes) return [{ subject, headers: h, data: body }];
  const count = Math.ceil(body.byteLength / maxBodyBytes);
  h.set(H_CHUNKS, String(count));
  const out: WireMessage[] = [{ subject, headers: h, data: body.subarray(0, maxBodyBytes) }];
  for (let i = 1; i < count; i++) {
    const ch = headers();
    ch.set(H_CHUNK, `${i}/${count}`);
    out.push({ subject: subjects.chunk, headers: ch, data: body.subarray(i * maxBodyBytes, (i + 1) * maxBodyBytes) });
  }
  return out;
}

/** A message as a reader sees it. */
export type ReceivedMessage = {
  readonly subject: string;
  readonly headers: MsgHdrs | undefined;
  readonly data: Uint8Array;
};

/**
 * Puts fragments back together from messages in stream order. A message that does not fit (a
 * chunk without its start, a start whose chunks did not all come) is dropped and counted; the
 * reader decides what a loss means (it waits for the next sync point).
 */
export class Reassembler {
  readonly #trackId: string;
  #pending: { head: ReceivedMessage; parts: Uint8Array[]; count: number } | undefined;
  #dropped = 0;

  /** A reassembler for fragments of `trackId`. */
  constructor(trackId: string) {
    this.#trackId = trackId;
  }

  /** Messages dropped because they did not fit together. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Forgets a half-received fragment (after a gap in the stream). */
  reset(): void {
    if (this.#pending !== undefined) this.#dropped += 1;
    this.#pending = undefined;
  }

  /** Takes the next message; returns a fragment once one is whole, `undefined` otherwise. */
  push(message: ReceivedMessage): Decoded | undefined {
    const chunk = message.headers?.get(H_CHUNK) ?? '';
    if (chunk !== '') {
      const [index, count] = chunk.split('/').map(Number);
      const p = this.#pending;
      if (p === undefined || count !== p.count || index !== p.parts.length) {
        this.reset();
        this.#dropped += 1;
        return undefined;
      }
      p.parts.push(message.data);
      if (p.parts.length < p.count) return undefined;
      this.#pending = undefined;
      return this.#decode(p.head, concatBytes(p.parts));
    }
    if (this.#pending !== undefined) this.reset();
    const count = Number(message.headers?.get(H_CHUNKS) || '1');
    if (count > 1) {
      this.#pending = { head: message, parts: [message.data], count };
      return undefined;
    }
    return this.#decode(message, message.data);
  }

  #decode(head: ReceivedMessage, body: Uint8Array): Decoded | undefined {
    const h = head.headers;
    const fields = (h?.get(H_FRAGMENT) ?? '').split(' ');
    if (fields.length !== 8) {
      this.#dropped += 1;
      return undefined;
    }
    const [dts, pts, duration, groupId, objectId, priority, flags, ingest] = fields as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    let payload = body;
    let meta: WireMeta | undefined;
    const metaId = h?.get(H_META) ?? '';
    if (metaId !== '') {
      const initLength = Number(h?.get(H_INIT) ?? '0');
      const frameRate = h?.get(H_FRAME_RATE) ?? '';
      const m: { -readonly [K in keyof FragmentMeta]: FragmentMeta[K] } = {
        codec: h?.get(H_CODEC) ?? '',
        timescale: Number(h?.get(H_TIMESCALE) ?? '0'),
        // A copy: the init outlives the message.
        initSegment: initLength > 0 ? new Uint8Array(body.subarray(0, initLength)) : undefined,
      };
      if (frameRate !== '') m.frameRate = Number(frameRate);
      meta = { id: metaId, meta: m };
      payload = body.subarray(initLength);
    }
    const segment = decodeMark(h?.get(H_SEGMENT) ?? '');
    // A plain Uint8Array view (the client hands out Node Buffers).
    payload = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
    return {
      fragment: {
        trackId: this.#trackId,
        dts: Number(dts),
        pts: Number(pts),
        duration: Number(duration),
        groupId: Number(groupId),
        objectId: Number(objectId),
        priority: Number(priority),
        flags: { keyframe: flags[0] === '1', independent: flags[1] === '1', discardable: flags[2] === '1' },
        payload,
        ingestTimeMs: Number(ingest),
      },
      meta,
      segment,
    };
  }
}
