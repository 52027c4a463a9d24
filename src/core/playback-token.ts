/**
 * Playback tokens: `?exp=<unix seconds>&sig=<hex HMAC-SHA256 of "<broadcast>:<exp>">`. The
 * broadcast signed is always a source broadcast: its token also covers its rungs
 * (`<broadcast>/<rendition>`), whose playlists the master lists by relative URI. WebCrypto only
 * (`crypto.subtle`), so the same code signs and verifies on Node, Bun, Deno and in browsers;
 * signatures are checked by `crypto.subtle.verify`, which compares in constant time.
 */

/** The query parameters a token consists of; playlists pass exactly these on to every URI. */
export const PLAYBACK_TOKEN_PARAMS = ['exp', 'sig'] as const;

/** A signed token for one broadcast. */
export type PlaybackToken = {
  /** Expiry, unix seconds. */
  readonly exp: number;
  /** Lowercase hex HMAC-SHA256 of `"<broadcast>:<exp>"`. */
  readonly sig: string;
  /** `exp=<exp>&sig=<sig>`, to append to a playback URL. */
  readonly query: string;
};

/** Why a request's token was refused (codes of the error catalogue). */
export type PlaybackTokenFailure = {
  readonly code: 'hls.token_required' | 'hls.token_malformed' | 'hls.token_invalid' | 'hls.token_expired';
  readonly message: string;
};

/** A token as read from a query, before its signature is checked. */
export type ParsedPlaybackToken = { readonly exp: number; readonly sig: string; readonly query: string };

const utf8 = new TextEncoder();
const SIG_HEX = /^[0-9a-fA-F]{64}$/;
const EXP = /^(0|[1-9][0-9]{0,11})$/;

