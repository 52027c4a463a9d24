import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FragmentBroadcaster, FragmentBroadcasterRegistry } from '../../src/fragment/index.ts';
import { frag, videoMeta } from '../support/fragments.ts';

describe('FragmentBroadcasterRegistry', () => {
  it('getOrCreate returns the same broadcaster for the same key and distinct ones for distinct keys', () => {
    const reg = new FragmentBroadcasterRegistry();
    const a = reg.getOrCreate('bcast', '0.mp4', videoMeta());
    expect(reg.getOrCreate('bcast', '0.mp4', videoMeta())).toBe(a);
    const b = reg.getOrCreate('bcast', '1.mp4', videoMeta());
    const c = reg.getOrCreate('other', '0.mp4', videoMeta());
    expect(new Set([a, b, c]).size).toBe(3);
    expect(reg.size).toBe(3);
    expect(reg.keys()).toEqual([
      ['bcast', '0.mp4'],
      ['bcast', '1.mp4'],
      ['other', '0.mp4'],
    ]);
  });

  it('keys with slashes never collide (a/b + c is not a + b/c)', () => {
    const reg = new FragmentBroadcasterRegistry();
    const x = reg.getOrCreate('a/b', 'c', videoMeta());
    const y = reg.getOrCreate('a', 'b/c', videoMeta());
    expect(x).not.toBe(y);
  });

  it('a miss returns undefined for get and subscribe', () => {
    const reg = new FragmentBroadcasterRegistry();
    expect(reg.get('missing', '0.mp4')).toBeUndefined();
    expect(reg.subscribe('missing', '0.mp4')).toBeUndefined();
  });

  it('a fragment emitted through the registry handle reaches a registry subscriber', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const bc = reg.getOrCreate('bcast', '0.mp4', videoMeta());
    const sub = reg.subscribe('bcast', '0.mp4')!;
    bc.emit(frag(7));
    expect((await sub.next())?.dts).toBe(21000);
  });

  it('created callbacks fire once per fresh key, synchronously, before getOrCreate returns', () => {
    const reg = new FragmentBroadcasterRegistry();
    const calls: string[] = [];
    reg.onEntryCreated((b, t) => calls.push(`${b}|${t}`));
    reg.getOrCreate('x', '0.mp4', videoMeta());
    expect(calls).toEqual(['x|0.mp4']);
    reg.getOrCreate('x', '0.mp4', videoMeta());
    reg.getOrCreate('x', '1.mp4', videoMeta());
    expect(calls).toEqual(['x|0.mp4', 'x|1.mp4']);
  });

  it('a created callback may re-enter the registry (subscribe, create another entry)', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const subs: Array<ReturnType<FragmentBroadcaster['subscribe']>> = [];
    reg.onEntryCreated((b, t, bc) => {
      subs.push(bc.subscribe());
      expect(reg.get(b, t)).toBe(bc);
      if (!b.endsWith('/out')) reg.getOrCreate(`${b}/out`, t, videoMeta());
    });
    const src = reg.getOrCreate('live', '0.mp4', videoMeta());
    expect(reg.get('live/out', '0.mp4')).toBeDefined();
    expect(subs.length).toBe(2);
    src.emit(frag(0));
    expect((await subs[0]!.next())?.dts).toBe(0);
  });

  it('removed callbacks fire on remove; remove closes the broadcaster so subscribers drain then end', async () => {
    const reg = new FragmentBroadcasterRegistry();
    const removed: string[] = [];
    reg.onEntryRemoved((b, t, bc) => {
      expect(bc.closed).toBe(true);
      removed.push(`${b}|${t}`);
    });
    const bc = reg.getOrCreate('x', '0.mp4', videoMeta());
    const sub = bc.subscribe();
    bc.emit(frag(0));
    bc.emit(frag(1));
    expect(reg.remove('x', '0.mp4')).toBe(bc);
    expect(reg.remove('x', '0.mp4')).toBeUndefined();
    expect(removed).toEqual(['x|0.mp4']);
    expect((await sub.next())?.dts).toBe(0);
    expect((await sub.next())?.dts).toBe(3000);
    expect(await sub.next()).toBeUndefined();
    // A fresh entry under the same key after removal is a new broadcaster.
    expect(reg.getOrCreate('x', '0.mp4', videoMeta())).not.toBe(bc);
  });

  it('callbacks can be unregistered (LVQR cannot)', () => {
    const reg = new FragmentBroadcasterRegistry();
    let created = 0;
    let removed = 0;
    const offCreated = reg.onEntryCreated(() => created++);
    const offRemoved = reg.onEntryRemoved(() => removed++);
    reg.getOrCreate('a', '0.mp4', videoMeta());
    reg.remove('a', '0.mp4');
    offCreated();
    offRemoved();
    reg.getOrCreate('b', '0.mp4', videoMeta());
    reg.remove('b', '0.mp4');
    expect([created, removed]).toEqual([1, 1]);
  });

  it('a throwing callback is isolated: getOrCreate still returns and later callbacks still run', () => {
    const errors: unknown[] = [];
    const reg = new FragmentBroadcasterRegistry({ onCallbackError: (e) => errors.push(e) });
    let second = 0;
    reg.onEntryCreated(() => {
      throw new Error('boom');
    });
    reg.onEntryCreated(() => second++);
    expect(reg.getOrCreate('a', '0.mp4', videoMeta())).toBeDefined();
    expect(second).toBe(1);
    expect(errors.length).toBe(1);
  });

  it('the meta argument is used only on creation', () => {
    const reg = new FragmentBroadcasterRegistry();
    const bc = reg.getOrCreate('a', '0.mp4', { codec: 'avc1.1', timescale: 1, initSegment: undefined });
    reg.getOrCreate('a', '0.mp4', { codec: 'avc1.2', timescale: 2, initSegment: undefined });
    expect(bc.meta.codec).toBe('avc1.1');
  });

  it('property: fragments never leak across keys', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 1 })), { maxLength: 200 }),
        async (ops) => {
          const reg = new FragmentBroadcasterRegistry();
          const names = ['a', 'b', 'a/b', 'c'];
          const tracks = ['0.mp4', '1.mp4'];
          const subs = new Map<string, ReturnType<FragmentBroadcaster['subscribe']>>();
          for (const n of names)
            for (const t of tracks) subs.set(`${n}|${t}`, reg.getOrCreate(n, t, videoMeta()).subscribe());
          const expected = new Map<string, number[]>();
          ops.forEach(([n, t], i) => {
            const key = `${names[n]}|${tracks[t]}`;
            reg.get(names[n]!, tracks[t]!)!.emit(frag(i, { keyframe: true }));
            expected.set(key, [...(expected.get(key) ?? []), i]);
          });
          for (const [key, sub] of subs) {
            const got: number[] = [];
            for (let f = sub.tryNext(); f !== undefined; f = sub.tryNext()) got.push(f.dts / 3000);
            expect(got).toEqual(expected.get(key) ?? []);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('property: concurrent getOrCreate calls for one key yield one broadcaster and one callback', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 60 }), async (delays) => {
        const reg = new FragmentBroadcasterRegistry();
        let created = 0;
        reg.onEntryCreated(() => created++);
        const results = await Promise.all(
          delays.map(async (d) => {
            for (let i = 0; i < d; i++) await Promise.resolve();
            return reg.getOrCreate('live/x', '0.mp4', videoMeta());
          }),
        );
        expect(new Set(results).size).toBe(1);
        expect(created).toBe(1);
      }),
      { numRuns: 100 },
    );
  });
});
