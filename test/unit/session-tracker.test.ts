import t from 'tap';
import { Backend } from '../../src/protocol/codes.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';
import type { SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../../src/tracker/types.js';
import { messagesOf, serialize, server } from '../helpers/messages.js';

function harness() {
  const statements: StatementRecord[] = [];
  const transactions: TransactionRecord[] = [];
  const savepoints: string[] = [];
  const listener: TrackerListener = {
    statementFinished: (_s, st) => statements.push(st),
    transactionEnded: (_s, tx) => transactions.push(tx),
    savepoint: (_s, op, name, depth) => savepoints.push(`${op} ${name} ${depth}`),
  };
  const session: SessionInfo = {
    id: 's',
    user: 'u',
    database: 'd',
    applicationName: '',
    clientAddress: '127.0.0.1',
    startedAt: 0,
    backendPid: 1,
    replication: false,
  };
  let now = 0;
  const tracker = new SessionTracker(session, listener, { wall: () => now, mono: () => now });
  tracker.start();
  return {
    tracker,
    statements,
    transactions,
    savepoints,
    tick(ms: number) {
      now += ms;
    },
    client(...bufs: Buffer[]) {
      for (const [type, buf, start, end] of messagesOf(Buffer.concat(bufs))) tracker.onClientMessage(type, buf, start, end);
    },
    server(...bufs: Buffer[]) {
      for (const [type, buf, start, end] of messagesOf(Buffer.concat(bufs))) {
        if (type === Backend.DataRow) tracker.onDataRow();
        else tracker.onServerMessage(type, buf, start, end);
      }
    },
    /** A simple Query answered with these tags (or errors), then ReadyForQuery. */
    query(sql: string, answers: Buffer[], status: 'I' | 'T' | 'E') {
      this.client(serialize.query(sql));
      this.tick(1);
      this.server(...answers, server.ready(status));
    },
  };
}

const summary = (tx: TransactionRecord) => ({ outcome: tx.outcome, implicit: tx.implicit, statements: tx.statements, writes: tx.writes });

t.test("a transaction's end is its start plus its duration, in whole milliseconds as the wall clock gives them", async (t) => {
  const h = harness();
  h.tick(1_000);
  h.client(serialize.query('BEGIN'));
  h.tick(0.25);
  h.server(server.complete('BEGIN'), server.ready('T'));
  h.client(serialize.query('COMMIT'));
  h.tick(2.5);
  h.server(server.complete('COMMIT'), server.ready('I'));
  const [tx] = h.transactions;
  t.equal(tx.durationMs, 2.75);
  t.equal(tx.endedAt, 1_002, 'startedAt 1000 + 2.75 ms, whole');
});

t.test('an autocommit statement is one implicit transaction', async (t) => {
  const h = harness();
  h.query('INSERT INTO t VALUES (1)', [server.complete('INSERT 0 1')], 'I');
  t.equal(h.statements.length, 1);
  t.match(h.statements[0], { seq: 1, commandTag: 'INSERT 0 1', rows: 1, txStatusBefore: 'I', txStatusAfter: 'I', protocol: 'simple', durationMs: 1 });
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: true, statements: 1, writes: 1 }]);
  t.equal(h.statements[0].transactionId, h.transactions[0].id);
});

t.test('Queries of one shape, recognised from their bytes, keep their own texts and tags', async (t) => {
  const h = harness();
  const sql = (id: number) => `UPDATE tracker_shape SET n = n + 1 WHERE id = ${id}; SELECT n FROM tracker_shape WHERE id = ${id}`;
  for (const id of [11, 22, 33]) h.query(sql(id), [server.complete('UPDATE 1'), server.complete(`SELECT ${id % 10}`)], 'I');
  t.same(
    h.statements.map((s) => [s.text, s.info.operation, s.commandTag, s.rows]),
    [11, 22, 33].flatMap((id) => [
      [`UPDATE tracker_shape SET n = n + 1 WHERE id = ${id}`, 'UPDATE', 'UPDATE 1', 1],
      [`SELECT n FROM tracker_shape WHERE id = ${id}`, 'SELECT', `SELECT ${id % 10}`, id % 10],
    ]),
  );
  t.same(h.transactions.map(summary), [11, 22, 33].map(() => ({ outcome: 'commit', implicit: true, statements: 2, writes: 1 })));
});

