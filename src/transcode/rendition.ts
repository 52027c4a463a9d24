/**
 * `RenditionSpec`: one rung of the ladder. Presets, JSON and TOML forms (LVQR's five snake_case
 * keys), ladder files, and validation with actionable errors.
 */

import { parse as parseToml } from 'smol-toml';
import { RenditionError } from '../core/errors.ts';

/** One rung of the ABR ladder: target box size and bitrates. */
export type RenditionSpec = {
  /** Name used in URLs and metrics, `[a-z0-9][a-z0-9_-]*` (e.g. `720p`). */
  readonly name: string;
  /** Target width in pixels (even); the planner keeps the source aspect ratio. */
  readonly width: number;
  /** Target height in pixels (even); a rung taller than the source is skipped. */
  readonly height: number;
  /** Video bitrate in kbit/s. */
  readonly videoBitrateKbps: number;
  /** Audio bitrate in kbit/s (advertised; audio is passed through). */
  readonly audioBitrateKbps: number;
};

const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;
const MAX_NAME_LENGTH = 64;
const MAX_DIMENSION = 8192;
const MAX_BITRATE_KBPS = 1_000_000;

/** The 720p preset: 1280x720, 2500/128 kbit/s. */
export const PRESET_720P: RenditionSpec = Object.freeze({
  name: '720p',
  width: 1280,
  height: 720,
  videoBitrateKbps: 2500,
  audioBitrateKbps: 128,
});
/** The 480p preset: 854x480, 1200/96 kbit/s. */
export const PRESET_480P: RenditionSpec = Object.freeze({
  name: '480p',
  width: 854,
  height: 480,
  videoBitrateKbps: 1200,
  audioBitrateKbps: 96,
});
/** The 240p preset: 426x240, 400/64 kbit/s. */
export const PRESET_240P: RenditionSpec = Object.freeze({
  name: '240p',
  width: 426,
  height: 240,
  videoBitrateKbps: 400,
  audioBitrateKbps: 64,
});

/** Preset renditions by name. */
export const RENDITION_PRESETS: Readonly<Record<string, RenditionSpec>> = Object.freeze({
  '720p': PRESET_720P,
  '480p': PRESET_480P,
  '240p': PRESET_240P,
});

/** The default ladder, highest to lowest: 720p, 480p, 240p. */
export function defaultLadder(): RenditionSpec[] {
  return [PRESET_720P, PRESET_480P, PRESET_240P];
}

/** Builds and validates a rendition. */
export function createRendition(
  name: string,
  width: number,
  height: number,
  videoBitrateKbps: number,
  audioBitrateKbps: number,
): RenditionSpec {
  return validateRendition({ name, width, height, videoBitrateKbps, audioBitrateKbps });
}

