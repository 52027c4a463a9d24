import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FragmentBroadcaster, FragmentFlags } from '../../src/fragment/index.ts';
import { collected, track } from '../support/collected.ts';
import { audioFrag, frag, videoMeta } from '../support/fragments.ts';

const INIT = new Uint8Array([1, 2, 3]);

async function drain(sub: { next(): Promise<unknown> }): Promise<unknown[]> {
  const out: unknown[] = [];
  for (;;) {
    const f = await sub.next();
    if (f === undefined) return out;
    out.push(f);
  }
}

describe('FragmentBroadcaster', () => {
  it('fans each fragment out to every subscriber and reports how many it reached', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    expect(bc.emit(frag(0))).toBe(0);
    const a = bc.subscribe();
    const b = bc.subscribe();
    const c = bc.subscribe();
    expect(bc.subscriberCount).toBe(3);
    expect(bc.emit(frag(1))).toBe(3);
    c.close();
    expect(bc.emit(frag(2))).toBe(2);
    expect(bc.emittedCount).toBe(3);
    expect((await a.next())?.dts).toBe(3000);
    expect((await b.next())?.dts).toBe(3000);
    expect((await a.next())?.dts).toBe(6000);
    expect(await c.next()).toBeUndefined();
  });

  it('emit is synchronous: it returns before any subscriber reads', () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    const sub = bc.subscribe();
    for (let i = 0; i < 100; i++) expect(bc.emit(frag(i))).toBe(1);
    expect(sub.queued).toBe(100);
  });

  it('a late subscriber sees only fragments emitted after it subscribed, with the current meta', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta());
    bc.emit(frag(0));
    bc.setInitSegment(INIT);
    const late = bc.subscribe();
    expect(late.meta.initSegment).toBe(INIT);
    bc.emit(frag(1));
    bc.close();
    const got = (await drain(late)) as Array<{ dts: number }>;
    expect(got.map((f) => f.dts)).toEqual([3000]);
  });

  it('ends after the producer closes, only after every in-flight fragment is delivered', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    const sub = bc.subscribe();
    for (let i = 0; i < 5; i++) bc.emit(frag(i));
    bc.close();
    expect(bc.emit(frag(9))).toBe(0);
    const got = (await drain(sub)) as Array<{ dts: number }>;
    expect(got.map((f) => f.dts / 3000)).toEqual([0, 1, 2, 3, 4]);
    expect(await sub.next()).toBeUndefined();
  });

  it('a waiting reader is woken by emit and by close', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    const sub = bc.subscribe();
    const pending = sub.next();
    bc.emit(frag(7));
    expect((await pending)?.dts).toBe(21000);
    const end = sub.next();
    bc.close();
    expect(await end).toBeUndefined();
  });

  it('next() returns undefined when its signal aborts', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    const sub = bc.subscribe();
    const ac = new AbortController();
    const pending = sub.next(ac.signal);
    ac.abort();
    expect(await pending).toBeUndefined();
  });

  it('refreshMeta picks up an init segment set after subscribing', () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta());
    const sub = bc.subscribe();
    expect(sub.meta.initSegment).toBeUndefined();
    bc.setInitSegment(INIT);
    expect(sub.refreshMeta().initSegment).toBe(INIT);
    expect(sub.meta.initSegment).toBe(INIT);
    expect(sub.metaVersion).toBe(1);
  });

  it('waitForInit resolves once the init exists and drops fragments that came before it', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta());
    const sub = bc.subscribe();
    const waiting = sub.waitForInit();
    bc.emit(frag(0));
    bc.setInitSegment(INIT);
    bc.emit(frag(1));
    const meta = await waiting;
    expect(meta?.initSegment).toBe(INIT);
    expect(sub.skippedBeforeInit).toBe(1);
    expect((await sub.next())?.dts).toBe(3000);
  });

  it('waitForInit resolves undefined when the stream ends without an init', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta());
    const sub = bc.subscribe();
    const waiting = sub.waitForInit();
    bc.close();
    expect(await waiting).toBeUndefined();
  });

  it('waitForInit resolves undefined when the subscription itself is closed (no abort signal needed)', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta());
    const sub = bc.subscribe();
    const waiting = sub.waitForInit();
    sub.close();
    expect(await waiting).toBeUndefined();
    expect(bc.subscriberCount).toBe(0);
  });

  it('meta changes are applied in stream order, so each fragment is read with the init it belongs to', async () => {
    const first = new Uint8Array([1]);
    const second = new Uint8Array([2]);
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(first));
    const seen: Array<[number, number]> = [];
    bc.onMeta((_m, v) => seen.push([v, bc.metaVersion]));
    const sub = bc.subscribe();
    bc.emit(frag(0));
    bc.setInitSegment(second);
    bc.emit(frag(1));
    expect(sub.meta.initSegment).toBe(first);
    await sub.next();
    expect(sub.meta.initSegment).toBe(first);
    expect(sub.metaVersion).toBe(0);
    await sub.next();
    expect(sub.meta.initSegment).toBe(second);
    expect(sub.metaVersion).toBe(1);
    expect(seen).toEqual([[1, 1]]);
  });

  it('a lagging video subscriber is told and resumes at the next keyframe, never mid-GOP', async () => {
    const lags: number[] = [];
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT), { capacity: 8, onLaggedSkip: (n) => lags.push(n) });
    const slow = bc.subscribe();
    const fast = bc.subscribe({ capacity: 1000 });
    // GOP of 5: keyframes at 0, 5, 10, 15.
    for (let i = 0; i < 18; i++) bc.emit(frag(i, { gop: 5 }));
    const got = (await (async () => {
      bc.close();
      return drain(slow);
    })()) as Array<{ dts: number; flags: { keyframe: boolean } }>;
    const indices = got.map((f) => f.dts / 3000);
    expect(got[0]?.flags.keyframe).toBe(true);
    // Whatever survived is contiguous from a keyframe onwards.
    for (let i = 1; i < indices.length; i++) expect(indices[i]).toBe(indices[i - 1]! + 1);
    expect(indices.at(-1)).toBe(17);
    expect(slow.lagged).toBe(18 - indices.length);
    expect(slow.lagged).toBeGreaterThan(0);
    expect(lags.reduce((a, b) => a + b, 0)).toBe(slow.lagged);
    expect(bc.laggedSkips).toBe(slow.lagged);
    expect(fast.lagged).toBe(0);
    expect((await drain(fast)).length).toBe(18);
  });

  it('a lagging subscriber with no keyframe queued drops everything and waits for the next keyframe', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT), { capacity: 4 });
    const sub = bc.subscribe();
    // One long GOP: keyframe at 0, then deltas; the queue overflows with no later keyframe.
    for (let i = 0; i < 10; i++) bc.emit(frag(i, { gop: 100 }));
    expect(sub.queued).toBe(0);
    bc.emit(frag(10, { keyframe: true }));
    bc.emit(frag(11, { keyframe: false }));
    bc.close();
    const got = (await drain(sub)) as Array<{ dts: number }>;
    expect(got.map((f) => f.dts / 3000)).toEqual([10, 11]);
    expect(sub.lagged).toBe(10);
  });

  it('the byte bound sheds like the count bound', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT), { capacity: 1000, maxBytes: 1000 });
    const sub = bc.subscribe();
    for (let i = 0; i < 20; i++) bc.emit(frag(i, { gop: 4, bytes: 100 }));
    expect(sub.queuedBytes).toBeLessThanOrEqual(1000);
    expect(sub.lagged).toBeGreaterThan(0);
    const first = await sub.next();
    expect(first?.flags.keyframe).toBe(true);
  });

  it('a lagging audio subscriber drops the oldest fragments (every audio fragment is independent)', async () => {
    const bc = new FragmentBroadcaster(
      '1.mp4',
      { codec: 'mp4a.40.2', timescale: 48_000, initSegment: INIT },
      { capacity: 4 },
    );
    const sub = bc.subscribe();
    for (let i = 0; i < 10; i++) bc.emit(audioFrag(i));
    bc.close();
    const got = (await drain(sub)) as Array<{ dts: number }>;
    expect(got.map((f) => f.dts / 1024)).toEqual([6, 7, 8, 9]);
    expect(sub.lagged).toBe(6);
  });

  it('the async iterator yields every fragment and closes the subscription when left early', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    const sub = bc.subscribe();
    for (let i = 0; i < 3; i++) bc.emit(frag(i));
    let n = 0;
    for await (const f of sub) {
      n += 1;
      if (f.dts === 3000) break;
    }
    expect(n).toBe(2);
    expect(bc.subscriberCount).toBe(0);
    expect(sub.done).toBe(true);
  });

  it('rejects a bad capacity with a TypeError naming the argument', () => {
    expect(() => new FragmentBroadcaster('0.mp4', videoMeta(), { capacity: 0 })).toThrow(/capacity/);
  });

  it('property: without lag every subscriber receives every fragment, in emit order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 5 }),
        async (keys, subscribers) => {
          const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
          const subs = Array.from({ length: subscribers }, () => bc.subscribe());
          keys.forEach((k, i) => {
            bc.emit(frag(i, { keyframe: i === 0 || k }));
          });
          bc.close();
          for (const sub of subs) {
            const got = (await drain(sub)) as Array<{ dts: number }>;
            expect(got.map((f) => f.dts / 3000)).toEqual(keys.map((_, i) => i));
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('property: under lag a subscriber reads an in-order subsequence whose every gap ends at a keyframe', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 50 }),
        async (kinds, capacity, readBursts) => {
          const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT), { capacity });
          const sub = bc.subscribe();
          const got: Array<{ i: number; key: boolean }> = [];
          let burst = 0;
          kinds.forEach((k, i) => {
            bc.emit(frag(i, { keyframe: i === 0 || k === 0 }));
            // Read a few fragments now and then, synchronously.
            if (i % 7 === 0) {
              const n = readBursts[burst++ % readBursts.length]!;
              for (let r = 0; r < n; r++) {
                const f = sub.tryNext();
                if (f === undefined) break;
                got.push({ i: f.dts / 3000, key: f.flags.keyframe });
              }
            }
          });
          bc.close();
          for (;;) {
            const f = await sub.next();
            if (f === undefined) break;
            got.push({ i: f.dts / 3000, key: f.flags.keyframe });
          }
          for (let j = 0; j < got.length; j++) {
            const prev = j === 0 ? -1 : got[j - 1]!.i;
            expect(got[j]!.i).toBeGreaterThan(prev);
            if (got[j]!.i !== prev + 1) expect(got[j]!.key).toBe(true);
          }
          expect(got.length + sub.lagged).toBe(kinds.length);
          expect(sub.queued).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('flag presets match LVQR', () => {
    expect(FragmentFlags.KEYFRAME).toEqual({ keyframe: true, independent: true, discardable: false });
    expect(FragmentFlags.AUDIO).toEqual({ keyframe: false, independent: true, discardable: false });
    expect(FragmentFlags.DELTA_DISCARDABLE).toEqual({ keyframe: false, independent: false, discardable: true });
    expect(FragmentFlags.DELTA).toEqual({ keyframe: false, independent: false, discardable: false });
  });
});

