import t from 'tap';
import { commandComplete, readyForQuery } from '../../src/protocol/encode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { ChunkClock } from '../../src/tracker/clock.js';
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
