import { it } from 'vitest';
import { createHarness, publish, judge, sessionFile, esBitrate } from '../support/ladder.ts';
import { readFixture, fixtureInfo, fixturePath } from '../support/fixtures.ts';
import { probeFrames } from '../support/ffprobe.ts';

it('explore', async () => {
  const name = process.env.FIX ?? '720p30-nob-aac.mp4';
  const info = fixtureInfo(name);
  const h = await createHarness({ wrap: (c) => ({ backend: c.backend, createDecoder: c.createDecoder.bind(c), createEncoder(cfg, a, b) { console.log('enc cfg', JSON.stringify(cfg)); return c.createEncoder({ ...cfg, framerate: Number(process.env.FR ?? cfg.framerate) }, a, b); } }) });
  const t0 = Date.now();
  await publish(h.ingest, 'live/x', [{ bytes: readFixture(name), durationS: info.video.frameCount / info.video.fps }], { speed: Number(process.env.SPEED ?? 1) });
  await h.settled('live/x');
  console.log('wall', Date.now() - t0, 'created', h.created, 'removed', h.removed);
  const src = await probeFrames(fixturePath(name));
  console.log('src pts', src.map(f=>f.pts).slice(0,8).join(','), src.length);
  for (const [k, o] of h.outputs) {
    for (const s of o.sessions) {
      const j = await judge(sessionFile(s));
      console.log(k, s.codec, j.width, j.height, j.profile, j.level, 'frames', j.frames.length, 'keys', j.frames.filter(f=>f.keyFrame).map(f=>f.pts).join(','), 'errs', j.decodeErrors.length, 'br', Math.round(esBitrate(j.packets, j.timescale)/1000), Math.round(esBitrate(j.packets, j.timescale, info.video.keyframePts[1])/1000), 'pts', j.frames.map(f=>f.pts).slice(0,8).join(','));
    }
  }
  console.log(JSON.stringify(h.handle.stats().map(t => ({r: t.rendition, p: t.panics, ts: t.transcoderStats})), null, 0));
  await h.close();
}, 60000);