t.test('BEGIN … COMMIT across Queries is one explicit transaction', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.tick(50); // idle in transaction
  h.query('UPDATE t SET a = 1', [server.complete('UPDATE 3')], 'T');
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: false, statements: 3, writes: 1 }]);
  t.equal(h.transactions[0].idleInTransactionMs, 50);
  t.same(h.statements.map((s) => [s.txStatusBefore, s.txStatusAfter]), [['I', 'T'], ['T', 'T'], ['T', 'I']]);
  t.equal(h.tracker.transaction, null);
});

t.test('several statements in one Query run as one implicit transaction', async (t) => {
  const h = harness();
  h.query('INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)', [server.complete('INSERT 0 1'), server.complete('INSERT 0 1')], 'I');
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: true, statements: 2, writes: 2 }]);
});

t.test('an error in a multi-statement Query skips the rest and fails the transaction', async (t) => {
  const h = harness();
  h.query('INSERT INTO t VALUES (1); SELECT 1/0; INSERT INTO t VALUES (2)', [server.complete('INSERT 0 1'), server.error('22012', 'division by zero')], 'I');
  t.equal(h.statements.length, 2, 'the third statement never ran');
  t.equal(h.statements[1].error?.code, '22012');
  t.same(h.transactions.map((x) => [x.outcome, x.firstError?.code]), [['failed', '22012']]);
});

t.test('BEGIN inside a multi-statement Query adopts what ran before it', async (t) => {
  const h = harness();
  h.query('INSERT INTO t VALUES (1); BEGIN; INSERT INTO t VALUES (2)', [server.complete('INSERT 0 1'), server.complete('BEGIN'), server.complete('INSERT 0 1')], 'T');
  t.equal(h.transactions.length, 0, 'still open');
  t.equal(h.tracker.transaction?.implicit, false);
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: false, statements: 4, writes: 2 }]);
});

t.test("nested savepoints as Django's atomic() emits them", async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.query('SAVEPOINT "s140_x1"', [server.complete('SAVEPOINT')], 'T');
  h.query('INSERT INTO t VALUES (1)', [server.complete('INSERT 0 1')], 'T');
  h.query('SAVEPOINT "s140_x2"', [server.complete('SAVEPOINT')], 'T');
  t.equal(h.tracker.savepointDepth, 2);
  h.query('INSERT INTO t VALUES (1)', [server.error('23505', 'duplicate key')], 'E');
  t.ok(h.tracker.transaction?.failed);
  h.query('ROLLBACK TO SAVEPOINT "s140_x2"', [server.complete('ROLLBACK')], 'T');
  t.notOk(h.tracker.transaction?.failed, 'ROLLBACK TO recovers the transaction');
  t.equal(h.tracker.savepointDepth, 2, 'ROLLBACK TO keeps the savepoint');
  h.query('RELEASE SAVEPOINT "s140_x1"', [server.complete('RELEASE')], 'T');
  t.equal(h.tracker.savepointDepth, 0, 'RELEASE drops it and the newer ones');
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  const [tx] = h.transactions;
  t.match(tx, { outcome: 'commit', savepointsCreated: 2, savepointsReleased: 2, savepointsRolledBack: 1, maxSavepointDepth: 2, firstError: { code: '23505' } });
  t.same(h.savepoints, ['create s140_x1 1', 'create s140_x2 2', 'rollback_to s140_x2 2', 'release s140_x1 0']);
  t.same(h.statements.map((s) => s.savepointDepth), [0, 1, 1, 2, 2, 2, 0, 0]);
});

t.test('duplicate savepoint names: the newest wins', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.query('SAVEPOINT a; SAVEPOINT b; SAVEPOINT a', [server.complete('SAVEPOINT'), server.complete('SAVEPOINT'), server.complete('SAVEPOINT')], 'T');
  h.query('RELEASE a', [server.complete('RELEASE')], 'T');
  t.same(h.tracker.savepointNames, ['a', 'b']);
  h.query('ROLLBACK TO a', [server.complete('ROLLBACK')], 'T');
  t.same(h.tracker.savepointNames, ['a']);
});

