/**
 * The catalogue of error codes: every code an error of this library carries and every code a
 * client can read in a JSON error body or a WebSocket close reason, with what it means. Codes are
 * stable; callers branch on them, never on message text. Their HTTP statuses are the server's
 * business (`server/errors.ts` maps each one, and an unmapped code fails to compile).
 */

/** Every error code, with a line on what it means. */
export const ERROR_CODES = {
  // Ingest bytes (the container parser).
  'ingest.malformed_box': 'a box header or payload is not valid ISO BMFF',
  'ingest.box_too_large': 'a box is larger than the ingest limit',
  'ingest.truncated': 'the stream ended inside a box',
  'ingest.no_init': 'media arrived before an init segment (moov)',
  'ingest.mdat_without_moof': 'an mdat arrived without the moof describing it',
  'ingest.no_tracks': 'the init segment has no usable video or audio track',
  'ingest.bad_sample_table': 'a moof sample table contradicts itself or its mdat',
  'ingest.timestamp_regression': 'decode times went backwards',
  // Ingest connections.
  'ingest.message_too_large': 'a WebSocket message is larger than the ingest limit',
  'ingest.text_message': 'a WebSocket message was not binary',
  'ingest.already_publishing': 'another publisher holds the broadcast name',
  'ingest.bad_name': 'the broadcast name is not allowed',
  'ingest.limit': 'the server takes no more publishers (its broadcast limit, or shutting down)',
  'ingest.client_limit': 'this client holds as many publisher connections as it may',
  'ingest.unauthorized': 'publishing needs a bearer token and none came',
  'ingest.forbidden': 'the bearer token is not valid for the broadcast',
  'ingest.idle_timeout': 'the publisher sent nothing for the idle timeout',
  'ingest.shutdown': 'the server is shutting down',
  'ingest.upgrade_required': 'a GET on an ingest path needs a WebSocket upgrade',
  'ingest.no_websocket': 'this server cannot take WebSocket publishers',
  'ingest.bad_handshake': 'the WebSocket handshake is malformed or failed',
  // Playback.
  'hls.not_found': 'no such broadcast, playlist, segment or part (yet)',
  'hls.bad_request': 'malformed or out-of-range LL-HLS query parameters',
  'hls.unavailable': 'the HLS layer cannot answer (closed, or an internal failure)',
  'hls.aborted': 'the client went away while its request was held',
  'hls.too_many_held_requests': 'this client holds as many blocking playlist requests as it may',
  // Codecs and transcoding.
  'codec.unsupported': 'the codec or configuration is not supported here',
  'codec.config': 'a codec could not be configured',
  'codec.encode_failed': 'the encoder failed',
  'codec.decode_failed': 'the decoder failed',
  'codec.closed': 'the codec was used after it closed',
  'transcode.timeout': 'a transcoder did not answer in time',
  'transcode.overload': 'the ladder cannot keep realtime',
  // Configuration.
  'rendition.invalid': 'a rendition spec or ladder file failed validation',
  'config.invalid': 'a flag, environment variable or setting is invalid',
  // Anything else.
  not_found: 'no route for the request, or the feature is off',
  internal: 'an invariant failed or an unexpected error happened',
} as const;

/** A stable machine-readable error code (see `ERROR_CODES`). */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `code` is in the catalogue. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
