/**
 * Ladder throughput: the same 1080p30 H.264 source (bench/make-source.sh, 20 s, not trivially
 * compressible) through (a) our decode-once ladder as fast as it goes (the encoders scaling, and
 * again with the frame scaler), (b) one ffmpeg process
 * (decode once, split, scale, libx264 superfast/zerolatency, same bitrates, keyframes at the
 * source's), once with the bilinear scaler (the encoders' own) and once with bicubic,
 * (c) LVQR's chain: its GStreamer software pipeline once per rung, each decoding the source (where
 * GStreamer is installed; three ffmpeg processes otherwise), (d) our ladder on the
 * chromium backend (decode, scale and encode in a headless Chromium). Contenders alternate; each
 * reports fps, x realtime, CPU-s per source second, peak RSS, and PSNR-Y/SSIM per rung against the
 * source scaled with Lanczos; the frames of every rung are counted, and the x264 settings of every
 * output are read back from its SEI and compared. Then the audio ladder alone on the same source:
 * the CPU it adds per source second.
 *   node --expose-gc --import tsx bench/ladder-throughput.ts [--rounds 3] [--smoke]
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import {
  arg,
  ensureSources,
  ffmpegLadderArgs,
  fmtSummary,
  machine,
  measure,
  OUT_DIR,
  quality,
  ROOT,
  RUNGS,
  SMOKE,
  sourcePath,
  summary,
  table,
  today,
  writeSection,
  x264,
} from './lib.ts';

type Run = {
  wallS: number;
  cpuS: number;
  peakRssMb: number;
  files: Record<string, string>;
  /** The CPU seconds of the browser's processes (chromium backend). */
  browserCpuS?: number;
  /** Our process from its start (Node, module loading, the ladder): wall and CPU seconds. */
  process?: { wallS: number; cpuS: number };
};

const rounds = SMOKE ? 1 : Number(arg('rounds') ?? 3);
ensureSources();
const source = sourcePath('source-1080p30.mp4');
const durationS = SMOKE ? 2 : 20;
const frames = durationS * 30;

/** Video frames in `file` (ffprobe counts the packets). */
function frameCount(file: string): number {
  const out = spawnSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-count_packets',
      '-show_entries',
      'stream=nb_read_packets',
      '-of',
      'csv=p=0',
      file,
    ],
    { encoding: 'utf8' },
  ).stdout;
  return Number(out.trim());
}

/** The options x264 wrote into its SEI in `file` ("x264 - core ... - options: ..."), or undefined. */
function x264Settings(file: string): string | undefined {
  const bytes = readFileSync(file);
  const at = bytes.indexOf('options: ');
  if (at === -1) return undefined;
  const end = bytes.indexOf(0, at);
  return bytes.subarray(at + 'options: '.length, end === -1 ? at + 2000 : end).toString('latin1');
}

/**
 * Our ladder, compiled to JavaScript as the service runs it (one esbuild bundle, no loader), or
 * `throughTsx` (the TypeScript sources through the tsx loader). Wall and CPU time from the ladder's
 * start (a service is already running when a broadcast starts, as the chromium backend's browser
 * is); the whole process's figures are kept in `process`. Peak RSS is the whole process's.
 */
async function ours(dir: string, throughTsx = false, extra: string[] = []): Promise<Run> {
  const entry = throughTsx ? ['--import', 'tsx', 'bench/run-ladder.ts'] : [compiledLadder()];
  const m = await measure(process.execPath, ['--expose-gc', ...entry, source, dir, ...extra]);
  if (m.code !== 0) throw new Error(`our ladder failed: ${m.stderr.slice(-2000)}`);
  const figures = JSON.parse(m.stdout.trim().split('\n').at(-1) ?? '{}') as { wallS: number; cpuS: number };
  return {
    wallS: figures.wallS,
    cpuS: figures.cpuS,
    peakRssMb: m.peakRssMb,
    process: { wallS: m.wallS, cpuS: m.cpuS },
    files: Object.fromEntries(RUNGS.map((r) => [r.name, join(dir, `${r.name}.mp4`)])),
  };
}