t.test('COMMIT of a failed transaction is answered ROLLBACK: outcome failed', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.query('SELECT 1/0', [server.error('22012')], 'E');
  h.query('COMMIT', [server.complete('ROLLBACK')], 'I');
  t.same(h.transactions.map((x) => x.outcome), ['failed']);
});

t.test('ROLLBACK by choice is a rollback; after an error it is a failure', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.query('ROLLBACK', [server.complete('ROLLBACK')], 'I');
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.query('SELECT x', [server.error('42703')], 'E');
  h.query('ROLLBACK', [server.complete('ROLLBACK')], 'I');
  t.same(h.transactions.map((x) => x.outcome), ['rollback', 'failed']);
});

t.test('COMMIT AND CHAIN starts the next transaction at once', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.query('COMMIT AND CHAIN', [server.complete('COMMIT')], 'T');
  t.equal(h.transactions.length, 1);
  t.ok(h.tracker.transaction, 'a new one is open');
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  t.same(h.transactions.map((x) => [x.outcome, x.implicit]), [['commit', false], ['commit', false]]);
});

t.test('COMMIT outside a transaction opens none', async (t) => {
  const h = harness();
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  t.equal(h.transactions.length, 0);
  t.equal(h.statements[0].transactionId, null);
});

t.test('extended protocol: pipelined Syncs are separate implicit transactions', async (t) => {
  const h = harness();
  const batch = (sql: string) => [serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({}), serialize.sync()];
  h.client(...batch('INSERT INTO t VALUES (1)'), ...batch('INSERT INTO t VALUES (2)'));
  t.equal(h.tracker.activeStatement?.text, 'INSERT INTO t VALUES (1)');
  h.server(server.parseComplete(), server.bindComplete(), server.complete('INSERT 0 1'), server.ready('I'));
  t.equal(h.tracker.activeStatement?.text, 'INSERT INTO t VALUES (2)', 'the second starts once the first Sync is answered');
  h.server(server.parseComplete(), server.bindComplete(), server.complete('INSERT 0 1'), server.ready('I'));
  t.same(h.transactions.map(summary), [
    { outcome: 'commit', implicit: true, statements: 1, writes: 1 },
    { outcome: 'commit', implicit: true, statements: 1, writes: 1 },
  ]);
  t.same(h.statements.map((s) => s.protocol), ['extended', 'extended']);
});

t.test('extended protocol: Executes before one Sync form one implicit transaction', async (t) => {
  const h = harness();
  h.client(
    serialize.parse({ name: 'ins', text: 'INSERT INTO t VALUES ($1)' }),
    serialize.bind({ statement: 'ins', values: ['1'] }),
    serialize.execute({}),
    serialize.bind({ statement: 'ins', values: ['2'] }),
    serialize.execute({}),
    serialize.sync(),
  );
  h.server(server.parseComplete(), server.bindComplete(), server.complete('INSERT 0 1'), server.bindComplete(), server.complete('INSERT 0 1'), server.ready('I'));
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: true, statements: 2, writes: 2 }]);
  t.same(h.statements.map((s) => s.statementName), ['ins', 'ins']);
});

