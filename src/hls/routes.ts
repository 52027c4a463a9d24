/** URL layout of `/hls/<broadcast>/<file>` and the response shapes (headers, JSON errors) of the bridge. */

import { errorStatus } from '../core/error-codes.ts';
import type { TrackKind } from './track-media.ts';

/**
 * A framework-free HTTP response: the server copies it onto its own response type. Headers objects
 * are shared between responses (frozen), and one rendered playlist answers every request woken by
 * the same change with the same response object.
 */
export type HlsResponse = {
  readonly status: number;
  readonly headers: HeaderRecord;
  readonly body: string | Uint8Array;
};

/** Stable codes of HLS error bodies. */
export type HlsErrorCode =
  | 'hls.not_found'
  | 'hls.bad_request'
  | 'hls.unavailable'
  | 'hls.aborted'
  | 'hls.token_required'
  | 'hls.token_malformed'
  | 'hls.token_invalid'
  | 'hls.token_expired';

/** A file under a broadcast's directory. */
export type HlsFile =
  | { readonly kind: 'master' }
  | { readonly kind: 'playlist'; readonly track: TrackKind }
  /** `init.mp4` (current, `version` undefined) or `init-<version>.mp4`. */
  | { readonly kind: 'init'; readonly track: TrackKind; readonly version: number | undefined }
  | { readonly kind: 'segment'; readonly track: TrackKind; readonly msn: number }
  | { readonly kind: 'part'; readonly track: TrackKind; readonly msn: number; readonly index: number };

/** Prefix every playback path starts with. */
export const HLS_PATH_PREFIX = '/hls/';

const CORS = { 'Access-Control-Allow-Origin': '*' } as const;
/** Cache-Control of immutable media (segments, parts, versioned inits). */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Content type of playlists. */
export const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';

type HeaderRecord = Readonly<Record<string, string>>;
const PLAYLIST_HEADERS: HeaderRecord = Object.freeze({
  ...CORS,
  'Content-Type': PLAYLIST_TYPE,
  'Cache-Control': 'no-cache',
});
const mediaHeaders = (contentType: string, cacheControl: string): HeaderRecord =>
  Object.freeze({ ...CORS, 'Content-Type': contentType, 'Cache-Control': cacheControl });
const MEDIA_HEADERS: Record<TrackKind, { immutable: HeaderRecord; live: HeaderRecord }> = {
  video: { immutable: mediaHeaders('video/mp4', IMMUTABLE), live: mediaHeaders('video/mp4', 'no-cache') },
  audio: { immutable: mediaHeaders('audio/mp4', IMMUTABLE), live: mediaHeaders('audio/mp4', 'no-cache') },
};

const NUMBER = '(0|[1-9][0-9]{0,14})';
const FILE_PATTERNS: Array<[RegExp, (m: RegExpMatchArray) => HlsFile]> = [
  [/^master\.m3u8$/, () => ({ kind: 'master' })],
  [/^playlist\.m3u8$/, () => ({ kind: 'playlist', track: 'video' })],
  [/^audio\.m3u8$/, () => ({ kind: 'playlist', track: 'audio' })],
  [
    new RegExp(`^(audio-)?init(?:-${NUMBER})?\\.mp4$`),
    (m) => ({ kind: 'init', track: trackOf(m[1]), version: m[2] === undefined ? undefined : Number(m[2]) }),
  ],
  [new RegExp(`^(audio-)?seg-${NUMBER}\\.m4s$`), (m) => ({ kind: 'segment', track: trackOf(m[1]), msn: Number(m[2]) })],
  [
    new RegExp(`^(audio-)?part-${NUMBER}-${NUMBER}\\.m4s$`),
    (m) => ({ kind: 'part', track: trackOf(m[1]), msn: Number(m[2]), index: Number(m[3]) }),
  ],
];

function trackOf(prefix: string | undefined): TrackKind {
  return prefix === undefined ? 'video' : 'audio';
}

/** Parses a file name of the layout, or undefined when it is none of ours. */
export function parseHlsFile(name: string): HlsFile | undefined {
  for (const [pattern, build] of FILE_PATTERNS) {
    const match = name.match(pattern);
    if (match !== null) return build(match);
  }
  return undefined;
}

/**
 * Splits `/hls/<broadcast>/<file>` (the `/hls/` prefix is optional, a query string is ignored) into
 * the broadcast directory and the file name, percent-decoded. Undefined when malformed.
 */
export function splitHlsPath(path: string): { broadcast: string; file: string } | undefined {
  let rest = path;
  const query = rest.indexOf('?');
  if (query !== -1) rest = rest.slice(0, query);
  if (rest.startsWith(HLS_PATH_PREFIX)) rest = rest.slice(HLS_PATH_PREFIX.length);
  else if (rest.startsWith('/')) rest = rest.slice(1);
  const segments = rest.split('/');
  if (segments.length < 2) return undefined;
  const escaped = rest.includes('%');
  const decoded: string[] = [];
  for (const segment of segments) {
    let text = segment;
    if (escaped) {
      try {
        text = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
    }
    if (text === '' || text === '.' || text === '..' || text.includes('/')) return undefined;
    decoded.push(text);
  }
  const file = decoded.pop()!;
  return { broadcast: decoded.join('/'), file };
}

/** The URI of `target`'s file `file` relative to a playlist in `from`'s directory (both broadcast names). */
export function relativeUri(from: string, target: string, file: string): string {
  const a = from.split('/');
  const b = target.split('/');
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) common += 1;
  const up = a.slice(common).map(() => '..');
  const down = b.slice(common).map(encodeURIComponent);
  return [...up, ...down, file].join('/');
}

/** A JSON error response `{ "error": { "code", "message" } }` with CORS, its status from the error catalogue. */
export function errorResponse(code: HlsErrorCode, message: string): HlsResponse {
  return {
    status: errorStatus(code),
    headers: { ...CORS, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' },
    body: JSON.stringify({ error: { code, message } }),
  };
}

/** A playlist response (never cached: blocking reloads and live edges change it). */
export function playlistResponse(text: string): HlsResponse {
  return { status: 200, headers: PLAYLIST_HEADERS, body: text };
}

/** A media response; `immutable` for segments, parts and versioned inits, else revalidated each time. */
export function mediaResponse(track: TrackKind, bytes: Uint8Array, immutable: boolean): HlsResponse {
  const headers = MEDIA_HEADERS[track];
  return { status: 200, headers: immutable ? headers.immutable : headers.live, body: bytes };
}
