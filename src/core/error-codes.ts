/**
 * The catalogue of error codes: every code an error of this library carries and every code a
 * client can read in a JSON error body or a WebSocket close reason, with what it means. Codes are
 * stable; callers branch on them, never on message text. A code cannot be added without its
 * status (the table's type requires both).
 */

/**
 * Every error code: the HTTP status a client gets with it (WebSocket close code 4000 + status) and
 * a line on what it means. `hls.aborted` (499) is never sent: the client has gone; logs and
 * metrics record it.
 */
export const ERROR_CODES = {
  // Ingest bytes (the container parser).
  'ingest.malformed_box': { status: 400, meaning: 'a box header or payload is not valid ISO BMFF' },
  'ingest.box_too_large': { status: 413, meaning: 'a box is larger than the ingest limit' },
  'ingest.truncated': { status: 400, meaning: 'the stream ended inside a box' },
  'ingest.no_init': { status: 400, meaning: 'media arrived before an init segment (moov)' },
  'ingest.mdat_without_moof': { status: 400, meaning: 'an mdat arrived without the moof describing it' },
  'ingest.no_tracks': { status: 400, meaning: 'the init segment has no usable video or audio track' },
  'ingest.bad_sample_table': { status: 400, meaning: 'a moof sample table contradicts itself or its mdat' },
  'ingest.timestamp_regression': { status: 400, meaning: 'decode times went backwards' },
  // Ingest connections.
  'ingest.message_too_large': { status: 413, meaning: 'a WebSocket message is larger than the ingest limit' },
  'ingest.text_message': { status: 415, meaning: 'a WebSocket message was not binary' },
  'ingest.already_publishing': { status: 409, meaning: 'another publisher holds the broadcast name' },
  'ingest.published_elsewhere': {
    status: 409,
    meaning: 'another ingest node of the cluster holds the broadcast name',
  },
  'ingest.bad_name': { status: 400, meaning: 'the broadcast name is not allowed' },
  'ingest.limit': {
    status: 429,
    meaning: 'the server takes no more publishers (its broadcast limit, or shutting down)',
  },
  'ingest.client_limit': { status: 429, meaning: 'this client holds as many publisher connections as it may' },
  'ingest.unauthorized': { status: 401, meaning: 'publishing needs a bearer token and none came' },
  'ingest.forbidden': {
    status: 403,
    meaning: 'the bearer token is not valid for the broadcast, or publish admission refused it',
  },
  'ingest.admission_failed': {
    status: 503,
    meaning: 'the admission webhook gave no usable answer in time and the default is to refuse',
  },
  'ingest.idle_timeout': { status: 408, meaning: 'the publisher sent nothing for the idle timeout' },
  'ingest.shutdown': { status: 503, meaning: 'the server is shutting down' },
  'ingest.upgrade_required': { status: 426, meaning: 'a GET on an ingest path needs a WebSocket upgrade' },
  'ingest.no_websocket': { status: 501, meaning: 'this server cannot take WebSocket publishers' },
  'ingest.bad_handshake': { status: 400, meaning: 'the WebSocket handshake is malformed or failed' },
  // Playback.
  'hls.not_found': { status: 404, meaning: 'no such broadcast, playlist, segment or part (yet)' },
  'hls.bad_request': { status: 400, meaning: 'malformed or out-of-range LL-HLS query parameters' },
  'hls.unavailable': { status: 503, meaning: 'the HLS layer cannot answer (closed, or an internal failure)' },
  'hls.aborted': { status: 499, meaning: 'the client went away while its request was held' },
  'hls.token_required': { status: 401, meaning: 'playback needs a token (exp and sig) and none, or half of one, came' },
  'hls.token_malformed': {
    status: 400,
    meaning: 'the playback token exp is not unix seconds or sig is not 64 hex digits',
  },
  'hls.token_invalid': { status: 403, meaning: 'the playback token signature is not valid for the broadcast' },
  'hls.token_expired': { status: 403, meaning: 'the playback token is past its exp' },
  'hls.too_many_held_requests': {
    status: 429,
    meaning: 'this client holds as many blocking playlist requests as it may',
  },
  // Codecs and transcoding.
  'codec.unsupported': { status: 415, meaning: 'the codec or configuration is not supported here' },
  'codec.config': { status: 500, meaning: 'a codec could not be configured' },
  'codec.encode_failed': { status: 500, meaning: 'the encoder failed' },
  'codec.decode_failed': { status: 500, meaning: 'the decoder failed' },
  'codec.closed': { status: 500, meaning: 'the codec was used after it closed' },
  'transcode.timeout': { status: 500, meaning: 'a transcoder did not answer in time' },
  'transcode.overload': { status: 500, meaning: 'the ladder cannot keep realtime' },
  // Admin API.
  'admin.unauthorized': { status: 401, meaning: 'the admin API needs a bearer token and none came' },
  'admin.forbidden': { status: 403, meaning: 'the bearer token is not the admin token' },
  'admin.bad_request': { status: 400, meaning: 'the admin request body is not the JSON expected' },
  // Cluster.
  'cluster.unavailable': { status: 503, meaning: 'the cluster directory (NATS) did not answer' },
  // Configuration.
  'rendition.invalid': { status: 400, meaning: 'a rendition spec or ladder file failed validation' },
  'config.invalid': { status: 400, meaning: 'a flag, environment variable or setting is invalid' },
  // Anything else.
  not_found: { status: 404, meaning: 'no route for the request, or the feature is off' },
  internal: { status: 500, meaning: 'an invariant failed or an unexpected error happened' },
} as const satisfies Record<string, { status: number; meaning: string }>;

/** A stable machine-readable error code (see `ERROR_CODES`). */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `code` is in the catalogue. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** The HTTP status of `code`. */
export function errorStatus(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
