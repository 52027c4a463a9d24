/**
 * Ladder throughput: the same 1080p30 H.264 source (bench/make-source.sh, 20 s, not trivially
 * compressible) through (a) our decode-once ladder as fast as it goes, (b) one ffmpeg process
 * (decode once, split, scale bicubic, libx264 superfast/zerolatency, same bitrates, keyframes at the
 * source's), (c) the LVQR-style chain: three ffmpeg processes, each decoding the source, (d) our
 * ladder on the chromium backend (decode, scale and encode in a headless Chromium). Contenders
 * alternate; each reports fps, x realtime, CPU-s per source second, peak RSS, and PSNR/SSIM per
 * rung against the source scaled with bicubic. Then the audio ladder alone on the same source:
 * the CPU it adds per source second.
 *   node --expose-gc --import tsx bench/ladder-throughput.ts [--rounds 3] [--smoke]
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  arg,
  ensureSources,
  fmtSummary,
  machine,
  measure,
  OUT_DIR,
  quality,
  SMOKE,
  sourcePath,
  summary,
  table,
  today,
  writeSection,
} from './lib.ts';

const RUNGS = [
  { name: '720p', width: 1280, height: 720, kbps: 2500 },
  { name: '480p', width: 854, height: 480, kbps: 1200 },
  { name: '240p', width: 426, height: 240, kbps: 400 },
] as const;

type Run = {
  wallS: number;
  cpuS: number;
  peakRssMb: number;
  files: Record<string, string>;
  /** The CPU seconds of the browser's processes (chromium backend). */
  browserCpuS?: number;
};

const rounds = SMOKE ? 1 : Number(arg('rounds') ?? 3);
ensureSources();
const source = sourcePath('source-1080p30.mp4');
const durationS = SMOKE ? 2 : 20;
const frames = durationS * 30;

