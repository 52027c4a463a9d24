/** The ladder's event hook: an overload step reaches `onEvent`, and a listener that throws changes nothing. */

import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.ts';
import { type LadderEvent, type RungLoadState, SourceLoadMonitor } from '../../src/transcode/ladder/index.ts';

function rung(name: string, states: Map<string, RungLoadState>) {
  return {
    name,
    takeLoadSample: () => ({ name, behind: true }),
    setLoadState: (state: RungLoadState) => states.set(name, state),
  };
}

describe('ladder events', () => {
  for (const throwing of [false, true]) {
    it(`an overload step is told to onEvent${throwing ? ' (a throwing listener changes nothing)' : ''}`, () => {
      let now = 0;
      const events: LadderEvent[] = [];
      const states = new Map<string, RungLoadState>();
      const monitor = new SourceLoadMonitor({
        broadcast: 'live/x',
        overload: { sustainMs: 2000, intervalMs: 500 },
        priority: (r) => (r === 'hi' ? 0 : 1),
        now: () => now,
        logger: silentLogger,
        onEvent: (event) => {
          events.push(event);
          if (throwing) throw new Error('listener failed');
        },
      });
      const rungs = new Set([rung('hi', states), rung('lo', states)]);
      for (; now <= 4000 && events.length === 0; now += 500) monitor.check(rungs);
      expect(events[0]).toEqual({ kind: 'overload', broadcast: 'live/x', rendition: 'lo', action: 'shed' });
      expect(states.get('lo')).toBe('shedding');
    });
  }
});
