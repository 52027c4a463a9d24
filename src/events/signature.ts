/**
 * The signature of a webhook body: HMAC-SHA256 of the exact body bytes with the shared secret,
 * sent as `X-Lvqr-Signature: sha256=<hex>`. WebCrypto (`crypto.subtle`), so it runs unchanged on
 * Node, Bun and Deno.
 */

/** The header that carries the signature. */
export const SIGNATURE_HEADER = 'X-Lvqr-Signature';

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Imports `secret` as an HMAC-SHA256 signing key. */
async function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
}

/** The signature header value of `body` under `secret`: `sha256=<hex of HMAC-SHA256(secret, body)>`. */
export async function signBody(secret: string, body: string): Promise<string> {
  const key = await hmacKey(secret);
  return `sha256=${hex(await crypto.subtle.sign('HMAC', key, encoder.encode(body)))}`;
}

/** Whether `header` is the signature of `body` under `secret` (constant-time compare of the MACs). */
export async function verifySignature(
  secret: string,
  body: string,
  header: string | null | undefined,
): Promise<boolean> {
  const match = /^sha256=([0-9a-f]{64})$/.exec(header?.trim().toLowerCase() ?? '');
  if (match === null) return false;
  const mac = new Uint8Array(32);
  for (let i = 0; i < 32; i += 1) mac[i] = Number.parseInt(match[1]!.slice(i * 2, i * 2 + 2), 16);
  return crypto.subtle.verify('HMAC', await hmacKey(secret), mac, encoder.encode(body));
}
