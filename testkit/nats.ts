/**
 * Runs a real `nats-server` with JetStream on loopback for cluster tests and benchmarks: a port the
 * server picks itself, a fresh store directory, and a restart on the same port (the NATS-restart
 * failover case). The server is killed when the test process exits.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A running nats-server. */
export type RunningNats = {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The server's process id (a new one after `restart`). */
  readonly pid: number;
  /** Stops the server (SIGKILL: memory streams and buckets are gone, as after a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port with an empty store. */
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  stop(): Promise<void>;
};

const live = new Set<ChildProcess>();
let hooked = false;

/** The nats-server binary: `NATS_SERVER`, else Debian's. */
export const NATS_SERVER = process.env['NATS_SERVER'] ?? 'nats-server';

async function launch(port: number, dir: string): Promise<{ child: ChildProcess; port: number }> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not start within 10 s:\n${output}`));
    }, 10_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(output);
      if (m !== null && output.includes('Server is ready')) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        child.stdout?.off('data', onData);
        child.stderr?.resume();
        child.stdout?.resume();
        resolve({ child, port: Number(m[1]) });
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${output}`));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts `nats-server -js` on a port of its own choosing. */
export async function startNats(): Promise<RunningNats> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lvqr-nats-'));
  let current = await launch(-1, dir);
  const port = current.port;
  const kill = async (): Promise<void> => {
    current.child.kill('SIGKILL');
    await exited(current.child);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.child.pid ?? 0;
    },
    kill,
    async restart() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
      current = await launch(port, dir);
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
