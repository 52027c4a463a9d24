/**
 * The service image, replayed without a container engine (none runs here or in CI). The Dockerfile
 * is parsed, not restated: its COPY lines copy from the build context (minus `.dockerignore`) into
 * a clean temp folder that stands for the image's root; its RUN lines (npm commands only) run there
 * with the image's ENV and npm's warm cache (`npm_config_prefer_offline`; the production install
 * takes about 7 s); the service starts there with the image's ENTRYPOINT + CMD (the CMD's `--port`
 * swapped for 0) and only the image's ENV. When the tests run as root, the service runs as uid/gid
 * 65534, a user that owns none of the files, as USER does in the image (files COPY'd without
 * --chown belong to root); run as another user, the mode check below stands in for that.
 *
 * So a runtime import of a dev dependency, a file the image lacks, a dev package in the production
 * install, or an install command that cannot work with the committed lockfile fails these tests.
 * Not checked: the base image itself (its Node and npm are the ones running the tests), the uid
 * `node` has there, and COPY flags such as --chown (read, then ignored).
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../testkit/server.ts';
import { probeStreams } from '../support/ffprobe.ts';
import { waitFor } from '../support/wait.ts';

const exec = promisify(execFile);
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** One Dockerfile instruction, continuation lines joined. */
type Instruction = { keyword: string; args: string; line: number };

/** Instructions of a Dockerfile (comments and blank lines dropped, `\` continuations joined). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    if (pending === '') start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const match = /^(\S+)\s*(.*)$/s.exec((pending + line).trim())!;
    pending = '';
    out.push({ keyword: match[1]!.toUpperCase(), args: match[2]!, line: start });
  });
  return out;
}

/** Exec-form (JSON array) or whitespace-separated words of an instruction. */
function words(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/).filter((w) => w !== '');
}

/** `KEY=value ...` (values may be double-quoted) or the legacy `KEY value`. */
function envPairs(args: string): Array<[string, string]> {
  if (!/^[^\s=]+=/.test(args)) {
    const [key, ...rest] = args.split(/\s+/);
    return [[key!, rest.join(' ')]];
  }
  return [...args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => [
    m[1]!,
    m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!,
  ]);
}

/** A build step, with the WORKDIR and ENV in force at its line. */
type Step =
  | { kind: 'copy'; sources: string[]; dest: string; workdir: string; line: number }
  | { kind: 'run'; command: string; workdir: string; env: Record<string, string>; line: number };

/** What the Dockerfile builds and how the image starts. */
type Image = {
  from: string;
  steps: Step[];
  workdir: string;
  env: Record<string, string>;
  expose: number[];
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
};

/** The image a Dockerfile describes; throws on what this replay cannot do. */
function describeImage(instructions: Instruction[]): Image {
  const image: Image = {
    from: '',
    steps: [],
    workdir: '/',
    env: {},
    expose: [],
    user: undefined,
    entrypoint: [],
    cmd: [],
  };
  for (const { keyword, args, line } of instructions) {
    const where = `Dockerfile:${line} ${keyword}`;
    switch (keyword) {
      case 'FROM':
        if (image.from !== '') throw new Error(`${where}: multi-stage builds are not replayed`);
        image.from = args;
        break;
      case 'WORKDIR':
        image.workdir = path.posix.resolve(image.workdir, args);
        break;
      case 'ENV':
        for (const [key, value] of envPairs(args)) image.env[key] = value;
        break;
      case 'COPY': {
        const list = words(args);
        const flags = list.filter((w) => w.startsWith('--'));
        const unknown = flags.filter((f) => !/^--(chown|chmod)=/.test(f));
        if (unknown.length > 0) throw new Error(`${where}: ${unknown.join(' ')} is not replayed`);
        const paths = list.filter((w) => !w.startsWith('--'));
        if (paths.length < 2) throw new Error(`${where}: needs a source and a destination`);
        image.steps.push({
          kind: 'copy',
          sources: paths.slice(0, -1),
          dest: paths.at(-1)!,
          workdir: image.workdir,
          line,
        });
        break;
      }
      case 'RUN':
        if (!/^(npm|node bin\/)/.test(args)) {
          throw new Error(`${where}: only npm commands and the package's own bin are replayed, got: ${args}`);
        }
        image.steps.push({ kind: 'run', command: args, workdir: image.workdir, env: { ...image.env }, line });
        break;
      case 'EXPOSE':
        image.expose.push(...words(args).map((p) => Number.parseInt(p, 10)));
        break;
      case 'USER':
        image.user = args;
        break;
      case 'ENTRYPOINT':
      case 'CMD':
        if (!args.startsWith('[')) throw new Error(`${where}: only the exec (JSON) form is replayed`);
        if (keyword === 'CMD') image.cmd = words(args);
        else image.entrypoint = words(args);
        break;
      default:
        throw new Error(`${where}: not replayed by this test; teach it the instruction`);
    }
  }
  return image;
}

