/**
 * `serve --role/--nats/--node-id/--max-sources`: roles from flags or the environment, `all` as the
 * single process without NATS, and clear refusals for what cannot work.
 */

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseServe } from '../../src/server/config.ts';
import { createService } from '../../src/server/service.ts';
import { ROOT } from '../../testkit/server.ts';

const parse = (argv: string[], env: Record<string, string> = {}) => parseServe(argv, env, () => '');

describe('cluster roles on the command line', () => {
  it('without flags a node runs every role with no NATS: the single process', () => {
    const config = parse([]);
    expect(config.roles).toEqual(['ingest', 'transcode', 'edge']);
    expect(config.natsUrls).toEqual([]);
    expect(config.maxSources).toBe(4);
    expect(config.nodeId).toBe('lvqr-transcode:8080');
    expect(parse(['--role', 'all']).roles).toEqual(['ingest', 'transcode', 'edge']);
  });

  it('roles come comma-separated or repeated, from --role or LVQR_ROLE, with --nats (several URLs) from the flag or LVQR_NATS_URL', () => {
    const config = parse(['--role', 'edge,ingest', '--nats', 'nats://a:4222,nats://b:4222', '--node-id', 'n1']);
    expect(config.roles).toEqual(['ingest', 'edge']);
    expect(config.natsUrls).toEqual(['nats://a:4222', 'nats://b:4222']);
    expect(config.nodeId).toBe('n1');
    const fromEnv = parse(['--port', '9000'], {
      LVQR_ROLE: 'transcode',
      LVQR_NATS_URL: 'nats://127.0.0.1:4222',
      LVQR_MAX_SOURCES: '2',
      HOSTNAME: 'box',
    });
    expect(fromEnv.roles).toEqual(['transcode']);
    expect(fromEnv.natsUrls).toEqual(['nats://127.0.0.1:4222']);
    expect(fromEnv.maxSources).toBe(2);
    expect(fromEnv.nodeId).toBe('box:9000');
    expect(parse(['--role', 'transcode', '--role', 'edge', '--nats', 'localhost:4222']).roles).toEqual([
      'transcode',
      'edge',
    ]);
  });

  it('a role other than all without --nats, an unknown role, a malformed NATS URL or a bad --max-sources is refused with a message saying why', () => {
    expect(() => parse(['--role', 'ingest'])).toThrow(/--role ingest needs --nats/);
    expect(() => parse(['--role', 'ingest,edge'])).toThrow(/--role ingest,edge needs --nats/);
    expect(() => parse(['--role', 'origin', '--nats', 'nats://a:1'])).toThrow(
      /--role must be all, ingest, transcode or edge/,
    );
    expect(() => parse(['--role', 'edge', '--nats', 'http://a:1/x'])).toThrow(/--nats must be a NATS server URL/);
    expect(() => parse(['--max-sources', '0'])).toThrow(/--max-sources must be a number between 1 and 1000/);
  });

  it('a node without the ingest role answers publishers 404, one without the edge role answers /hls/ 404; health answers on every role', async () => {
    const service = createService({ config: parse(['--role', 'transcode', '--nats', 'nats://127.0.0.1:1']) });
    try {
      const ingest = await service.app.request('/ingest/live/x', { method: 'POST', body: new Uint8Array(8) });
      expect(ingest.status).toBe(404);
      const hls = await service.app.request('/hls/live/x/master.m3u8');
      expect(hls.status).toBe(404);
      expect((await hls.json()).error.message).toMatch(/HLS is disabled/);
      expect((await service.app.request('/healthz')).status).toBe(200);
    } finally {
      await service.close();
    }
  });

  it('compose.yaml runs one ingest node, two transcode nodes and two edges with flags serve accepts and distinct node ids', () => {
    const text = readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8');
    const env = { LVQR_NATS_URL: /LVQR_NATS_URL: (\S+)/.exec(text)![1]! };
    const commands = [...text.matchAll(/^\s+command: (\["serve".*\])$/gm)].map((m) => JSON.parse(m[1]!) as string[]);
    const configs = commands.map((c) => parse(c.slice(1), env));
    expect(configs.map((c) => c.roles.join(',')).sort()).toEqual(['edge', 'edge', 'ingest', 'transcode', 'transcode']);
    expect(new Set(configs.map((c) => c.nodeId)).size).toBe(5);
    for (const c of configs) expect(c.natsUrls).toEqual(['nats://nats:4222']);
    expect(text).toMatch(/image: nats:[^\n]*\n\s+command: \["-js"\]/);
  });

  it('only src/cluster knows NATS, and the rest reaches it only through a dynamic import (a node without --nats never loads it)', () => {
    const files = readdirSync(path.join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.ts'),
    );
    const outside = files.filter((f) => !f.startsWith(`cluster${path.sep}`));
    const mentions: string[] = [];
    for (const file of outside) {
      const text = readFileSync(path.join(ROOT, 'src', file), 'utf8');
      if (text.includes('@nats-io/')) mentions.push(`${file}: @nats-io`);
      for (const m of text.matchAll(/^.*['"][./]*cluster\/[^'"]*['"].*$/gm)) mentions.push(`${file}: ${m[0].trim()}`);
    }
    expect(mentions).toEqual([`server${path.sep}main.ts: : await (await import('../cluster/index.ts')).joinCluster({`]);
  });
});
