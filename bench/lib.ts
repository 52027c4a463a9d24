/** Shared benchmark helpers: stats, child-process measurement, machine facts, RESULTS.md sections. */

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile as nearestRank } from '../src/core/percentile.ts';
import { loopPieces, type Piece, planPieces, postStreamed } from '../src/runtime/publish.ts';

/** The bench/ folder. */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const ROOT = join(BENCH_DIR, '..');
/** Generated inputs and outputs (gitignored). */
export const OUT_DIR = join(BENCH_DIR, 'out');

/** True when `--smoke` was passed: seconds-long runs that only prove the benchmark still works. */
export const SMOKE = process.argv.includes('--smoke');

/** Value of `--name value` on the command line. */
export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

/** Median, min and max of `values`. */
export function summary(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

/** Percentile (nearest rank) of `values`; NaN for none (prints as such in a table). */
export function percentile(values: readonly number[], p: number): number {
  return nearestRank(values, p) ?? Number.NaN;
}

/** `median (min-max)` with `digits` decimals. */
export function fmtSummary(values: readonly number[], digits = 1): string {
  const s = summary(values);
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
}

/** Machine facts for the results file. */
export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const ffmpeg =
    (spawnSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8' }).stdout ?? '')
      .split(' ')
      .slice(0, 3)
      .join(' ') || 'no ffmpeg';
  return `${cpus().length} vCPU ${cpu.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${ffmpeg}`;
}

/** Busy and total jiffies of all CPUs (Linux /proc/stat), or undefined elsewhere. */
function cpuJiffies(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/**
 * How busy the machine's cores are over the next `ms` (call it while the benchmark itself is idle):
 * e.g. "4 % of the cores busy", flagged as a busy machine above a quarter.
 */
export async function machineBusy(ms = 1000): Promise<string> {
  const before = cpuJiffies();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = cpuJiffies();
  if (before === undefined || after === undefined || after.total === before.total) return 'machine load unknown';
  const share = (after.busy - before.busy) / (after.total - before.total);
  return `${(100 * share).toFixed(0)} % of the cores busy${share > 0.25 ? ' (busy machine: other jobs were running)' : ''}`;
}

/** What `/usr/bin/time` measured of a child process. */
export type Measured = { wallS: number; cpuS: number; peakRssMb: number; stdout: string; stderr: string; code: number };

/** Runs `command args` under GNU time and returns wall time, CPU seconds (user+sys) and peak RSS. */
export function measure(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const marker = '@@TIME@@';
    const child = spawn('/usr/bin/time', ['-f', `${marker} %e %U %S %M`, command, ...args], {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stderr.split('\n').find((l) => l.startsWith(marker));
      if (line === undefined) {
        reject(new Error(`no timing from ${command}: ${stderr.slice(-2000)}`));
        return;
      }
      const [, wall, user, sys, rssKb] = line.split(' ');
      resolve({
        wallS: Number(wall),
        cpuS: Number(user) + Number(sys),
        peakRssMb: Number(rssKb) / 1024,
        stdout,
        stderr: stderr.replace(line, ''),
        code: code ?? 1,
      });
    });
  });
}

/** Where the benchmark sources are (short ones in smoke mode). */
export const SOURCE_DIR = SMOKE ? join(OUT_DIR, 'smoke') : OUT_DIR;

/** Path of a benchmark source. */
export function sourcePath(name: string): string {
  return join(SOURCE_DIR, name);
}

