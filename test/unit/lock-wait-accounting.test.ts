import t from 'tap';
import { Backend } from '../../src/protocol/codes.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';
import type { SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../../src/tracker/types.js';
import { messagesOf, serialize, server } from '../helpers/messages.js';

/** A tracker fed scripted messages; `onFinished` runs inside statementFinished, as the lock monitor does. */
function harness(onFinished: (tracker: SessionTracker, statement: StatementRecord) => void) {
  const transactions: TransactionRecord[] = [];
  const session: SessionInfo = { id: 's', user: 'u', database: 'd', applicationName: '', clientAddress: 'local', startedAt: 0, backendPid: 1, replication: false };
  let tracker: SessionTracker;
  const listener: TrackerListener = {
    statementFinished: (_s, st) => onFinished(tracker, st),
    transactionEnded: (_s, tx) => transactions.push(tx),
  };
  tracker = new SessionTracker(session, listener);
  tracker.start();
  const feed = (buf: Buffer, side: 'client' | 'server') => {
    for (const [type, b, start, end] of messagesOf(buf)) {
      if (side === 'client') tracker.onClientMessage(type, b, start, end);
      else if (type !== Backend.DataRow) tracker.onServerMessage(type, b, start, end);
    }
  };
  const query = (sql: string, tag: string, status: 'I' | 'T') => {
    feed(serialize.query(sql), 'client');
    feed(Buffer.concat([server.complete(tag), server.ready(status)]), 'server');
  };
  return { tracker, transactions, query };
}

t.test('a wait credited from statementFinished lands on that statement and its transaction', async (t) => {
  const finished: StatementRecord[] = [];
  const h = harness((tracker, statement) => {
    finished.push(statement);
    if (statement.text.includes('FOR UPDATE')) tracker.addLockWait(120, statement);
  });
  h.query('BEGIN', 'BEGIN', 'T');
  h.query('SELECT 1 FROM items FOR UPDATE', 'SELECT 1', 'T');
  h.query('COMMIT', 'COMMIT', 'I');
  t.same(finished.map((s) => s.lockWaitMs), [0, 120, 0]);
  t.equal(h.transactions.length, 1);
  t.equal(h.transactions[0].lockWaitMs, 120);
});

t.test('an autocommit statement credits its implicit transaction', async (t) => {
  const h = harness((tracker, statement) => tracker.addLockWait(40, statement));
  h.query('UPDATE items SET n = 1', 'UPDATE 1', 'I');
  t.equal(h.transactions[0].lockWaitMs, 40);
});

t.test('a statement of an earlier transaction does not credit the current one', async (t) => {
  let earlier: StatementRecord | null = null;
  const h = harness((_tracker, statement) => {
    earlier ??= statement;
  });
  h.query('SELECT 1', 'SELECT 1', 'I');
  h.query('BEGIN', 'BEGIN', 'T');
  h.tracker.addLockWait(30, earlier);
  h.query('COMMIT', 'COMMIT', 'I');
  t.equal(earlier!.lockWaitMs, 30);
  t.same(h.transactions.map((x) => x.lockWaitMs), [0, 0]);
});

t.test('without a statement named, the running one is credited (the earlier behaviour)', async (t) => {
  const h = harness(() => undefined);
  h.query('BEGIN', 'BEGIN', 'T');
  h.tracker.addLockWait(10);
  h.query('COMMIT', 'COMMIT', 'I');
  t.equal(h.transactions[0].lockWaitMs, 10);
});
