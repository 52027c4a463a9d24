/**
 * Optional ingest auth: a bearer token for every broadcast and/or per broadcast-name prefix,
 * compared in constant time. Tokens are never logged or echoed.
 */

/** Ingest token configuration. */
export type IngestAuthConfig = {
  /** Token accepted for every broadcast. */
  token?: string;
  /** Tokens per broadcast-name prefix (`live/` matches `live/demo`); the longest matching prefix wins. */
  prefixes?: Readonly<Record<string, string>>;
};

/** Outcome of an ingest auth check. */
export type AuthOutcome = 'ok' | 'missing' | 'wrong';

const encoder = new TextEncoder();

/** Compares two strings in time that depends only on their lengths, not their contents. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const length = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < length; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** True when ingest auth is configured at all. */
export function authEnabled(config: IngestAuthConfig | undefined): boolean {
  return config !== undefined && (config.token !== undefined || Object.keys(config.prefixes ?? {}).length > 0);
}

/** The tokens that may publish `broadcast` (empty when auth is off). */
function tokensFor(config: IngestAuthConfig, broadcast: string): string[] {
  const tokens: string[] = [];
  let best = '';
  for (const prefix of Object.keys(config.prefixes ?? {})) {
    const matches =
      broadcast === prefix.replace(/\/$/, '') || broadcast.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
    if (matches && prefix.length > best.length) best = prefix;
  }
  if (best !== '') tokens.push(config.prefixes![best]!);
  if (config.token !== undefined) tokens.push(config.token);
  return tokens;
}

/** Checks an `Authorization` header (or `?token=` value) against the config for `broadcast`. */
export function checkIngestAuth(
  config: IngestAuthConfig | undefined,
  broadcast: string,
  presented: string | undefined,
): AuthOutcome {
  if (!authEnabled(config)) return 'ok';
  const allowed = tokensFor(config!, broadcast);
  if (presented === undefined || presented === '') return 'missing';
  const token = presented.startsWith('Bearer ') ? presented.slice(7).trim() : presented.trim();
  let ok = false;
  // Compare against every allowed token (no early exit) so timing does not reveal which matched.
  for (const candidate of allowed) ok = constantTimeEqual(token, candidate) || ok;
  return ok ? 'ok' : 'wrong';
}
