/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, or the inspector's `Profiler.stop`): the functions
 * with the most self time, and self time by category (native addon, GC, our `src/<folder>`, Node
 * internals, hono, other packages). A native function (no script URL) counts towards the category of
 * the nearest JavaScript frame that called it, marked `(native)`.
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile | dir>... [--top 15] [--markdown]
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { arg, ROOT, table } from './lib.ts';

/** A node of a `.cpuprofile` (Chrome DevTools Protocol `Profiler.ProfileNode`). */
type ProfileNode = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
};

/** A `.cpuprofile` file (`Profiler.Profile`), times in microseconds. */
type Profile = { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] };

/** Self time of one function (all nodes with the same name and location). */
type FunctionTime = { name: string; where: string; category: string; selfUs: number };

/** Self time per function and per category, plus the profile's span. */
export type ProfileSummary = {
  wallUs: number;
  /** Samples times the sampling interval: less than `wallUs` when the thread waited for a core. */
  sampledUs: number;
  intervalUs: number;
  idleUs: number;
  functions: FunctionTime[];
  categories: Array<{ category: string; selfUs: number }>;
};

const VM_FRAMES: Record<string, string> = {
  '(garbage collector)': 'GC',
  '(program)': 'V8/native outside any JS frame (program)',
  '(idle)': 'idle',
  '(root)': 'idle',
};

/** The category of a script URL, or undefined for a native frame. */
export function categoryOf(url: string): string | undefined {
  if (url === '') return undefined;
  if (url.startsWith('node:')) return 'node internals';
  const path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1];
  if (pkg !== undefined) {
    if (pkg.startsWith('@napi-rs/webcodecs')) return 'native addon (@napi-rs/webcodecs)';
    if (pkg === 'hono' || pkg.startsWith('@hono/')) return 'hono';
    if (pkg === 'tsx' || pkg === 'esbuild' || pkg === 'get-tsconfig') return 'tsx loader';
    return pkg;
  }
  const rel = relative(ROOT, path);
  const src = /^src\/([^/]+)\//.exec(rel)?.[1];
  if (src !== undefined) return src === 'webcodecs' ? 'src/webcodecs (binding)' : `src/${src}`;
  if (rel.startsWith('bench/')) return 'bench (harness)';
  if (rel.startsWith('test/')) return 'test';
  return 'other';
}

/** A script URL as a path relative to the repository, or from `node_modules/` on. */
function shortPath(url: string): string {
  const path = decodeURIComponent(url.replace(/^file:\/\//, ''));
  const modules = path.lastIndexOf('/node_modules/');
  return modules === -1 ? relative(ROOT, path) : path.slice(modules + 1);
}

/** Self time per function and category of `profile`. */
export function summarise(profile: Profile): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const categoryCache = new Map<number, string>();
  const nodeCategory = (id: number): string => {
    const cached = categoryCache.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id)!;
    const vm = VM_FRAMES[node.callFrame.functionName];
    let category: string;
    if (vm !== undefined && node.callFrame.url === '') {
      category = vm;
    } else {
      const own = categoryOf(node.callFrame.url);
      if (own !== undefined) {
        category = own;
      } else {
        // A native function: charge it to the JavaScript that called it.
        let up = parent.get(id);
        let caller: string | undefined;
        while (up !== undefined && caller === undefined) {
          caller = categoryOf(byId.get(up)!.callFrame.url);
          up = parent.get(up);
        }
        category = `${caller ?? 'other'} (native)`;
      }
    }
    categoryCache.set(id, category);
    return category;
  };

  // Each sample counts one sampling interval (the median gap between samples). Weighting a sample
  // by the gap that follows it instead would charge a descheduled thread's wait (a busy machine)
  // to whatever function it stopped in.
  const deltas = [...profile.timeDeltas].sort((a, b) => a - b);
  const intervalUs = deltas[Math.floor(deltas.length / 2)] ?? 1000;
  const selfUs = new Map<number, number>();
  for (const id of profile.samples) selfUs.set(id, (selfUs.get(id) ?? 0) + intervalUs);

  const functions = new Map<string, FunctionTime>();
  const categories = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const category = nodeCategory(id);
    if (category === 'idle') {
      idleUs += us;
      continue;
    }
    categories.set(category, (categories.get(category) ?? 0) + us);
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url === '' ? '' : url.startsWith('node:') ? url : shortPath(url);
    // Files compiled on the fly (tsx) report every function on line 1: name the file alone.
    const where = file === '' ? '(native)' : lineNumber > 0 ? `${file}:${lineNumber + 1}` : file;
    const key = `${functionName}@${where}@${category}`;
    const entry = functions.get(key) ?? { name: functionName || '(anonymous)', where, category, selfUs: 0 };
    entry.selfUs += us;
    functions.set(key, entry);
  }
  return {
    wallUs: profile.endTime - profile.startTime,
    sampledUs: profile.samples.length * intervalUs,
    intervalUs,
    idleUs,
    functions: [...functions.values()].sort((a, b) => b.selfUs - a.selfUs),
    categories: [...categories].map(([category, us]) => ({ category, selfUs: us })).sort((a, b) => b.selfUs - a.selfUs),
  };
}

/** Text (or markdown) tables of a summary. */
export function formatSummary(name: string, s: ProfileSummary, top: number, markdown: boolean): string {
  const busyUs = s.sampledUs - s.idleUs;
  const ms = (us: number) => (us / 1000).toFixed(0);
  const pct = (us: number, of: number) => `${((100 * us) / of).toFixed(1)} %`;
  const render = (head: string[], rows: string[][]): string => {
    if (markdown) return table(head, rows);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
  };
  const lines = [
    `${name}: ${ms(s.wallUs)} ms profiled, ${ms(s.sampledUs)} ms sampled (every ${(s.intervalUs / 1000).toFixed(2)} ms): ` +
      `${ms(busyUs)} ms busy, ${ms(s.idleUs)} ms idle`,
    '',
    render(
      ['category (self time)', 'ms', '% of busy'],
      s.categories.map((c) => [c.category, ms(c.selfUs), pct(c.selfUs, busyUs)]),
    ),
    '',
    render(
      ['function (self time)', 'where', 'category', 'ms', '% of busy'],
      s.functions.slice(0, top).map((f) => [f.name, f.where, f.category, ms(f.selfUs), pct(f.selfUs, busyUs)]),
    ),
  ];
  return lines.join('\n');
}

function profileFiles(paths: readonly string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .sort()
          .map((f) => join(p, f))
      : [p],
  );
}

if (process.argv[1] !== undefined && basename(process.argv[1]) === 'profile-summary.ts') {
  const top = Number(arg('top') ?? 15);
  const markdown = process.argv.includes('--markdown');
  const paths = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--top');
  if (paths.length === 0) {
    console.error('usage: profile-summary.ts <file.cpuprofile | dir>... [--top 15] [--markdown]');
    process.exit(2);
  }
  for (const file of profileFiles(paths)) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    console.log(`${formatSummary(relative(process.cwd(), file), summarise(profile), top, markdown)}\n`);
  }
}