/** Makes the benchmark sources if missing (bench/make-source.sh). */
export function ensureSources(): void {
  const all = ['source-1080p30.mp4', 'source-720p30.mp4', 'source-720p30-ll.mp4', 'source-720p30-gop.mp4'];
  if (all.every((f) => existsSync(sourcePath(f)))) return;
  const r = spawnSync('bash', [join(BENCH_DIR, 'make-source.sh'), ...(SMOKE ? ['--smoke'] : [])], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('bench/make-source.sh failed');
}

/**
 * Average PSNR of the luma plane and SSIM (all planes) of `distorted` against `reference` scaled to
 * WxH with Lanczos, frames paired by index (both have one frame per source frame; timestamps may
 * start differently).
 */
export function quality(
  distorted: string,
  reference: string,
  width: number,
  height: number,
): { psnr: number; ssim: number } {
  // An output tagged BT.601 (GStreamer's videoconvert picks it for SD sizes) is compared in the
  // source's BT.709 matrix: a player converts it by its tag; raw planes would differ in colour alone.
  const matrix = spawnSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=color_space', '-of', 'csv=p=0', distorted],
    { encoding: 'utf8' },
  ).stdout.trim();
  const toBt709 = ['smpte170m', 'bt470bg'].includes(matrix)
    ? 'scale=in_color_matrix=bt601:out_color_matrix=bt709,'
    : '';
  const run = (filter: string) =>
    spawnSync(
      'ffmpeg',
      [
        '-hide_banner',
        '-nostdin',
        '-i',
        distorted,
        '-i',
        reference,
        '-lavfi',
        `[1:v]scale=${width}:${height}:flags=lanczos,format=yuv420p,setpts=N/30/TB[ref];[0:v]${toBt709}format=yuv420p,setpts=N/30/TB[dis];[dis][ref]${filter}`,
        '-f',
        'null',
        '-',
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    ).stderr;
  const psnr = /PSNR y:([\d.]+|inf)/.exec(run('psnr'))?.[1];
  const ssim = /SSIM .*All:([\d.]+)/.exec(run('ssim'))?.[1];
  return { psnr: psnr === 'inf' ? 99 : Number(psnr), ssim: Number(ssim) };
}

/** The ffmpeg reference ladder's rungs: the default ladder's sizes and bitrates. */
export const RUNGS = [
  { name: '720p', width: 1280, height: 720, kbps: 2500 },
  { name: '480p', width: 854, height: 480, kbps: 1200 },
  { name: '240p', width: 426, height: 240, kbps: 400 },
] as const;

/** libx264 options of a reference rung: superfast, zerolatency, CBR with a 1 s buffer, keyframes every 2 s. */
export function x264(kbps: number): string[] {
  return [
    '-c:v',
    'libx264',
    '-preset',
    'superfast',
    '-tune',
    'zerolatency',
    '-b:v',
    `${kbps}k`,
    '-maxrate',
    `${kbps}k`,
    '-bufsize',
    `${kbps}k`,
    '-force_key_frames',
    'expr:gte(t,n_forced*2)',
    '-fps_mode',
    'passthrough',
    '-an',
  ];
}

/**
 * Arguments of one ffmpeg process running the reference ladder: `input` (the input options and
 * `-i`) decoded once, split, scaled with `flags`, each rung encoded to `<dir>/<rung>.mp4`.
 */
export function ffmpegLadderArgs(input: readonly string[], dir: string, flags: 'bilinear' | 'bicubic'): string[] {
  const split = `[0:v]split=3${RUNGS.map((_, i) => `[s${i}]`).join('')};${RUNGS.map((r, i) => `[s${i}]scale=${r.width}:${r.height}:flags=${flags}[o${i}]`).join(';')}`;
  const args = ['-nostdin', '-y', '-v', 'error', ...input, '-filter_complex', split];
  RUNGS.forEach((r, i) => {
    args.push('-map', `[o${i}]`, ...x264(r.kbps), join(dir, `${r.name}.mp4`));
  });
  return args;
}

/**
 * Replaces the section `## <title>` of bench/RESULTS.md with `body` (appends it if missing),
 * keeping the other benchmarks' sections. Smoke runs never write.
 */
export function writeSection(title: string, body: string): void {
  if (SMOKE) return;
  const file = join(BENCH_DIR, 'RESULTS.md');
  const header =
    '# Benchmark results\n\nEvery figure is measured on the machine named in its section, in one run of the\n' +
    'command shown, contenders alternated; medians with (min-max). Regenerate with `npm run bench`\n' +
    '(or the per-benchmark command). Targets and ratios are stated per section.\n';
  let text = existsSync(file) ? readFileSync(file, 'utf8') : header;
  const start = text.indexOf(`\n## ${title}\n`);
  const section = `\n## ${title}\n\n${body.trim()}\n`;
  if (start === -1) {
    text = `${text.trimEnd()}\n${section}`;
  } else {
    const next = text.indexOf('\n## ', start + 4);
    text = text.slice(0, start) + section + (next === -1 ? '' : text.slice(next));
  }
  writeFileSync(file, `${text.trimEnd()}\n`);
}

/**
 * Replaces the subsection `### <sub>` of the section `## <title>` of bench/RESULTS.md with `body`
 * (appends it if missing), keeping the section's other subsections; text of the section before its
 * first subsection is dropped. Smoke runs never write.
 */
export function writeSubsection(title: string, sub: string, body: string): void {
  const file = join(BENCH_DIR, 'RESULTS.md');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const start = text.indexOf(`\n## ${title}\n`);
  const next = start === -1 ? -1 : text.indexOf('\n## ', start + 4);
  const section = start === -1 ? '' : text.slice(start, next === -1 ? undefined : next);
  const parts = section.split('\n### ').slice(1);
  const mine = `${sub}\n\n${body.trim()}\n`;
  const at = parts.findIndex((p) => p.startsWith(`${sub}\n`));
  if (at === -1) parts.push(mine);
  else parts[at] = mine;
  writeSection(title, parts.map((p) => `### ${p.trim()}`).join('\n\n'));
}

/** A markdown table. */
export function table(head: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Today's date (UTC) for the results file. */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** Clock ticks per second of /proc CPU times (USER_HZ). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** CPU seconds (user + system) used so far by process `pid`, or by every process of group `group` (Linux /proc). */
export function cpuSecondsOf(select: { pid: number } | { group: number }): number {
  if ('pid' in select) return procStat(String(select.pid))?.cpuS ?? 0;
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry);
    if (stat?.group === select.group) total += stat.cpuS;
  }
  return total;
}

