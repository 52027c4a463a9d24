/**
 * lvqr-transcode: live fMP4 in, decode-once H.264 ABR ladder and LL-HLS out.
 * The public library API; the CLI and HTTP service are built from these parts.
 */

export { describeInit, Fmp4StreamParser, type ParsedTrack, type ParserEvent, readSamples } from './container/index.ts';
export {
  argumentError,
  CodecError,
  ContainerError,
  ERROR_CODES,
  type ErrorCode,
  LvqrError,
  type LvqrErrorCode,
  RenditionError,
} from './core/errors.ts';
export { consoleLogger, type Logger, type LogLevel, silentLogger } from './core/log.ts';
export {
  PLAYBACK_TOKEN_PARAMS,
  type PlaybackToken,
  type PlaybackTokenFailure,
  PlaybackVerifier,
  parsePlaybackToken,
  playbackToken,
  playbackTokenUntil,
  signPlaybackUrl,
} from './core/playback-token.ts';
export * from './fragment/index.ts';
export { HlsBridge, type HlsBridgeOptions } from './hls/index.ts';
export { IngestManager, type IngestOptions, validateBroadcastName } from './ingest/index.ts';
export { createMetrics, type LvqrMetrics, MetricsRegistry } from './metrics/index.ts';
export { createApp } from './server/app.ts';
export { createService, type Service, type ServiceDeps } from './server/service.ts';
export * from './transcode/index.ts';
export { globalProvider, napiProvider, probeCapabilities, type WebCodecsProvider } from './webcodecs/index.ts';
