/**
 * `PlaybackAccess`: playback tokens on the HLS layer. Every request needs `?exp=&sig=` signed for
 * its broadcast's source (a rung `<source>/<rendition>` is covered by its source's token), and
 * every playlist answered carries that same `exp=&sig=` on each URI it lists (variant and audio
 * playlists, EXT-X-MAP, parts, segments, preload hints, rendition reports), so a player that
 * loaded a signed master URL signs every later request without knowing about tokens. The LL-HLS
 * directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) are never passed on.
 */

import {
  isTokenFailure,
  type PlaybackTokenFailure,
  PlaybackVerifier,
  parsePlaybackToken,
} from '../core/playback-token.ts';
import { groupName, type HlsBroadcast } from './broadcast-table.ts';
import { errorResponse, type HlsResponse, PLAYLIST_TYPE } from './routes.ts';

const URI_ATTRIBUTE = /URI="([^"]*)"/g;

/** `uri` with `query` appended (`?` or `&`). */
function appendQuery(uri: string, query: string): string {
  return `${uri}${uri.includes('?') ? '&' : '?'}${query}`;
}

/** Playlist text with `query` on every URI line and every `URI="..."` attribute. */
export function withUriQuery(text: string, query: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (line.includes('URI="'))
        lines[i] = line.replace(URI_ATTRIBUTE, (_m, uri: string) => `URI="${appendQuery(uri, query)}"`);
    } else {
      lines[i] = appendQuery(line, query);
    }
  }
  return lines.join('\n');
}

/** Checks tokens and signs the playlists of the answers. */
export class PlaybackAccess {
  readonly #verifier: PlaybackVerifier;
  /** The signed copy of a shared playlist answer for the last query it was signed with. */
  readonly #signed = new WeakMap<HlsResponse, { query: string; response: HlsResponse }>();

  /** Access under `secret`; `now` (ms) defaults to `Date.now`. */
  constructor(secret: string, now?: () => number) {
    this.#verifier = new PlaybackVerifier(secret, now);
  }

  /**
   * The token query (`exp=..&sig=..`) of a request for `broadcast` (`b` when it exists), or the
   * error answer: 401 without a token, 400 malformed, 403 wrong or expired. A name that is not
   * served may be signed for itself or for its parent (a rung not yet started); it then gets 404.
   */
  async authorize(
    broadcast: string,
    b: HlsBroadcast | undefined,
    query: URLSearchParams | undefined,
  ): Promise<string | HlsResponse> {
    const token = parsePlaybackToken(query ?? new URLSearchParams());
    if (isTokenFailure(token)) return failure(token);
    const names = [b === undefined ? broadcast : groupName(b)];
    const slash = broadcast.lastIndexOf('/');
    if (b === undefined && slash > 0) names.push(broadcast.slice(0, slash));
    const checked = await this.#verifier.check(token, names);
    return typeof checked === 'string' ? token.query : failure(checked);
  }

  /** `response` with `query` on every URI when it is a playlist; other answers as they are. */
  sign(response: HlsResponse, query: string): HlsResponse {
    if (response.status !== 200 || typeof response.body !== 'string') return response;
    if (response.headers['Content-Type'] !== PLAYLIST_TYPE) return response;
    const cached = this.#signed.get(response);
    if (cached !== undefined && cached.query === query) return cached.response;
    const signed: HlsResponse = { ...response, body: withUriQuery(response.body, query) };
    this.#signed.set(response, { query, response: signed });
    return signed;
  }
}

function failure(f: PlaybackTokenFailure): HlsResponse {
  return errorResponse(f.code, f.message);
}
