/** A tiny structured logger port: the library logs through it, the composition root picks the sink. */

/** Log severity, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured fields attached to a log line. */
export type LogFields = Readonly<Record<string, unknown>>;

/** Where the library writes its log lines. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

function formatFields(fields: LogFields | undefined): string {
  if (fields === undefined) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`);
  }
  return parts.length === 0 ? '' : ` ${parts.join(' ')}`;
}

/** A logger writing `level message key=value ...` lines to the console at or above `minLevel`. */
export function consoleLogger(minLevel: LogLevel = 'info'): Logger {
  const min = ORDER[minLevel];
  const write = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (ORDER[level] < min) return;
    const line = `${new Date().toISOString()} ${level.padEnd(5)} ${message}${formatFields(fields)}`;
    if (level === 'error' || level === 'warn') console.error(line);
    else console.log(line);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that drops everything (tests, embedders that log elsewhere). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
