import t from 'tap';
import { attribute, type TrackedSession } from '../../src/locks/attribution.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';
import type { SessionInfo } from '../../src/tracker/types.js';
import { messagesOf, serialize, server } from '../helpers/messages.js';

function session(): TrackedSession & { query(sql: string, tag: string, status: 'I' | 'T'): void; send(sql: string): void } {
  const info: SessionInfo = { id: '7', user: 'u', database: 'd', applicationName: '', clientAddress: 'local', startedAt: 0, backendPid: 70, replication: false };
  const tracker = new SessionTracker(info, {});
  tracker.start();
  const feed = (buf: Buffer, side: 'client' | 'server') => {
    for (const [type, b, start, end] of messagesOf(buf)) {
      if (side === 'client') tracker.onClientMessage(type, b, start, end);
      else tracker.onServerMessage(type, b, start, end);
    }
  };
  return {
    info,
    tracker,
    state: 'ready',
    send: (sql) => feed(serialize.query(sql), 'client'),
    query(sql, tag, status) {
      this.send(sql);
      feed(Buffer.concat([server.complete(tag), server.ready(status)]), 'server');
    },
  };
}

t.test('a session in a transaction: its statements so far, the running one last, and the route of its request', async (t) => {
  const s = session();
  // Drivers send BEGIN untagged; the first tagged statement names the request.
  s.query('BEGIN', 'BEGIN', 'T');
  s.query("UPDATE accounts SET n = 1 /*route='%2Fpay'*/", 'UPDATE 1', 'T');
  s.send('SELECT pg_sleep(10)');
  t.same(attribute(s), {
    sessionId: '7',
    transactionId: '7.t1',
    route: '/pay',
    statements: [
      { seq: 1, text: 'BEGIN' },
      { seq: 2, text: 'UPDATE accounts SET n = 1' },
      { seq: 3, text: 'SELECT pg_sleep(10)' },
    ],
    lastStatement: 'SELECT pg_sleep(10)',
    lastTransactionId: '7.t1',
  });
});

t.test('a session idle in a transaction: the last statement it finished', async (t) => {
  const s = session();
  s.query('BEGIN', 'BEGIN', 'T');
  s.query('LOCK TABLE items', 'LOCK TABLE', 'T');
  t.match(attribute(s), { transactionId: '7.t1', lastStatement: 'LOCK TABLE items', lastTransactionId: '7.t1', route: null });
});

t.test('an autocommit statement that has ended: no transaction now, but the one it ran in is still named', async (t) => {
  const s = session();
  s.query('SELECT 1', 'SELECT 1', 'I');
  s.query("UPDATE items SET name = 'a' WHERE id IN (8, 9)", 'UPDATE 2', 'I');
  t.same(attribute(s), {
    sessionId: '7',
    transactionId: null,
    route: null,
    statements: [],
    lastStatement: "UPDATE items SET name = 'a' WHERE id IN (8, 9)",
    lastTransactionId: '7.t2',
  });
});