function checkInteger(where: string, key: string, value: unknown, max: number, even: boolean): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new RenditionError(`${where}: ${key} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  if (value > max) throw new RenditionError(`${where}: ${key} must be at most ${max}, got ${value}`);
  if (even && value % 2 !== 0) {
    throw new RenditionError(`${where}: ${key} must be even (H.264 4:2:0 needs even sizes), got ${value}`);
  }
  return value;
}

/** Validates one rendition; returns a frozen copy or throws `RenditionError` naming the bad key. */
export function validateRendition(spec: unknown, where = 'rendition'): RenditionSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new RenditionError(`${where}: expected an object, got ${JSON.stringify(spec)}`);
  }
  const s = spec as Record<string, unknown>;
  const name = s['name'];
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new RenditionError(
      `${where}: name must match [a-z0-9][a-z0-9_-]* (at most ${MAX_NAME_LENGTH} characters), got ${JSON.stringify(name)}`,
    );
  }
  const at = `${where} ${JSON.stringify(name)}`;
  return Object.freeze({
    name,
    width: checkInteger(at, 'width', s['width'], MAX_DIMENSION, true),
    height: checkInteger(at, 'height', s['height'], MAX_DIMENSION, true),
    videoBitrateKbps: checkInteger(at, 'videoBitrateKbps', s['videoBitrateKbps'], MAX_BITRATE_KBPS, false),
    audioBitrateKbps: checkInteger(at, 'audioBitrateKbps', s['audioBitrateKbps'], MAX_BITRATE_KBPS, false),
  });
}

/**
 * Validates a ladder: each rendition, unique names, at least one rung. Returns it ordered by
 * video bitrate, highest first.
 */
export function validateLadder(ladder: unknown, where = 'ladder'): RenditionSpec[] {
  if (!Array.isArray(ladder) || ladder.length === 0) {
    throw new RenditionError(`${where}: expected a non-empty list of renditions`);
  }
  const specs = ladder.map((r, i) => validateRendition(r, `${where}[${i}]`));
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name))
      throw new RenditionError(`${where}: duplicate rendition name ${JSON.stringify(spec.name)}`);
    seen.add(spec.name);
  }
  return specs.sort((a, b) => b.videoBitrateKbps - a.videoBitrateKbps);
}

/** Maps LVQR's snake_case keys (TOML, LVQR JSON) to ours; camelCase keys pass through. */
function fromSnakeCase(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const r = raw as Record<string, unknown>;
  const known = new Set(['name', 'width', 'height', 'video_bitrate_kbps', 'audio_bitrate_kbps']);
  const camel = new Set(['videoBitrateKbps', 'audioBitrateKbps']);
  for (const key of Object.keys(r)) {
    if (!known.has(key) && !camel.has(key)) throw new RenditionError(`rendition: unknown key ${JSON.stringify(key)}`);
  }
  return {
    name: r['name'],
    width: r['width'],
    height: r['height'],
    videoBitrateKbps: r['videoBitrateKbps'] ?? r['video_bitrate_kbps'],
    audioBitrateKbps: r['audioBitrateKbps'] ?? r['audio_bitrate_kbps'],
  };
}

/** JSON text of a rendition (camelCase keys). */
export function renditionToJson(spec: RenditionSpec): string {
  return JSON.stringify({
    name: spec.name,
    width: spec.width,
    height: spec.height,
    videoBitrateKbps: spec.videoBitrateKbps,
    audioBitrateKbps: spec.audioBitrateKbps,
  });
}

/** Parses a rendition from JSON (camelCase, or LVQR's snake_case keys). */
export function renditionFromJson(text: string): RenditionSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new RenditionError(`rendition: invalid JSON (${(cause as Error).message})`, { cause });
  }
  return validateRendition(fromSnakeCase(raw));
}

/** TOML text of a rendition with LVQR's five keys. */
export function renditionToToml(spec: RenditionSpec): string {
  return [
    `name = ${JSON.stringify(spec.name)}`,
    `width = ${spec.width}`,
    `height = ${spec.height}`,
    `video_bitrate_kbps = ${spec.videoBitrateKbps}`,
    `audio_bitrate_kbps = ${spec.audioBitrateKbps}`,
    '',
  ].join('\n');
}

function parseTomlText(text: string, where: string): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (cause) {
    throw new RenditionError(`${where}: invalid TOML (${(cause as Error).message.split('\n')[0]})`, { cause });
  }
}

/** Parses a rendition TOML file (LVQR's five keys: name, width, height, video_bitrate_kbps, audio_bitrate_kbps). */
export function renditionFromToml(text: string, where = 'rendition toml'): RenditionSpec {
  const table = parseTomlText(text, where);
  try {
    return validateRendition(fromSnakeCase(table), where);
  } catch (error) {
    if (error instanceof RenditionError && !error.message.startsWith(where)) {
      throw new RenditionError(`${where}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/**
 * Parses a ladder TOML file: an array of tables `[[rendition]]`, each with LVQR's five keys.
 * Returns the ladder ordered highest bitrate first.
 */
export function ladderFromToml(text: string, where = 'ladder toml'): RenditionSpec[] {
  const table = parseTomlText(text, where);
  const list = table['rendition'];
  if (!Array.isArray(list)) {
    throw new RenditionError(`${where}: expected one or more [[rendition]] tables`);
  }
  return validateLadder(
    list.map((r) => fromSnakeCase(r)),
    where,
  );
}

/** TOML text of a ladder (`[[rendition]]` tables). */
export function ladderToToml(ladder: readonly RenditionSpec[]): string {
  return ladder.map((r) => `[[rendition]]\n${renditionToToml(r)}`).join('\n');
}

/**
 * Resolves one `--transcode-rendition` value: a preset name (`720p`, `480p`, `240p`) or the text
 * of a `.toml` file given by `readFile`. A ladder TOML (with `[[rendition]]`) yields several rungs.
 */
export function resolveRenditionArg(value: string, readFile: (path: string) => string): RenditionSpec[] {
  const trimmed = value.trim();
  if (trimmed === '') throw new RenditionError('--transcode-rendition: value is empty');
  const preset = RENDITION_PRESETS[trimmed];
  if (preset !== undefined) return [preset];
  if (trimmed.endsWith('.toml')) {
    let text: string;
    try {
      text = readFile(trimmed);
    } catch (cause) {
      throw new RenditionError(`--transcode-rendition: cannot read ${trimmed}: ${(cause as Error).message}`, {
        cause,
      });
    }
    return /^\s*\[\[rendition\]\]/m.test(text) ? ladderFromToml(text, trimmed) : [renditionFromToml(text, trimmed)];
  }
  throw new RenditionError(
    `--transcode-rendition: unknown preset ${JSON.stringify(trimmed)}; expected one of 720p, 480p, 240p, or a path ending in .toml`,
  );
}

/** Resolves a comma-separated / repeated `--transcode-rendition` list into a validated ladder. */
export function resolveLadderArgs(values: readonly string[], readFile: (path: string) => string): RenditionSpec[] {
  const specs = values
    .flatMap((v) => v.split(','))
    .filter((v) => v.trim() !== '')
    .flatMap((v) => resolveRenditionArg(v, readFile));
  return validateLadder(specs, '--transcode-rendition');
}