/** A `.dockerignore` glob as a regular expression (`**` crosses folders, `*` and `?` do not). */
function globRegex(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      i++;
      if (glob[i + 1] === '/') {
        i++;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Whether a context-relative path is left out of the build context by `.dockerignore` rules:
 * patterns are anchored at the context root, a match on a parent folder excludes what is inside,
 * `!` re-includes, the last matching rule wins.
 */
function dockerignore(text: string): (rel: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize(negate ? l.slice(1).trim() : l).replace(/^\/+|\/+$/g, '');
      return { negate, re: globRegex(pattern) };
    });
  return (rel) => {
    const parts = rel.split('/');
    let excluded = false;
    for (const { negate, re } of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (re.test(parts.slice(0, n).join('/'))) {
          excluded = !negate;
          break;
        }
      }
    }
    return excluded;
  };
}

/** One sample path per `.gitignore` pattern (unanchored patterns also one folder down). */
function gitignoreSamples(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('!'))
    .flatMap((l) => {
      const anchored = l.replace(/\/$/, '').includes('/');
      const p = l
        .replace(/^\/|\/$/g, '')
        .replaceAll('**', 'x')
        .replaceAll('*', 'sample')
        .replaceAll('?', 'x');
      const sample = l.endsWith('/') ? `${p}/sample` : p;
      return anchored ? [sample] : [sample, `src/${sample}`];
    });
}

/** Copies a COPY step's sources from the context into `root` (the image's `/`), as the build does. */
function copyStep(step: Extract<Step, { kind: 'copy' }>, root: string, ignored: (rel: string) => boolean): void {
  const where = `Dockerfile:${step.line} COPY`;
  const sources = step.sources.flatMap((source) => {
    const rel = path.posix.normalize(source).replace(/^\.\/|\/$/g, '');
    if (!/[*?]/.test(rel)) return [rel];
    const dir = path.posix.dirname(rel);
    const re = globRegex(path.posix.basename(rel));
    return readdirSync(path.join(ROOT, dir))
      .filter((name) => re.test(name))
      .map((name) => path.posix.join(dir, name));
  });
  const dest = path.posix.resolve(step.workdir, step.dest);
  const intoFolder = step.dest.endsWith('/') || step.sources.length > 1;
  for (const rel of sources) {
    if (rel !== '.' && ignored(rel)) throw new Error(`${where} ${rel}: excluded by .dockerignore`);
    const from = path.join(ROOT, rel);
    if (!existsSync(from)) throw new Error(`${where} ${rel}: not in the build context`);
    const target = path.join(
      root,
      lstatSync(from).isDirectory() || !intoFolder ? dest : path.posix.join(dest, path.basename(rel)),
    );
    mkdirSync(path.dirname(target), { recursive: true });
    cpSync(from, target, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (p) => {
        const r = path.relative(ROOT, p).split(path.sep).join('/');
        return r === '' || !ignored(r);
      },
    });
  }
}

