/**
 * Playback URLs handed out by `/api/v1/broadcasts` (what the dashboard plays): the master of each
 * source and the media playlist of each rung, signed with the source's playback token when a
 * playback secret is set. The secret itself never leaves the server.
 */

import { playbackTokenUntil } from '../core/playback-token.ts';

/** Lifetime of the tokens in handed-out URLs, seconds. */
export const HANDED_OUT_TTL_S = 4 * 3600;
/** Their expiry is rounded up to this step, so one broadcast's URL stays the same for a while. */
const EXP_STEP_S = 300;

/** What a broadcast summary needs to get a playback URL. */
export type PlayableSummary = { readonly name: string; readonly source: string | undefined };

/**
 * `summaries` each with `playbackUrl`: `/hls/<name>/master.m3u8` for a source,
 * `/hls/<name>/playlist.m3u8` for a rung, with `?exp=&sig=` of the source when `secret` is set.
 */
export async function withPlaybackUrls<T extends PlayableSummary>(
  summaries: readonly T[],
  secret: string | undefined,
  nowMs: number = Date.now(),
): Promise<Array<T & { playbackUrl: string }>> {
  const queries = new Map<string, string>();
  if (secret !== undefined) {
    // The expiry at least HANDED_OUT_TTL_S away, on a step boundary.
    const exp = Math.ceil((nowMs / 1000 + HANDED_OUT_TTL_S) / EXP_STEP_S) * EXP_STEP_S;
    for (const s of summaries) {
      const source = s.source ?? s.name;
      if (!queries.has(source)) queries.set(source, (await playbackTokenUntil(source, secret, exp)).query);
    }
  }
  return summaries.map((s) => {
    const file = s.source === undefined ? 'master.m3u8' : 'playlist.m3u8';
    const query = queries.get(s.source ?? s.name);
    return { ...s, playbackUrl: `/hls/${s.name}/${file}${query === undefined ? '' : `?${query}`}` };
  });
}