async function hmacKey(secret: string): Promise<CryptoKey> {
  if (secret === '') throw new TypeError('the playback secret must not be empty');
  return crypto.subtle.importKey('raw', utf8.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
}

function message(broadcast: string, exp: number): Uint8Array {
  return utf8.encode(`${broadcast}:${exp}`);
}

function toHex(bytes: ArrayBuffer): string {
  let out = '';
  for (const byte of new Uint8Array(bytes)) out += byte.toString(16).padStart(2, '0');
  return out;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * A token for `broadcast` (the source's name) valid for `ttlS` seconds from `nowMs` (default now).
 * Append `token.query` to `/hls/<broadcast>/master.m3u8`.
 */
export async function playbackToken(
  broadcast: string,
  secret: string,
  ttlS: number,
  nowMs: number = Date.now(),
): Promise<PlaybackToken> {
  if (!(Number.isFinite(ttlS) && ttlS > 0)) throw new TypeError(`ttlS must be a positive number, got ${ttlS}`);
  return playbackTokenUntil(broadcast, secret, Math.floor(nowMs / 1000 + ttlS));
}

/** A token for `broadcast` that expires at `exp` (unix seconds, a whole number). */
export async function playbackTokenUntil(broadcast: string, secret: string, exp: number): Promise<PlaybackToken> {
  if (!(Number.isSafeInteger(exp) && exp >= 0)) throw new TypeError(`exp must be whole unix seconds, got ${exp}`);
  const sig = toHex(await crypto.subtle.sign('HMAC', await hmacKey(secret), message(broadcast, exp) as BufferSource));
  return { exp, sig, query: `exp=${exp}&sig=${sig}` };
}

/**
 * `url` with a token for `broadcast` appended to its query (`?` or `&` as needed), e.g.
 * `signPlaybackUrl('https://cdn.example/hls/live/cam/master.m3u8', 'live/cam', secret, 3600)`.
 */
export async function signPlaybackUrl(
  url: string,
  broadcast: string,
  secret: string,
  ttlS: number,
  nowMs?: number,
): Promise<string> {
  const token = await playbackToken(broadcast, secret, ttlS, nowMs);
  const hash = url.indexOf('#');
  const head = hash === -1 ? url : url.slice(0, hash);
  const tail = hash === -1 ? '' : url.slice(hash);
  const joiner = head.includes('?') ? (head.endsWith('?') || head.endsWith('&') ? '' : '&') : '?';
  return `${head}${joiner}${token.query}${tail}`;
}

/**
 * Reads `exp` and `sig` from a query: the token, or why it is missing or malformed. Its signature
 * and expiry are not checked here.
 */
export function parsePlaybackToken(query: URLSearchParams): ParsedPlaybackToken | PlaybackTokenFailure {
  const exp = query.get('exp');
  const sig = query.get('sig');
  if (exp === null && sig === null) {
    return { code: 'hls.token_required', message: 'playback needs a token: ?exp=<unix seconds>&sig=<hex HMAC>' };
  }
  if (exp === null || sig === null) {
    return { code: 'hls.token_required', message: `the playback token lacks ${exp === null ? 'exp' : 'sig'}` };
  }
  if (!EXP.test(exp)) {
    return { code: 'hls.token_malformed', message: `exp must be unix seconds (decimal digits), got ${clip(exp)}` };
  }
  if (!SIG_HEX.test(sig)) {
    return {
      code: 'hls.token_malformed',
      message: `sig must be 64 hex digits (HMAC-SHA256), got ${sig.length} characters`,
    };
  }
  const lower = sig.toLowerCase();
  return { exp: Number(exp), sig: lower, query: `exp=${exp}&sig=${lower}` };
}

function clip(text: string): string {
  return JSON.stringify(text.length > 32 ? `${text.slice(0, 32)}...` : text);
}

/** Whether `value` is a failure of `parsePlaybackToken` or `PlaybackVerifier.check`. */
export function isTokenFailure(value: object): value is PlaybackTokenFailure {
  return 'code' in value;
}

/** Valid signatures remembered, so a player's many requests with one token cost one HMAC. */
const VERIFIED_CACHE = 4096;

/** Checks tokens against one secret (the key is imported once). */
export class PlaybackVerifier {
  readonly #key: Promise<CryptoKey>;
  readonly #now: () => number;
  /** `<broadcast>:<exp>:<sig>` of signatures found valid, oldest first. */
  readonly #verified = new Set<string>();

  /** A verifier for `secret`; `now` (ms) defaults to `Date.now`. */
  constructor(secret: string, now: () => number = Date.now) {
    if (secret === '') throw new TypeError('the playback secret must not be empty');
    this.#key = hmacKey(secret);
    this.#now = now;
  }

  /**
   * Whether `token` is a valid, unexpired signature for one of `broadcasts` (the names it may be
   * signed for): the broadcast it matched, or the failure (invalid before expired: an expired
   * token is only reported as such when its signature is right).
   */
  async check(token: ParsedPlaybackToken, broadcasts: readonly string[]): Promise<string | PlaybackTokenFailure> {
    let matched: string | undefined;
    for (const broadcast of broadcasts) {
      const id = `${broadcast}:${token.exp}:${token.sig}`;
      if (this.#verified.has(id) || (await this.#verify(broadcast, token))) {
        this.#remember(id);
        matched = broadcast;
        break;
      }
    }
    if (matched === undefined) {
      return { code: 'hls.token_invalid', message: 'the playback token signature is not valid for this broadcast' };
    }
    if (token.exp * 1000 <= this.#now()) {
      return { code: 'hls.token_expired', message: `the playback token expired at ${token.exp} (unix seconds)` };
    }
    return matched;
  }

  async #verify(broadcast: string, token: ParsedPlaybackToken): Promise<boolean> {
    const key = await this.#key;
    return crypto.subtle.verify(
      'HMAC',
      key,
      fromHex(token.sig) as BufferSource,
      message(broadcast, token.exp) as BufferSource,
    );
  }

  #remember(id: string): void {
    this.#verified.delete(id);
    this.#verified.add(id);
    if (this.#verified.size > VERIFIED_CACHE) {
      const oldest = this.#verified.values().next().value;
      if (oldest !== undefined) this.#verified.delete(oldest);
    }
  }
}
