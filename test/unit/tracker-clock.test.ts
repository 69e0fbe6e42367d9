import t from 'tap';
import { commandComplete, readyForQuery } from '../../src/protocol/encode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { ChunkClock, DerivedWallClock } from '../../src/tracker/clock.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';

t.test('within a chunk the monotonic clock is read once; outside one, every time', async (t) => {
  let reads = 0;
  let now = 100;
  const clock = new ChunkClock({ wall: () => 0, mono: () => (reads++, now) });
  t.equal(clock.mono(), 100);
  now = 110;
  t.equal(clock.mono(), 110, 'outside a chunk: fresh');
  clock.chunkStarted();
  now = 120;
  t.equal(clock.mono(), 120, 'the chunk is timed when first asked');
  now = 130;
  t.equal(clock.mono(), 120, 'and keeps that time');
  clock.chunkStarted();
  t.equal(clock.mono(), 120, 'a chunk relayed while reading another is of the same instant');
  clock.chunkEnded();
  t.equal(clock.mono(), 120, 'until the outer chunk ends');
  clock.chunkEnded();
  t.equal(clock.mono(), 130, 'then fresh again');
  clock.chunkStarted();
  now = 140;
  t.equal(clock.mono(), 140, 'the next chunk has its own time');
  clock.chunkEnded();
  clock.chunkEnded();
  now = 150;
  t.equal(clock.mono(), 150, 'an end too many changes nothing');
  t.equal(reads, 6);
});

t.test('a tracker times the statements of one chunk as of one instant', async (t) => {
  let now = 1000;
  const finished: { durationMs: number }[] = [];
  const ended: { durationMs: number }[] = [];
  const session = { id: 's', user: 'u', database: 'd', applicationName: '', clientAddress: '', startedAt: 0, backendPid: 1, replication: false };
  const tracker = new SessionTracker(session, { statementFinished: (_s, st) => finished.push(st), transactionEnded: (_s, tx) => ended.push(tx) }, { wall: () => now, mono: () => now });
  tracker.start();
  const query = serialize.query('SELECT 1');
  tracker.chunkStarted();
  tracker.onClientMessage(query[0], query, 0, query.length);
  tracker.chunkEnded();
  now = 1005;
  tracker.chunkStarted();
  const complete = commandComplete('SELECT 1');
  tracker.onServerMessage(complete[0], complete, 0, complete.length);
  now = 1007; // a clock that moved within the chunk is not read again
  const ready = readyForQuery('I');
  tracker.onServerMessage(ready[0], ready, 0, ready.length);
  tracker.chunkEnded();
  t.equal(finished[0].durationMs, 5);
  t.equal(ended[0].durationMs, 5, 'the transaction ends at the instant its statement did');
});

t.test('within a chunk the wall clock is told from the chunk instant, where the clock can', async (t) => {
  let monoReads = 0;
  let wallReads = 0;
  const clock = new ChunkClock({ wall: () => (wallReads++, 5000), mono: () => (monoReads++, 120), wallAt: (mono) => mono + 1_000_000 });
  t.equal(clock.wall(), 5000, 'outside a chunk: read');
  clock.chunkStarted();
  t.equal(clock.mono(), 120);
  t.equal(clock.wall(), 1_000_120, 'in a chunk: from its instant');
  clock.chunkEnded();
  t.equal(wallReads, 1);
  t.equal(monoReads, 1, 'one clock read for the chunk');
  const plain = new ChunkClock({ wall: () => 7, mono: () => 1 });
  plain.chunkStarted();
  t.equal(plain.wall(), 7, 'a clock without wallAt is read');
});

t.test('the derived wall clock keeps to the system clock, and follows it when it steps', async (t) => {
  const clock = new DerivedWallClock();
  for (let i = 0; i < 1000; i++) {
    const before = Date.now();
    const derived = clock.now();
    const after = Date.now();
    if (derived < before - 1 || derived > after + 1) t.fail(`${derived} is not within a millisecond of ${before}..${after}`);
  }
  t.equal(clock.now(), Math.floor(clock.now()), 'whole milliseconds');
  const realNow = Date.now;
  t.teardown(() => {
    Date.now = realNow;
  });
  // The system clock steps forward ten minutes; the next check (at most a second on) follows it.
  Date.now = () => realNow() + 600_000;
  t.ok(Math.abs(clock.now() - realNow()) <= 2, 'not yet checked');
  const stepped = clock.at(performance.now() + 1000);
  t.ok(Math.abs(stepped - (realNow() + 601_000)) <= 2, `followed the step: ${stepped - realNow()}`);
  Date.now = realNow;
  // Drift within a few milliseconds is left alone: durations on the two clocks stay consistent.
  const base = clock.now();
  Date.now = () => realNow() + 600_010;
  t.ok(Math.abs(clock.at(performance.now() + 2000) - (base + 2000)) <= 3, 'a small difference does not move it');
});