/** Process group and CPU seconds (user + system) of process `pid` from /proc; undefined when it is gone. */
function procStat(pid: string): { group: number; cpuS: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the parenthesised name: pgrp is field 5, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { group: Number(fields[2]), cpuS: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of each thread of this process, grouped by what started the thread (Linux /proc).
 * Samples every `intervalMs` so that threads which exit before the end are still counted (up to
 * one interval of their time is lost). A V8 CPU profile only sees the JavaScript thread; this
 * accounts for the threads a native addon runs its codecs on.
 */
export class ThreadCpu {
  readonly #cpuS = new Map<string, number>();
  readonly #labels = new Map<string, string>();
  readonly #timer: ReturnType<typeof setInterval>;

  /** Starts sampling; threads alive now are labelled `atStartLabel`, this thread `main (JavaScript)`. */
  constructor(atStartLabel = 'node (V8 platform, libuv, loader)', intervalMs = 100) {
    for (const tid of this.#tids()) this.#labels.set(tid, atStartLabel);
    this.#labels.set(String(process.pid), 'main (JavaScript)');
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Reads every thread's CPU time now. */
  sample(): void {
    for (const tid of this.#tids()) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        this.#cpuS.set(tid, (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS);
      } catch {
        // The thread exited between the listing and the read.
      }
    }
  }

  /** Runs `start` and labels the threads that appeared meanwhile (first label wins). */
  label<T>(label: string, start: () => T): T {
    const before = new Set(this.#tids());
    const result = start();
    this.#labelNew(before, label);
    return result;
  }

  /** Like `label` for an asynchronous start: threads that appeared until `start()` settles. */
  async labelAsync<T>(label: string, start: () => Promise<T>): Promise<T> {
    const before = new Set(this.#tids());
    try {
      return await start();
    } finally {
      this.#labelNew(before, label);
    }
  }

  /** Stops sampling; CPU seconds per label (threads never labelled are `other`), largest first. */
  stop(): Array<{ label: string; threads: number; cpuS: number }> {
    clearInterval(this.#timer);
    this.sample();
    const byLabel = new Map<string, { threads: number; cpuS: number }>();
    for (const [tid, cpuS] of this.#cpuS) {
      const label = this.#labels.get(tid) ?? 'other (started later)';
      const entry = byLabel.get(label) ?? { threads: 0, cpuS: 0 };
      entry.threads += 1;
      entry.cpuS += cpuS;
      byLabel.set(label, entry);
    }
    return [...byLabel].map(([label, e]) => ({ label, ...e })).sort((a, b) => b.cpuS - a.cpuS);
  }

  #tids(): string[] {
    return readdirSync('/proc/self/task');
  }

  #labelNew(before: ReadonlySet<string>, label: string): void {
    for (const tid of this.#tids()) if (!before.has(tid) && !this.#labels.has(tid)) this.#labels.set(tid, label);
  }
}

/**
 * CPU time and resident memory of a whole process group (a browser and its helpers), sampled from
 * /proc: CPU is the sum over the group's processes (those that exit between samples lose their last
 * interval); memory is the largest sum of their PSS seen (proportional set size: pages shared by
 * several processes count once in all, where a sum of RSS would count them in each).
 */
export class GroupUsage {
  readonly #group: number;
  readonly #cpuS = new Map<number, number>();
  readonly #timer: ReturnType<typeof setInterval>;
  #startCpuS = 0;
  #peakRssMb = 0;

  /** Starts sampling process group `group`; CPU counts from now. */
  constructor(group: number, intervalMs = 100) {
    this.#group = group;
    this.sample();
    this.#startCpuS = this.cpuS;
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Reads every process of the group now. */
  sample(): void {
    let rssMb = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = procStat(entry);
      if (stat?.group !== this.#group) continue;
      try {
        this.#cpuS.set(Number(entry), stat.cpuS);
        const pss = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${entry}/smaps_rollup`, 'utf8'));
        rssMb += Number(pss?.[1] ?? 0) / 1024;
      } catch {
        // Gone meanwhile.
      }
    }
    this.#peakRssMb = Math.max(this.#peakRssMb, rssMb);
  }

  /** CPU seconds of the group since sampling started. */
  get cpuS(): number {
    let total = 0;
    for (const value of this.#cpuS.values()) total += value;
    return total - this.#startCpuS;
  }

  /** Largest summed PSS seen, MB. */
  get peakRssMb(): number {
    return this.#peakRssMb;
  }

  /** Takes a last sample and stops. */
  stop(): { cpuS: number; peakRssMb: number } {
    this.sample();
    clearInterval(this.#timer);
    return { cpuS: this.cpuS, peakRssMb: this.peakRssMb };
  }
}

/**
 * The pieces of `file` looped, each with the time it is sent: when its last frame is captured (the
 * next piece's start), as an encoder emits a fragment once it is complete.
 */
export function* paced(file: string): Generator<Piece> {
  let previous: Piece | undefined;
  for (const piece of loopPieces(planPieces(new Uint8Array(readFileSync(sourcePath(file)))))) {
    if (previous !== undefined) yield { bytes: previous.bytes, timeS: Math.max(previous.timeS, piece.timeS) };
    previous = piece;
  }
}

/**
 * POSTs `pieces` to `url` as one streamed body, each piece at `t0` + its time, until `endS` or until
 * `signal` aborts (the body then ends there).
 */
export async function postPaced(
  url: string,
  pieces: Generator<Piece>,
  t0: number,
  endS: number,
  signal?: AbortSignal,
): Promise<number> {
  async function* timed(): AsyncGenerator<Uint8Array> {
    for (const piece of pieces) {
      if (piece.timeS > endS || signal?.aborted === true) return;
      const wait = t0 + piece.timeS * 1000 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      yield piece.bytes;
    }
  }
  const res = await postStreamed(url, timed());
  await res.arrayBuffer();
  return res.status;
}
