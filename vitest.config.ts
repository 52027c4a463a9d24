import { defineConfig } from 'vitest/config';

/**
 * Test files that play media in Chromium. They run after every other file, one at a time: a player
 * on a 2-core machine that also runs two other test files stalls, and hls.js with its defaults
 * never catches up after a stall (test/browser/latency.test.ts saw 4 s in a full run, 1.2 s alone).
 */
const PLAYER_TESTS = ['test/browser/**/*.test.ts', 'test/e2e/playback-tokens.test.ts'];
/**
 * Test files that run a cluster (a nats-server and several service processes each): after the main
 * files, one at a time. Next to another heavy file on 2 cores their timing assertions failed in full
 * runs (a rung not yet at an edge after 20 s) while each passed alone.
 */
const CLUSTER_TESTS = ['test/cluster/**/*.test.ts'];
/**
 * Test files that load the machine on purpose or judge its speed (the benchmark smoke runs, a live
 * 720p ladder with the overload policy on that must shed nothing): after the main files, one at a
 * time. Next to two other files on 2 cores the policy rightly shed a rung (full runs) while each
 * passed alone.
 */
const SERIAL_TESTS = ['test/bench/**/*.test.ts', 'test/e2e/warmup.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The WebCodecs addon frees native frame memory only on GC.
    execArgv: ['--expose-gc'],
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: [...PLAYER_TESTS, ...CLUSTER_TESTS, ...SERIAL_TESTS],
          fileParallelism: true,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'serial', include: SERIAL_TESTS, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
      {
        extends: true,
        test: { name: 'cluster', include: CLUSTER_TESTS, fileParallelism: false, sequence: { groupOrder: 2 } },
      },
      {
        extends: true,
        test: { name: 'players', include: PLAYER_TESTS, fileParallelism: false, sequence: { groupOrder: 3 } },
      },
    ],
  },
});