/** Every package installed under `dir`, keyed as package-lock.json keys them (`node_modules/a/node_modules/b`). */
function installedPackages(dir: string, prefix = ''): Map<string, string> {
  const found = new Map<string, string>();
  const modules = path.join(dir, prefix, 'node_modules');
  if (!existsSync(modules)) return found;
  const names = readdirSync(modules)
    .filter((n) => !n.startsWith('.'))
    .flatMap((n) => (n.startsWith('@') ? readdirSync(path.join(modules, n)).map((s) => `${n}/${s}`) : [n]));
  for (const name of names) {
    const key = `${prefix}node_modules/${name}`;
    const manifest = path.join(dir, key, 'package.json');
    if (!existsSync(manifest)) continue;
    found.set(key, (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version);
    for (const [k, v] of installedPackages(dir, `${key}/`)) found.set(k, v);
  }
  return found;
}

/** Files and folders under `dir` (node_modules left out) that a user owning none of them cannot read. */
function unreadableByOthers(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((rel) => !rel.split(path.sep).includes('node_modules'))
    .filter((rel) => {
      const st = statSync(path.join(dir, rel));
      return st.isDirectory() ? (st.mode & 0o005) !== 0o005 : (st.mode & 0o004) === 0;
    });
}

/** The CMD with its `--port N` (or `--port=N`) value replaced, and the value it had. */
function withPort(cmd: readonly string[], port: string): { args: string[]; was: number | undefined } {
  const args = [...cmd];
  const i = args.findIndex((a) => a === '--port' || a.startsWith('--port='));
  if (i < 0) return { args, was: undefined };
  if (args[i] === '--port') {
    const was = Number(args[i + 1]);
    args[i + 1] = port;
    return { args, was };
  }
  const was = Number(args[i]!.slice('--port='.length));
  args[i] = `--port=${port}`;
  return { args, was };
}

const image = describeImage(parseDockerfile(read('Dockerfile')));
const ignored = dockerignore(read('.dockerignore'));
const lock = JSON.parse(read('package-lock.json')) as {
  packages: Record<string, { version?: string; dev?: boolean; optional?: boolean; devOptional?: boolean }>;
};

describe('the Dockerfile and its build context', () => {
  it("a Node base that meets engines, EXPOSE is the CMD's port, NODE_ENV=production, glibc's fixed mmap threshold, a non-root USER", () => {
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const base = /^node:(\d+)/.exec(image.from);
    expect(base, `FROM ${image.from}`).not.toBeNull();
    expect(Number(base![1])).toBeGreaterThanOrEqual(Number(/(\d+)/.exec(engines)![1]));
    expect(image.expose).toContain(withPort(image.cmd, '0').was);
    expect(image.user).toBeDefined();
    expect(['root', '0']).not.toContain(image.user!.split(':')[0]);
    expect(image.env['NODE_ENV']).toBe('production');
    // Frame buffers go back to the system when freed (RSS stays level under overload).
    expect(image.env['MALLOC_MMAP_THRESHOLD_']).toBe('131072');
    expect(image.entrypoint.length).toBeGreaterThan(0);
  });

  it('the build context leaves out .git, node_modules, generated fixtures and everything .gitignore lists', () => {
    const samples = ['.git', '.git/HEAD', 'node_modules/vitest/package.json', ...gitignoreSamples(read('.gitignore'))];
    expect(samples.filter((s) => !ignored(s))).toEqual([]);
    for (const kept of ['package.json', 'src/index.ts', 'bin/lvqr-transcode.mjs']) expect(ignored(kept)).toBe(false);
  });
});

describe('the service image (Dockerfile replayed in a temp folder)', () => {
  let root = '';
  let app = '';
  let child: ChildProcess | undefined;
  // The service's process group (the launcher and the Node it starts).
  const killGroup = () => {
    if (child?.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  };

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'lvqr-image-'));
    // The image's `/` is world-readable; mkdtemp makes a private folder.
    chmodSync(root, 0o755);
    app = path.join(root, image.workdir);
    for (const step of image.steps) {
      if (step.kind === 'copy') {
        copyStep(step, root, ignored);
        continue;
      }
      const cwd = path.join(root, step.workdir);
      mkdirSync(cwd, { recursive: true });
      try {
        await exec('sh', ['-c', step.command], {
          cwd,
          env: { ...process.env, ...step.env, npm_config_prefer_offline: 'true' },
          maxBuffer: 16 * 1024 * 1024,
        });
      } catch (error) {
        const e = error as { stdout?: string; stderr?: string; message: string };
        throw new Error(`Dockerfile:${step.line} RUN ${step.command} failed: ${e.message}\n${e.stdout}\n${e.stderr}`);
      }
    }
  }, 240_000);

  afterAll(() => {
    killGroup();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('every copied file and folder is readable by a user who owns none of them (USER)', () => {
    expect(unreadableByOthers(app)).toEqual([]);
  });

  it("installs exactly the lockfile's production packages, at the lockfile's versions", () => {
    const installed = installedPackages(app);
    expect(installed.size).toBeGreaterThan(0);
    const wrong = [...installed].filter(([key, version]) => {
      const entry = lock.packages[key];
      return entry === undefined || entry.version !== version || entry.dev === true;
    });
    expect(wrong, 'installed packages missing from the lockfile, at another version, or dev-only').toEqual([]);
    const required = Object.entries(lock.packages).filter(
      ([key, e]) => key !== '' && !e.dev && !e.optional && !e.devOptional,
    );
    expect(required.filter(([key]) => !installed.has(key)).map(([key]) => key)).toEqual([]);
  });

  it('starts with its ENTRYPOINT + CMD as a non-root user, serves /healthz and a playable test-pattern master, and stops on SIGTERM', async () => {
    const [command, ...entryArgs] = image.entrypoint;
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    let output = '';
    child = spawn(command!, [...entryArgs, ...withPort(image.cmd, '0').args], {
      cwd: app,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env['PATH'] ?? ''}`, ...image.env },
      ...asNobody,
    });
    process.once('exit', killGroup);
    const append = (chunk: Buffer) => {
      output += chunk.toString('utf8');
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      child!.once('exit', (code, signal) => resolve({ code, signal }));
      child!.once('error', (error) => resolve({ code: null, signal: error.message }));
    });
    const crashed = exited.then((status) => {
      throw new Error(`the service exited (${JSON.stringify(status)}); output:\n${output}`);
    });
    void crashed.catch(() => undefined);

    const port = await Promise.race([
      waitFor(() => /listening on \S+:(\d+)/.exec(output)?.[1], 'the listening line', {
        timeoutMs: 60_000,
        intervalMs: 50,
      }),
      crashed,
    ]);
    // The image's RUN compiled the service: it runs without a TypeScript loader.
    expect(output).not.toContain('running through tsx');
    const base = `http://127.0.0.1:${port}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe('ok');

    const { ladder } = (await (await fetch(`${base}/api/v1/transcode`)).json()) as { ladder: Array<{ name: string }> };
    expect(ladder.length).toBeGreaterThan(0);
    const master = await Promise.race([
      waitFor(
        async () => {
          const res = await fetch(`${base}/hls/live/demo/master.m3u8`);
          const text = await res.text();
          // The 720p rung is bypassed (the 1280x720 test pattern is below its bitrate): the source serves 720p.
          const listed = ladder.filter((r) => r.name !== '720p');
          return res.ok && listed.every((r) => text.includes(`${r.name}/playlist.m3u8`)) ? text : undefined;
        },
        'the test-pattern master to list every rung but the bypassed 720p',
        { timeoutMs: 60_000, intervalMs: 200 },
      ),
      crashed,
    ]);
    const resolutions = [...master.matchAll(/CODECS="[^"]*mp4a[^"]*",RESOLUTION=(\d+)x(\d+)/g)].map(
      (m) => `${m[1]}x${m[2]}`,
    );
    // The source (serving 720p) and the rungs below it, each resolution once with AAC (the audio
    // ladder lists each once more with Opus).
    expect(resolutions.length).toBe(ladder.length);
    expect(new Set(resolutions).size).toBe(resolutions.length);
    // ffprobe opens the master over HTTP and reads every variant's init and media segments.
    const streams = await probeStreams(`${base}/hls/live/demo/master.m3u8`);
    const video = new Set(streams.filter((s) => s.codecName === 'h264').map((s) => `${s.width}x${s.height}`));
    expect([...new Set(resolutions)].filter((r) => !video.has(r))).toEqual([]);
    expect(streams.some((s) => s.codecName === 'aac')).toBe(true);

    // `docker stop` signals the entrypoint process alone, then kills it after 10 s.
    child.kill('SIGTERM');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      exited,
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still running after 10 s'), 10_000))),
    ]);
    clearTimeout(timer);
    expect(status, output).toEqual({ code: 0, signal: null });
  }, 180_000);
});
