import { it } from 'vitest';
import { createHarness, publish, judge, sessionFile } from '../support/ladder.ts';
import { readFixture } from '../support/fixtures.ts';

it('explore reinit', async () => {
  const h = await createHarness({ ladder: { logger: { debug() {}, info() {}, warn: (m: string, f?: unknown) => console.log('WARN', m, JSON.stringify(f)), error: (m: string, f?: unknown) => console.log('ERR', m, JSON.stringify(f)) } as any } });
  await publish(h.ingest, 'live/x', [{ bytes: readFixture('720p30-nob-aac.mp4'), durationS: 3 }, { bytes: readFixture('360p30.mp4'), durationS: 3 }], { speed: Number(process.env.SPEED ?? 1) });
  await h.settled('live/x');
  console.log('created', h.created, 'removed', h.removed);
  for (const [k, o] of h.outputs) {
    for (const s of o.sessions) {
      const j = await judge(sessionFile(s));
      console.log(k, 'v', s.metaVersion, s.codec, j.width, j.height, 'frames', j.frames.length, 'keys', j.frames.filter(f=>f.keyFrame).map(f=>f.pts).join(','), 'errs', j.decodeErrors.slice(0,3), 'pts', j.frames.map(f=>f.pts).slice(-5).join(','));
    }
  }
  console.log(JSON.stringify(h.handle.stats().map(t => ({r: t.rendition, p: t.panics, e: t.lastError, ts: t.transcoderStats})), null, 0));
  await h.close();
}, 60000);
