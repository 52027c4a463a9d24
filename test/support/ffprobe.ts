/** ffprobe / ffmpeg (from PATH) as independent judges of media bytes. Inputs are files or bytes (written to a temp file). */

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MAX_BUFFER = 256 * 1024 * 1024;

/** A file path, or bytes to probe. */
export type MediaInput = string | Uint8Array;

/** One decoded frame as ffprobe reports it. */
export type ProbedFrame = {
  /** pts in the stream time base. */
  pts: number;
  keyFrame: boolean;
  pictType: string;
  width: number;
  height: number;
};

/** One packet (sample) as ffprobe reports it. */
export type ProbedPacket = {
  pts: number;
  dts: number;
  /** undefined when ffprobe reports N/A. */
  duration: number | undefined;
  keyframe: boolean;
  size: number;
};

/** One stream as ffprobe reports it. */
export type ProbedStream = {
  index: number;
  codecType: string;
  codecName: string;
  codecTag: string;
  profile: string | undefined;
  level: number | undefined;
  width: number | undefined;
  height: number | undefined;
  /** e.g. `30/1`. */
  rFrameRate: string;
  /** Ticks per second of the stream time base. */
  timescale: number;
  sampleRate: number | undefined;
  channels: number | undefined;
};

/** Runs `fn` with a file path for `input` (a temp file under os.tmpdir() for bytes). */
export async function withFile<T>(input: MediaInput, fn: (file: string) => Promise<T>): Promise<T> {
  if (typeof input === 'string') return fn(input);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lvqr-probe-'));
  const file = path.join(dir, 'input.mp4');
  try {
    await writeFile(file, input);
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function ffprobeJson(file: string, args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('ffprobe', ['-v', 'error', ...args, '-of', 'json', file], { maxBuffer: MAX_BUFFER });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const num = (v: unknown): number | undefined => (v === undefined || v === 'N/A' ? undefined : Number(v));

/** Streams of a file. */
export async function probeStreams(input: MediaInput): Promise<ProbedStream[]> {
  return withFile(input, async (file) => {
    const json = await ffprobeJson(file, ['-show_streams']);
    return (json['streams'] as Array<Record<string, unknown>>).map((s) => ({
      index: Number(s['index']),
      codecType: String(s['codec_type']),
      codecName: String(s['codec_name']),
      codecTag: String(s['codec_tag_string']),
      profile: s['profile'] === undefined ? undefined : String(s['profile']),
      level: num(s['level']),
      width: num(s['width']),
      height: num(s['height']),
      rFrameRate: String(s['r_frame_rate']),
      timescale: Number(String(s['time_base']).split('/')[1]),
      sampleRate: num(s['sample_rate']),
      channels: num(s['channels']),
    }));
  });
}

/** Packets of the first video (`v`) or audio (`a`) stream, in file order. */
export async function probePackets(input: MediaInput, stream: 'v' | 'a' = 'v'): Promise<ProbedPacket[]> {
  return withFile(input, async (file) => {
    const json = await ffprobeJson(file, [
      '-select_streams',
      `${stream}:0`,
      '-show_entries',
      'packet=pts,dts,duration,flags,size',
    ]);
    return (json['packets'] as Array<Record<string, unknown>>).map((p) => ({
      pts: Number(p['pts']),
      dts: Number(p['dts']),
      duration: num(p['duration']),
      keyframe: String(p['flags']).includes('K'),
      size: Number(p['size']),
    }));
  });
}

/** Decoded frames of the first video stream, in output (presentation) order. */
export async function probeFrames(input: MediaInput): Promise<ProbedFrame[]> {
  return withFile(input, async (file) => {
    const json = await ffprobeJson(file, [
      '-select_streams',
      'v:0',
      '-show_entries',
      'frame=pts,key_frame,pict_type,width,height',
    ]);
    return (json['frames'] as Array<Record<string, unknown>>).map((f) => ({
      pts: Number(f['pts']),
      keyFrame: Number(f['key_frame']) === 1,
      pictType: String(f['pict_type']),
      width: Number(f['width']),
      height: Number(f['height']),
    }));
  });
}

/** Decodes every stream with `ffmpeg -v error ... -f null -`; returns its error lines (empty when clean). */
export async function decodeErrors(input: MediaInput): Promise<string[]> {
  return withFile(input, async (file) => {
    try {
      const { stderr } = await run('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-'], {
        maxBuffer: MAX_BUFFER,
      });
      return stderr.split('\n').filter((l) => l.trim() !== '');
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      const lines = (e.stderr ?? '').split('\n').filter((l) => l.trim() !== '');
      return lines.length > 0 ? lines : [e.message];
    }
  });
}

/** True when ffmpeg on PATH has the named encoder (e.g. `libx265`). */
export async function hasEncoder(name: string): Promise<boolean> {
  const { stdout } = await run('ffmpeg', ['-hide_banner', '-encoders'], { maxBuffer: MAX_BUFFER });
  return stdout.split('\n').some((l) => l.trim().split(/\s+/)[1] === name);
}

/** Runs ffmpeg with `args` (after `-nostdin -v error -y`); rejects with its stderr on failure. */
export async function ffmpeg(args: string[]): Promise<void> {
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { maxBuffer: MAX_BUFFER });
}
