/**
 * lvqr-transcode: live fMP4 in, decode-once H.264 ABR ladder and LL-HLS out.
 * The public library API; the CLI and HTTP service are built from these parts.
 */

export {
  argumentError,
  CodecError,
  ContainerError,
  LvqrError,
  type LvqrErrorCode,
  RenditionError,
} from './core/errors.ts';
export { consoleLogger, type Logger, type LogLevel, silentLogger } from './core/log.ts';
export * from './fragment/index.ts';
export { createMetrics, type LvqrMetrics, MetricsRegistry } from './metrics/index.ts';
export * from './transcode/index.ts';