function x264(kbps: number): string[] {
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

async function ours(dir: string): Promise<Run> {
  const m = await measure(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/run-ladder.ts', source, dir]);
  if (m.code !== 0) throw new Error(`our ladder failed: ${m.stderr.slice(-2000)}`);
  return { ...m, files: Object.fromEntries(RUNGS.map((r) => [r.name, join(dir, `${r.name}.mp4`)])) };
}

/**
 * Our ladder with the chromium backend. The browser is launched before the ladder's clock starts (a
 * service keeps it running): wall time from the ladder's start; CPU of the ladder process from then
 * plus every browser process; memory: the ladder process's peak RSS plus the browser's peak PSS.
 */
async function chromium(dir: string): Promise<Run> {
  const m = await measure(process.execPath, [
    '--expose-gc',
    '--import',
    'tsx',
    'bench/run-ladder.ts',
    source,
    dir,
    '--chromium',
  ]);
  if (m.code !== 0) throw new Error(`the chromium ladder failed: ${m.stderr.slice(-2000)}`);
  const line = m.stdout.trim().split('\n').at(-1) ?? '{}';
  const figures = JSON.parse(line) as {
    wallS: number;
    cpuS: number;
    maxRssMb: number;
    chromium: { cpuS: number; peakRssMb: number };
  };
  return {
    wallS: figures.wallS,
    cpuS: figures.cpuS + figures.chromium.cpuS,
    peakRssMb: figures.maxRssMb + figures.chromium.peakRssMb,
    browserCpuS: figures.chromium.cpuS,
    files: Object.fromEntries(RUNGS.map((r) => [r.name, join(dir, `${r.name}.mp4`)])),
  };
}

async function ffmpegOne(dir: string): Promise<Run> {
  const split = `[0:v]split=3${RUNGS.map((_, i) => `[s${i}]`).join('')};${RUNGS.map((r, i) => `[s${i}]scale=${r.width}:${r.height}:flags=bicubic[o${i}]`).join(';')}`;
  const args = ['-nostdin', '-y', '-v', 'error', '-i', source, '-filter_complex', split];
  RUNGS.forEach((r, i) => {
    args.push('-map', `[o${i}]`, ...x264(r.kbps), join(dir, `${r.name}.mp4`));
  });
  const m = await measure('ffmpeg', args);
  if (m.code !== 0) throw new Error(m.stderr);
  return { ...m, files: Object.fromEntries(RUNGS.map((r) => [r.name, join(dir, `${r.name}.mp4`)])) };
}

async function lvqrStyle(dir: string): Promise<Run> {
  // Three independent pipelines, each decoding the source (as LVQR runs one GStreamer chain per rung).
  const runs = await Promise.all(
    RUNGS.map((r) =>
      measure('ffmpeg', [
        '-nostdin',
        '-y',
        '-v',
        'error',
        '-threads',
        '1',
        '-i',
        source,
        '-vf',
        `scale=${r.width}:${r.height}:flags=bilinear`,
        ...x264(r.kbps),
        join(dir, `${r.name}.mp4`),
      ]),
    ),
  );
  for (const m of runs) if (m.code !== 0) throw new Error(m.stderr);
  return {
    wallS: Math.max(...runs.map((m) => m.wallS)),
    cpuS: runs.reduce((a, m) => a + m.cpuS, 0),
    peakRssMb: runs.reduce((a, m) => a + m.peakRssMb, 0),
    files: Object.fromEntries(RUNGS.map((r) => [r.name, join(dir, `${r.name}.mp4`)])),
  };
}

const contenders = {
  ours,
  'ours, chromium backend': chromium,
  'ffmpeg (one process)': ffmpegOne,
  'LVQR-style (3 decodes)': lvqrStyle,
} as const;
type Name = keyof typeof contenders;
const results = new Map<Name, Run[]>();
for (let round = 0; round < rounds; round++) {
  for (const name of Object.keys(contenders) as Name[]) {
    const dir = join(OUT_DIR, 'throughput', name.replace(/[^a-z]+/gi, '-'), String(round));
    mkdirSync(dir, { recursive: true });
    const run = await contenders[name](dir);
    results.set(name, [...(results.get(name) ?? []), run]);
    console.log(
      `round ${round + 1}/${rounds} ${name}: ${(frames / run.wallS).toFixed(1)} fps, ${(run.cpuS / durationS).toFixed(2)} CPU-s/s, ${run.peakRssMb.toFixed(0)} MB`,
    );
  }
}

// What the audio ladder adds: the source's AAC decoded once, AAC 128/96/64 and Opus 64 encoded.
const audioCpu: number[] = [];
for (let round = 0; round < rounds; round++) {
  const m = await measure(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/run-audio-ladder.ts', source]);
  if (m.code !== 0) throw new Error(`the audio ladder failed: ${m.stderr.slice(-2000)}`);
  const run = JSON.parse(m.stdout.trim().split('\n').at(-1)!) as { sourceS: number; cpuS: number };
  audioCpu.push(run.cpuS / run.sourceS);
  console.log(`round ${round + 1}/${rounds} audio ladder: ${(run.cpuS / run.sourceS).toFixed(3)} CPU-s/s`);
}

const rows: string[][] = [];
const q = new Map<Name, Record<string, { psnr: number; ssim: number }>>();
for (const [name, runs] of results) {
  const last = runs.at(-1)!;
  const perRung: Record<string, { psnr: number; ssim: number }> = {};
  for (const r of RUNGS) perRung[r.name] = quality(last.files[r.name]!, source, r.width, r.height);
  q.set(name, perRung);
  rows.push([
    name,
    fmtSummary(runs.map((r) => frames / r.wallS)),
    fmtSummary(
      runs.map((r) => durationS / r.wallS),
      2,
    ),
    fmtSummary(
      runs.map((r) => r.cpuS / durationS),
      2,
    ),
    fmtSummary(
      runs.map((r) => r.peakRssMb),
      0,
    ),
    RUNGS.map((r) => `${perRung[r.name]!.psnr.toFixed(2)} / ${perRung[r.name]!.ssim.toFixed(4)}`).join('<br>'),
  ]);
}
const fps = (n: Name) => summary(results.get(n)!.map((r) => frames / r.wallS)).median;
const ratioB = fps('ours') / fps('ffmpeg (one process)');
const ratioC = fps('ours') / fps('LVQR-style (3 decodes)');
const psnrGap = RUNGS.map((r) => q.get('ffmpeg (one process)')![r.name]!.psnr - q.get('ours')![r.name]!.psnr);
/** The browser's share of the chromium backend's CPU, medians over the rounds. */
function browserShare(): string {
  const runs = results.get('ours, chromium backend')!;
  const browser = summary(runs.map((r) => r.browserCpuS ?? 0)).median;
  const all = summary(runs.map((r) => r.cpuS)).median;
  return `${browser.toFixed(1)} of ${all.toFixed(1)} CPU-s`;
}
const text = `Command: \`npm run bench:throughput\` (${rounds} alternating rounds). Machine: ${machine()}. Date: ${today()}.
Source: bench/out/source-1080p30.mp4 (${durationS} s, 1920x1080 30 fps H.264 High with B-frames, 2 s GOP). Rungs 720p/480p/240p at 2500/1200/400 kb/s, x264 superfast + zerolatency, CBR with a 1 s buffer, keyframes at the source's.

${table(['contender', 'output fps', 'x realtime', 'CPU-s per source s', 'peak RSS MB', 'PSNR dB / SSIM per rung (720p, 480p, 240p)'], rows)}

Ratios (medians): ours / ffmpeg one process = **${ratioB.toFixed(2)}** (target >= 1.0); ours / LVQR-style = **${ratioC.toFixed(2)}** (target >= 1.5).
PSNR gap to ffmpeg per rung (dB, target <= 0.5): ${RUNGS.map((r, i) => `${r.name} ${psnrGap[i]!.toFixed(2)}`).join(', ')}.
Quality is measured frame by frame (index-aligned) against the source scaled with bicubic.
The chromium backend (\`--transcode-backend chromium\`): decode (Chromium's FFmpeg), scale (libyuv box filter) and encode (OpenH264, not x264) in a headless Chromium, the same ladder code around it; ours / chromium backend = **${(fps('ours') / fps('ours, chromium backend')).toFixed(2)}**. Its wall time starts with the ladder (the browser already runs, as in a service); its CPU adds every browser process (${browserShare()} of it in the browser), its memory the browser's PSS.

Audio ladder (\`--transcode-audio ladder\`: the source's AAC decoded once, AAC-LC at 128/96/64 kb/s and Opus at 64 kb/s): **${fmtSummary(audioCpu, 3)} CPU-s per source second** on top of the video ladder (bench/run-audio-ladder.ts, CPU of the whole process from the first byte ingested to the last rendition ended, the file's demuxing included).`;
console.log(`\n${text}\n`);
writeSection('Ladder throughput (1080p30 -> 720p/480p/240p)', text);