let compiledPath: string | undefined;
/** bench/run-ladder.ts and the sources it imports as one JavaScript file (packages stay external), as bin/compile.mjs builds the service. */
function compiledLadder(): string {
  if (compiledPath !== undefined) return compiledPath;
  // Under node_modules (packages resolve from there), outside the folders the linter reads.
  const dir = join(ROOT, 'node_modules', '.cache', 'lvqr-transcode-bench');
  compiledPath = join(dir, 'run-ladder.mjs');
  // The threads backend's worker entry beside it (the compiled ladder loads `./codec-worker.mjs`).
  const entries = { 'run-ladder': 'bench/run-ladder.ts', 'codec-worker': 'src/runtime/codec-worker.ts' };
  for (const [name, entry] of Object.entries(entries)) {
    buildSync({
      entryPoints: [join(ROOT, entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      outfile: join(dir, `${name}.mjs`),
      logLevel: 'error',
    });
  }
  return compiledPath;
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

async function ffmpegOne(dir: string, flags: 'bilinear' | 'bicubic'): Promise<Run> {
  const m = await measure('ffmpeg', ffmpegLadderArgs(['-i', source], dir, flags));
  if (m.code !== 0) throw new Error(m.stderr);
  return { ...m, files: Object.fromEntries(RUNGS.map((r) => [r.name, join(dir, `${r.name}.mp4`)])) };
}

/** The GStreamer elements of LVQR's software pipeline (lvqr-transcode `software.rs`). */
const GST_ELEMENTS = ['qtdemux', 'h264parse', 'avdec_h264', 'videoscale', 'videoconvert', 'x264enc', 'mp4mux'];

/** Whether gst-launch-1.0 and every element of LVQR's pipeline are installed. */
function gstreamerInstalled(): boolean {
  return GST_ELEMENTS.every((e) => spawnSync('gst-inspect-1.0', ['--exists', e]).status === 0);
}

/**
 * LVQR's own chain: one GStreamer pipeline per rung, each demuxing and decoding the source
 * (`qtdemux ! h264parse ! avdec_h264 ! videoscale ! caps ! videoconvert ! x264enc bitrate=K
 * tune=zerolatency speed-preset=superfast key-int-max=60 ! h264parse ! mp4mux`), all three in one
 * process as LVQR runs them.
 */
async function lvqrGstreamer(dir: string): Promise<Run> {
  const chains = RUNGS.flatMap((r) =>
    `filesrc location=${source} ! qtdemux ! h264parse ! avdec_h264 ! videoscale ! video/x-raw,width=${r.width},height=${r.height} ! videoconvert ! x264enc bitrate=${r.kbps} tune=zerolatency speed-preset=superfast key-int-max=60 ! h264parse ! mp4mux streamable=true fragment-duration=2000 ! filesink location=${join(dir, `${r.name}.mp4`)}`.split(
      ' ',
    ),
  );
  const m = await measure('gst-launch-1.0', ['-q', ...chains]);
  if (m.code !== 0) throw new Error(`gst-launch-1.0 failed: ${m.stderr.slice(-2000)}`);
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

const TSX = 'ours, through tsx';
/** Our ladder with the frame scaler (`--transcode-scaler quality`) instead of the encoders scaling. */
const OURS_QUALITY = 'ours, frame scaler (--transcode-scaler quality)';
const OURS_THREADS = 'ours, threads backend (--transcode-backend threads)';
const GST = gstreamerInstalled();
/** LVQR's GStreamer pipelines where GStreamer is installed, three ffmpeg processes otherwise. */
const LVQR = GST ? 'LVQR (GStreamer, 3 pipelines)' : 'LVQR-style (3 ffmpeg decodes)';
const contenders: Record<string, (dir: string) => Promise<Run>> = {
  ours: (dir: string) => ours(dir),
  [OURS_QUALITY]: (dir: string) => ours(dir, false, ['--frame-scaler']),
  [OURS_THREADS]: (dir: string) => ours(dir, false, ['--threads']),
  [TSX]: (dir: string) => ours(dir, true),
  'ours, chromium backend': chromium,
  'ffmpeg (one process, bilinear)': (dir: string) => ffmpegOne(dir, 'bilinear'),
  'ffmpeg (one process, bicubic)': (dir: string) => ffmpegOne(dir, 'bicubic'),
  [LVQR]: GST ? lvqrGstreamer : lvqrStyle,
};
type Name = string;
const results = new Map<Name, Run[]>();
for (let round = 0; round < rounds; round++) {
  for (const [name, contender] of Object.entries(contenders)) {
    const dir = join(OUT_DIR, 'throughput', name.replace(/[^a-z]+/gi, '-'), String(round));
    mkdirSync(dir, { recursive: true });
    const run = await contender(dir);
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
/** Rungs of a contender's last round whose frame count is not the source's. */
const wrongFrames: string[] = [];
/** x264 settings per contender (its last round's 720p output), as the encoder wrote them. */
const settings = new Map<Name, string | undefined>();
for (const [name, runs] of results) {
  const last = runs.at(-1)!;
  const perRung: Record<string, { psnr: number; ssim: number }> = {};
  for (const r of RUNGS) {
    perRung[r.name] = quality(last.files[r.name]!, source, r.width, r.height);
    const count = frameCount(last.files[r.name]!);
    if (count !== frames) wrongFrames.push(`${name} ${r.name}: ${count} of ${frames}`);
  }
  settings.set(name, x264Settings(last.files['720p']!));
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
const cpu = (n: Name) => summary(results.get(n)!.map((r) => r.cpuS / durationS)).median;
const rss = (n: Name) => summary(results.get(n)!.map((r) => r.peakRssMb)).median;
const BILINEAR: Name = 'ffmpeg (one process, bilinear)';
const BICUBIC: Name = 'ffmpeg (one process, bicubic)';
// Equal pictures: ours (the default: the encoders scale, bilinear) against ffmpeg's bilinear; ours
// with the frame scaler against ffmpeg's bicubic.
const ratioB = fps('ours') / fps(BILINEAR);
const cpuRatio = cpu('ours') / cpu(BILINEAR);
const rssRatio = rss('ours') / rss(BILINEAR);
const ratioQ = fps(OURS_QUALITY) / fps(BICUBIC);
const cpuQ = cpu(OURS_QUALITY) / cpu(BICUBIC);
const rssQ = rss(OURS_QUALITY) / rss(BICUBIC);
const ratioC = fps('ours') / fps(LVQR);
const psnrGap = RUNGS.map((r) => q.get(BICUBIC)![r.name]!.psnr - q.get(OURS_QUALITY)![r.name]!.psnr);
const defaultGap = RUNGS.map((r) => q.get(BICUBIC)![r.name]!.psnr - q.get('ours')![r.name]!.psnr);
const scalerGain = RUNGS.map((r) => q.get(OURS_QUALITY)![r.name]!.psnr - q.get('ours')![r.name]!.psnr);
const verdict = (met: boolean) => (met ? 'met' : 'missed');
/** Whether the x264 outputs were encoded with the same settings (bitrate and threads aside). */
const comparable = (s: string | undefined) =>
  s
    ?.split(' ')
    .filter((o) => !/^(threads|lookahead_threads|bitrate|vbv_maxrate|vbv_bufsize)=/.test(o))
    .join(' ');
// LVQR's GStreamer x264enc has settings of its own (GOP of 60, its VBV): reported, not compared.
const x264Names = [...settings.keys()].filter((n) => n !== 'ours, chromium backend' && !(GST && n === LVQR));

/** Median whole-process figures of a contender of ours: seconds before the ladder started, CPU-s per source s. */
function processFigures(n: Name): string {
  const runs = results.get(n)!;
  const start = summary(runs.map((r) => (r.process?.wallS ?? r.wallS) - r.wallS)).median;
  const perSource = summary(runs.map((r) => (r.process?.cpuS ?? r.cpuS) / durationS)).median;
  const wholeFps = summary(runs.map((r) => frames / (r.process?.wallS ?? r.wallS))).median;
  return `${start.toFixed(2)} s to start, then ${wholeFps.toFixed(1)} fps and ${perSource.toFixed(2)} CPU-s per source s`;
}
const sameSettings = new Set(x264Names.map((n) => comparable(settings.get(n)))).size === 1;
/** The browser's share of the chromium backend's CPU, medians over the rounds. */
function browserShare(): string {
  const runs = results.get('ours, chromium backend')!;
  const browser = summary(runs.map((r) => r.browserCpuS ?? 0)).median;
  const all = summary(runs.map((r) => r.cpuS)).median;
  return `${browser.toFixed(1)} of ${all.toFixed(1)} CPU-s`;
}
const text = `Command: \`npm run bench:throughput\` (${rounds} alternating rounds). Machine: ${machine()}. Date: ${today()}.
Source: bench/out/source-1080p30.mp4 (${durationS} s, 1920x1080 30 fps H.264 High with B-frames, 2 s GOP). Rungs 720p/480p/240p at 2500/1200/400 kb/s, x264 superfast + zerolatency, CBR with a 1 s buffer, keyframes at the source's.

${table(['contender', 'output fps', 'x realtime', 'CPU-s per source s', 'peak RSS MB', 'PSNR-Y dB / SSIM per rung (720p, 480p, 240p)'], rows)}

Our rows count from the ladder's start, as in a running service (ffmpeg's include its own start, a few tens of ms). Ours runs compiled to JavaScript, as the service does (bin/compile.mjs). Counted from the process's start: ours ${processFigures('ours')}; through tsx ${processFigures(TSX)}. The TypeScript loader against the compiled code: fps ${(fps(TSX) / fps('ours')).toFixed(2)}x, CPU ${(cpu(TSX) / cpu('ours')).toFixed(2)}x, peak RSS +${(rss(TSX) - rss('ours')).toFixed(0)} MB.

Ratios (medians) at equal pictures. Ours (the default: each encoder scales, bilinear) against ffmpeg in one process with bilinear (the same pictures): fps **${ratioB.toFixed(2)}x** (target >= 1.1: ${verdict(ratioB >= 1.1)}), CPU-s per source second **${cpuRatio.toFixed(2)}x** (target <= 1.0: ${verdict(cpuRatio <= 1)}), peak RSS **${rssRatio.toFixed(2)}x** (target <= 1.5: ${verdict(rssRatio <= 1.5)}). Ours with the frame scaler (\`--transcode-scaler quality\`) against ffmpeg with bicubic (its pictures match or beat bicubic's): fps **${ratioQ.toFixed(2)}x** (${verdict(ratioQ >= 1.1)}), CPU **${cpuQ.toFixed(2)}x** (${verdict(cpuQ <= 1)}), peak RSS **${rssQ.toFixed(2)}x** (${verdict(rssQ <= 1.5)}). Ours / ${LVQR} = **${ratioC.toFixed(2)}** (target >= 1.5: ${verdict(ratioC >= 1.5)}).
PSNR-Y below ffmpeg's bicubic per rung (dB, negative: above; target: none below): with the frame scaler ${RUNGS.map((r, i) => `${r.name} ${psnrGap[i]!.toFixed(2)}`).join(', ')} (${verdict(psnrGap.every((g) => g <= 0))}); by default (the encoders' bilinear) ${RUNGS.map((r, i) => `${r.name} ${defaultGap[i]!.toFixed(2)}`).join(', ')} (${verdict(defaultGap.every((g) => g <= 0))}). What the frame scaler costs and gives against the default in the same run: CPU ${(cpu(OURS_QUALITY) / cpu('ours')).toFixed(2)}x, fps ${(fps(OURS_QUALITY) / fps('ours')).toFixed(2)}x, peak RSS +${(rss(OURS_QUALITY) - rss('ours')).toFixed(0)} MB, PSNR-Y ${RUNGS.map((r, i) => `${r.name} ${scalerGain[i]! >= 0 ? '+' : ''}${scalerGain[i]!.toFixed(2)} dB`).join(', ')}.
Quality is measured frame by frame (index-aligned) against the source scaled with Lanczos. Frames per rung: ${wrongFrames.length === 0 ? `every rung of every contender has all ${frames}` : `WRONG: ${wrongFrames.join('; ')}`}. x264 settings read back from each output's SEI: ${sameSettings ? 'identical in every x264 contender (bitrate and thread counts aside)' : `DIFFERENT: ${x264Names.map((n) => `${n}: ${settings.get(n) ?? 'none'}`).join(' | ')}`}.${GST ? ` LVQR's x264enc (its own settings): ${settings.get(LVQR) ?? 'none'}.` : ' GStreamer is not installed here: the LVQR row is three ffmpeg processes, each decoding the source.'}
The threads backend (\`--transcode-backend threads\`: the source's decoder and encoders in a worker thread, the same codecs) against the default in the same run: fps ${(fps(OURS_THREADS) / fps('ours')).toFixed(2)}x, CPU ${(cpu(OURS_THREADS) / cpu('ours')).toFixed(2)}x, peak RSS +${(rss(OURS_THREADS) - rss('ours')).toFixed(0)} MB.
The chromium backend (\`--transcode-backend chromium\`): decode (Chromium's FFmpeg), scale (libyuv box filter) and encode (OpenH264, not x264) in a headless Chromium, the same ladder code around it; ours / chromium backend = **${(fps('ours') / fps('ours, chromium backend')).toFixed(2)}**. Its wall time starts with the ladder (the browser already runs, as in a service); its CPU adds every browser process (${browserShare()} of it in the browser), its memory the browser's PSS.

Audio ladder (\`--transcode-audio ladder\`: the source's AAC decoded once, AAC-LC at 128/96/64 kb/s and Opus at 64 kb/s): **${fmtSummary(audioCpu, 3)} CPU-s per source second** on top of the video ladder (bench/run-audio-ladder.ts, CPU of the whole process from the first byte ingested to the last rendition ended, the file's demuxing included).`;
console.log(`\n${text}\n`);
writeSection('Ladder throughput (1080p30 -> 720p/480p/240p)', text);
