/**
 * Media fixtures of the tests and benchmarks: paths, bytes and the expected values recorded in
 * test/fixtures/fixtures.json, and `ensureFixtures`, which generates the clips when any is missing.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Expected values of one clip, as recorded in the provenance sidecar. */
export type FixtureInfo = {
  name: string;
  description: string;
  /** The exact ffmpeg command (run in test/fixtures/media). */
  command: string;
  video: {
    codec: string;
    profile: string;
    level: number;
    width: number;
    height: number;
    fps: number;
    timescale: number;
    frameCount: number;
    keyframeIndices: number[];
    /** Keyframe pts in the video timescale. */
    keyframePts: number[];
    bFrames: boolean;
  };
  audio: { codec: string; sampleRate: number; channels: number };
};

/** The provenance sidecar. */
export type FixturesFile = { generatedWith: string; clips: FixtureInfo[] };

/** test/fixtures. */
export const FIXTURES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures');
/** Where the generated clips live (gitignored). */
export const MEDIA_DIR = path.join(FIXTURES_DIR, 'media');

let cached: FixturesFile | undefined;

/** The parsed fixtures.json. */
export function fixturesFile(): FixturesFile {
  cached ??= JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'fixtures.json'), 'utf8')) as FixturesFile;
  return cached;
}

/** Names of every clip in fixtures.json. */
export function fixtureNames(): string[] {
  return fixturesFile().clips.map((c) => c.name);
}

/** Absolute path of a clip. */
export function fixturePath(name: string): string {
  return path.join(MEDIA_DIR, name);
}

/** True when every clip of fixtures.json exists. */
export function fixturesPresent(): boolean {
  return fixtureNames().every((n) => existsSync(fixturePath(n)));
}

/** Runs test/fixtures/make-fixtures.sh (ffmpeg) unless every clip exists; `tag` prefixes the log line. */
export function ensureFixtures(tag: string): void {
  if (fixturesPresent()) return;
  console.log(`[${tag}] making media fixtures (test/fixtures/make-fixtures.sh)`);
  execFileSync('bash', [path.join(FIXTURES_DIR, 'make-fixtures.sh')], { stdio: 'inherit' });
}

/** The bytes of a clip. */
export function readFixture(name: string): Uint8Array {
  const buf = readFileSync(fixturePath(name));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** The expected values of a clip. */
export function fixtureInfo(name: string): FixtureInfo {
  const info = fixturesFile().clips.find((c) => c.name === name);
  if (info === undefined) throw new Error(`fixture ${name} is not in fixtures.json`);
  return info;
}