t.test('extended protocol: an error skips to Sync, and the next batch runs', async (t) => {
  const h = harness();
  h.client(
    serialize.parse({ text: 'INSERT INTO t VALUES (1)' }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.parse({ text: 'INSERT INTO t VALUES (2)' }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.sync(),
    serialize.parse({ text: 'SELECT 1' }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.sync(),
  );
  h.server(server.parseComplete(), server.bindComplete(), server.error('23505'), server.ready('I'));
  h.server(server.parseComplete(), server.bindComplete(), server.dataRow(), server.complete('SELECT 1'), server.ready('I'));
  t.same(h.statements.map((s) => [s.text, s.error?.code ?? s.commandTag]), [
    ['INSERT INTO t VALUES (1)', '23505'],
    ['SELECT 1', 'SELECT 1'],
  ]);
  t.same(h.transactions.map((x) => x.outcome), ['failed', 'commit']);
  t.equal(h.tracker.pending, 0);
});

t.test('extended protocol: an error before the client sent Sync still skips to it', async (t) => {
  const h = harness();
  h.client(serialize.parse({ text: 'SELECT x' }), serialize.bind({}), serialize.execute({}), serialize.flush());
  h.server(server.error('42703'));
  // The client only now sends more, then its Sync; the server ignores all but Sync.
  h.client(serialize.describe({ type: 'P' }), serialize.sync());
  h.server(server.ready('I'));
  t.same(h.statements.map((s) => [s.text, s.error?.code]), [['SELECT x', '42703']]);
  t.equal(h.tracker.pending, 0);
});

t.test('extended protocol: a Parse error alone is reported as the failed statement', async (t) => {
  const h = harness();
  h.client(serialize.parse({ name: 'bad', text: 'SELEC 1' }), serialize.sync());
  h.server(server.error('42601', 'syntax error'), server.ready('I'));
  t.same(h.statements.map((s) => [s.text, s.error?.code]), [['SELEC 1', '42601']]);
});

t.test('extended protocol: Describe, Close and PortalSuspended', async (t) => {
  const h = harness();
  h.client(serialize.query('BEGIN'));
  h.server(server.complete('BEGIN'), server.ready('T'));
  h.client(
    serialize.parse({ name: 'q', text: 'SELECT * FROM t' }),
    serialize.describe({ type: 'S', name: 'q' }),
    serialize.bind({ statement: 'q', portal: 'p' }),
    serialize.execute({ portal: 'p', rows: 2 }),
    serialize.sync(),
  );
  h.server(
    server.parseComplete(),
    Buffer.from([Backend.ParameterDescription, 0, 0, 0, 6, 0, 0]),
    server.rowDescription(),
    server.bindComplete(),
    server.dataRow(),
    server.dataRow(),
    server.portalSuspended(),
    server.ready('T'),
  );
  h.client(serialize.execute({ portal: 'p', rows: 2 }), serialize.close({ type: 'P', name: 'p' }), serialize.sync());
  h.server(server.dataRow(), server.complete('SELECT 1'), server.closeComplete(), server.ready('T'));
  t.same(h.statements.slice(1).map((s) => [s.suspended, s.rows, s.statementName]), [
    [true, 2, 'q'],
    [false, 1, 'q'],
  ]);
  t.equal(h.tracker.pending, 0);
});

t.test('INSERT … RETURNING stopped at its row limit (PortalSuspended) counts as a write', async (t) => {
  const h = harness();
  // asyncpg's fetchval: one row wanted, the portal suspended, Sync commits.
  h.client(
    serialize.parse({ text: 'INSERT INTO t (a) VALUES ($1) RETURNING id' }),
    serialize.bind({ values: ['1'] }),
    serialize.execute({ rows: 1 }),
    serialize.sync(),
  );
  h.server(server.parseComplete(), server.bindComplete(), server.dataRow(), server.portalSuspended(), server.ready('I'));
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: true, statements: 1, writes: 1 }]);
});

t.test('a write portal resumed several times counts once, whatever ends it', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.client(
    serialize.parse({ name: 'ins', text: 'INSERT INTO t (a) SELECT generate_series(1, 3) RETURNING a' }),
    serialize.bind({ statement: 'ins', portal: 'p' }),
    serialize.execute({ portal: 'p', rows: 1 }),
    serialize.execute({ portal: 'p', rows: 1 }),
    serialize.execute({ portal: 'p', rows: 0 }),
    serialize.sync(),
  );
  h.server(
    server.parseComplete(),
    server.bindComplete(),
    server.dataRow(),
    server.portalSuspended(),
    server.dataRow(),
    server.portalSuspended(),
    server.dataRow(),
    server.complete('INSERT 0 1'), // PostgreSQL's tag counts the rows this Execute fetched
    server.ready('T'),
  );
  // The same statement bound again is a new run: it writes again.
  h.client(serialize.bind({ statement: 'ins', portal: 'p' }), serialize.execute({ portal: 'p', rows: 1 }), serialize.sync());
  h.server(server.bindComplete(), server.dataRow(), server.portalSuspended(), server.ready('T'));
  // A reading portal suspended is no write.
  h.client(serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({ rows: 1 }), serialize.sync());
  h.server(server.parseComplete(), server.bindComplete(), server.dataRow(), server.portalSuspended(), server.ready('T'));
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  t.same(h.transactions.map(summary), [{ outcome: 'commit', implicit: false, statements: 7, writes: 2 }]);
});

