/**
 * LL-HLS egress. `HlsBridge` subscribes to every `0.mp4` (video) and `1.mp4` (audio) track of the
 * registry, sources and rungs alike (a rung is the broadcast `<source>/<rendition>`), groups each
 * track's fragments into parts (<= part target) and segments (cut at the first keyframe at or after
 * the target; audio, and rungs, cut at their leader's video boundaries so MSNs line up), and answers
 * `handle(path, query, signal)` with plain `{ status, headers, body }` values: master playlist, media
 * playlists with blocking reload, delta updates, preload hints and rendition reports, init segments,
 * segments and parts. The Hono server is a thin adapter over `handle`.
 *
 * URLs under `/hls/<broadcast>/`: `master.m3u8`, `playlist.m3u8`, `audio.m3u8`, `init.mp4` /
 * `audio-init.mp4` (the current init, revalidated), `init-<id>.mp4` / `audio-init-<id>.mp4` (each
 * init by a hash of its bytes, immutable, named alike on every node; what EXT-X-MAP points at),
 * `seg-<msn>.m4s`, `part-<msn>-<i>.m4s` and their `audio-` forms (immutable). A republished name
 * continues its numbering, so no immutable URL is ever re-used with other bytes (numbering of
 * freed names is remembered for 4096 tracks).
 *
 * Back-pressure and memory: packaging is synchronous per fragment and never blocks the producer
 * (the registry's bounded subscriber queue absorbs bursts; a lag gap closes the part in progress).
 * Each track keeps the DVR window plus two target durations of segments; a part is a view into
 * its segment's bytes, so media is held once. Parts are listed for the last three target durations.
 * An ended broadcast keeps serving (EXT-X-ENDLIST) for `lingerMs`, then everything is freed.
 * Held requests wait on a per-track waiter set woken at each published part, and are answered
 * with 503 after `blockingTimeoutMs` (three target durations by default, RFC 8216bis 6.2.5.2) or
 * 499 when their signal aborts.
 *
 * Not here: HTTP framing, range requests, HEAD, CORS preflight (the server), encryption, date
 * ranges, I-frame playlists, byte-range parts, persistence across restarts.
 */

export { HlsBridge, type HlsBridgeOptions, type HlsBroadcastSummary, type HlsTrackSummary } from './bridge.ts';
export type { InitDescriber, InitTrackDescription } from './init-description.ts';
export {
  formatDateTime,
  formatSeconds,
  HLS_VERSION,
  type MasterPlaylistInput,
  type MasterVariant,
  type MediaPlaylistInput,
  type RenditionReport,
  renderMasterPlaylist,
  renderMediaPlaylist,
} from './playlist.ts';
export {
  errorResponse,
  HLS_PATH_PREFIX,
  type HlsErrorCode,
  type HlsFile,
  type HlsResponse,
  IMMUTABLE,
  PLAYLIST_TYPE,
  parseHlsFile,
  relativeUri,
  splitHlsPath,
} from './routes.ts';
export type {
  GroupTiming,
  HlsPart,
  HlsSegment,
  InitVersion,
  Listing,
  PartState,
  TrackCursor,
  TrackKind,
} from './track-media.ts';
export type { WaitOutcome } from './waiter.ts';
export { TrackWindow, type TrackWindowOptions } from './window.ts';