describe('FragmentSubscription memory', () => {
  it('a reader that stays behind lets go of each fragment it has read or skipped', async () => {
    const bc = new FragmentBroadcaster('0.mp4', videoMeta(INIT));
    // A queue of at most 8 fragments, keyframes every 4 (0, 4, 8, ...).
    const sub = bc.subscribe({ capacity: 8 });
    // The fragments exist only in the queue and the WeakRefs (built in a nested scope).
    const refs = (() => {
      const frags = Array.from({ length: 11 }, (_, i) => frag(i, { gop: 4 }));
      for (const f of frags.slice(0, 8)) bc.emit(f);
      return { frags: track(frags), later: frags.slice(8) };
    })();
    // Two read, six queued: the queue never empties, as with a reader a few fragments behind.
    expect((await sub.next())?.dts).toBe(0);
    expect((await sub.next())?.dts).toBe(3000);
    let gone = await collected(refs.frags);
    expect(gone.slice(0, 8)).toEqual([true, true, false, false, false, false, false, false]);
    // Three more: the third overflows the queue, which sheds 2-3 (up to the keyframe 4).
    for (const f of refs.later.splice(0)) bc.emit(f);
    expect(sub.lagged).toBe(2);
    gone = await collected(refs.frags);
    expect(gone.slice(0, 8)).toEqual([true, true, true, true, false, false, false, false]);
    expect((await sub.next())?.dts).toBe(4 * 3000);
  });
});
