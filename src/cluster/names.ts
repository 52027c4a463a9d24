/**
 * Names in NATS for what the cluster shares: a token for a broadcast or a track (safe as a subject
 * token, a KV key and a stream name), the stream and subjects of a track, and the KV buckets.
 */

/** The KV bucket of live nodes (one entry per node, refreshed by its heartbeat). */
export const NODES_BUCKET = 'lvqr_nodes';
/** The KV bucket of broadcast names and the ingest node that holds each. */
export const BROADCASTS_BUCKET = 'lvqr_broadcasts';
/** The KV bucket of tracks: who produces each, its codec and where its fragments go. */
export const TRACKS_BUCKET = 'lvqr_tracks';
/** The KV bucket of ladder leases: which transcode node runs each source's ladder. */
export const LEASES_BUCKET = 'lvqr_leases';
/** The KV bucket of each source video's last LL-HLS segment number (a new ingest node goes on from it). */
export const NUMBERING_BUCKET = 'lvqr_numbering';

const KEPT = /^[A-Za-z0-9-]$/;

/**
 * `text` as a token of `[A-Za-z0-9_-]`: letters, digits and `-` stay, every other UTF-8 byte
 * becomes `_` and two hex digits (`live/demo` -> `live_2fdemo`). Reversible and collision-free.
 */
export function tokenOf(text: string): string {
  let out = '';
  for (const ch of text) {
    if (KEPT.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of new TextEncoder().encode(ch)) out += `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The text a `tokenOf` token stands for. */
export function textOf(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '_') {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** The KV key of a (broadcast, track). */
export function trackKey(broadcast: string, track: string): string {
  return `${tokenOf(broadcast)}.${tokenOf(track)}`;
}

/** Where one track's fragments travel: its JetStream stream and subjects. */
export type TrackSubjects = {
  /** The memory stream holding the last seconds of the track. */
  readonly stream: string;
  /** Every subject of the track (the stream's subject filter). */
  readonly all: string;
  /** Sync points: a fragment a reader can start at, carrying the init segment. */
  readonly sync: string;
  /** Every other fragment. */
  readonly fragment: string;
  /** Chunks after the first of a message larger than the server's max payload. */
  readonly chunk: string;
};

/** The stream and subjects of (broadcast, track). */
export function trackSubjects(broadcast: string, track: string): TrackSubjects {
  const token = `${tokenOf(broadcast)}.${tokenOf(track)}`;
  const base = `lvqr.t.${token}`;
  return {
    stream: `LVQR_T_${token.replace('.', '__')}`,
    all: `${base}.>`,
    sync: `${base}.s`,
    fragment: `${base}.f`,
    chunk: `${base}.c`,
  };
}
