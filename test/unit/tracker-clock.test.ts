import t from 'tap';
import { systemClock } from '../../src/tracker/clock.js';

t.test('the wall clock of a monotonic reading is the wall clock, in whole milliseconds', async (t) => {
  for (let i = 0; i < 5; i++) {
    const before = Date.now();
    const at = systemClock.wallAt(systemClock.mono());
    const after = Date.now();
    t.ok(Number.isInteger(at), 'whole milliseconds');
    // The offset is read at most a second apart; the clocks tick at one rate within that.
    t.ok(at >= before - 2 && at <= after + 2, `${at} within [${before}, ${after}]`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
});

t.test('later monotonic readings give later or equal wall times', async (t) => {
  const mono = systemClock.mono();
  t.ok(systemClock.wallAt(mono + 5) - systemClock.wallAt(mono) >= 4);
});
