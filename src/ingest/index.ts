/**
 * Ingest: publisher byte streams (HTTP POST/PUT bodies, WebSocket binary messages) parsed into
 * `0.mp4` / `1.mp4` registry tracks.
 *
 * Back-pressure: parsing is synchronous per chunk and `emit` never blocks, so a publisher is never
 * slowed by consumers. Memory: at most one box (bounded by the limits) is buffered per publisher.
 * Errors: malformed input throws the parser's `ContainerError`; the transport answers the publisher
 * and ends the connection; other broadcasts never notice. One publisher per broadcast; a broadcast
 * outlives its publisher by a grace period so a reconnect continues it.
 *
 * Not here: HTTP routing and status codes (server/), codecs, playlists.
 */

export { type AuthOutcome, authEnabled, checkIngestAuth, constantTimeEqual, type IngestAuthConfig } from './auth.ts';
export {
  DEFAULT_INGEST_LIMITS,
  type EndReason,
  IngestConnection,
  type IngestInfo,
  type IngestLimits,
  IngestManager,
  type IngestOptions,
  type IngestTransport,
} from './manager.ts';
export { MAX_BROADCAST_NAME_LENGTH, MAX_BROADCAST_SEGMENTS, validateBroadcastName } from './names.ts';