t.test('an Execute that fails does not count, and its portal still can', async (t) => {
  const h = harness();
  h.client(
    serialize.parse({ name: 'ins', text: 'INSERT INTO t (a) VALUES (1) RETURNING a' }),
    serialize.bind({ statement: 'ins', portal: '' }),
    serialize.execute({ rows: 1 }),
    serialize.sync(),
  );
  h.server(server.parseComplete(), server.bindComplete(), server.error('23505'), server.ready('I'));
  t.same(h.transactions.map(summary), [{ outcome: 'failed', implicit: true, statements: 1, writes: 0 }]);
});

t.test('a session that ends inside a transaction: outcome disconnect', async (t) => {
  const h = harness();
  h.query('BEGIN', [server.complete('BEGIN')], 'T');
  h.client(serialize.query('SELECT pg_sleep(10)'));
  h.tracker.end(false);
  t.same(h.transactions.map((x) => x.outcome), ['disconnect']);
  t.ok(h.statements[1].interrupted, 'the running statement is reported as interrupted');
});

t.test('a ReadyForQuery status we did not expect is adopted', async (t) => {
  const h = harness();
  h.query('SELECT begin_in_function()', [server.complete('SELECT 1')], 'T');
  t.equal(h.tracker.transaction?.implicit, false, 'the server says we are in a block');
  h.query('COMMIT', [server.complete('COMMIT')], 'I');
  t.same(h.transactions.map((x) => [x.outcome, x.implicit]), [['commit', false]]);
});

t.test('a new sqlcommenter trace id starts a new request', async (t) => {
  const h = harness();
  const tp = (n: number) => `/*route='%2Fr${n}',traceparent='00-${String(n).repeat(32).slice(0, 32)}-0000000000000001-01'*/`;
  h.query(`SELECT 1 ${tp(1)}`, [server.complete('SELECT 1')], 'I');
  h.query(`SELECT 2 ${tp(1)}`, [server.complete('SELECT 1')], 'I');
  h.query(`SELECT 3 ${tp(2)}`, [server.complete('SELECT 1')], 'I');
  t.same(h.statements.map((s) => [s.text, s.request.id, s.request.route]), [
    ['SELECT 1', 's.r1', '/r1'],
    ['SELECT 2', 's.r1', '/r1'],
    ['SELECT 3', 's.r2', '/r2'],
  ]);
  t.same(h.transactions.map((x) => x.request.id), ['s.r1', 's.r1', 's.r2']);
});

t.test('the statement that ends a transaction is reported before the transaction', async (t) => {
  const events: string[] = [];
  const h = harness();
  const tracker = new (h.tracker.constructor as typeof import('../../src/tracker/session-tracker.js').SessionTracker)(
    h.tracker.session,
    {
      statementFinished: (_s, st) => events.push(`statement ${st.info.operation}`),
      transactionEnded: (_s, tx) => events.push(`transaction ${tx.outcome}`),
    },
  );
  for (const [sql, answers, status] of [
    ['BEGIN', [server.complete('BEGIN')], 'T'],
    ['COMMIT', [server.complete('COMMIT')], 'I'],
    ['INSERT INTO t VALUES (1); COMMIT', [server.complete('INSERT 0 1'), server.complete('COMMIT')], 'I'],
  ] as const) {
    for (const [type, buf, start, end] of messagesOf(serialize.query(sql))) tracker.onClientMessage(type, buf, start, end);
    for (const [type, buf, start, end] of messagesOf(Buffer.concat([...answers, server.ready(status)]))) tracker.onServerMessage(type, buf, start, end);
  }
  t.same(events, ['statement BEGIN', 'statement COMMIT', 'transaction commit', 'statement INSERT', 'statement COMMIT', 'transaction commit']);
});
