/**
 * postgres.js (the `postgres` package) through txproxy, unchanged: it
 * prepares statements by default, pipelines queries on one connection
 * (every query ends with its own Sync), runs `sql.begin` with savepoints
 * that it never releases, and reads cursors with Execute row limits.
 */
import t, { type Test } from 'tap';
import postgres from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { checkTraceInvariants, resetRecords, statementRecords, transactionRecords } from '../helpers/trace-checks.js';

const pgServer = await startPostgres();
/** Deepest pipeline the tracker saw: messages still unanswered when a statement finished. */
let deepestPipeline = 0;
const proxy = await startProxy(pgServer, {}, {
  listeners: [
    {
      statementFinished: (session) => {
        for (const s of proxy.app.server.sessions) if (s.info.id === session.id) deepestPipeline = Math.max(deepestPipeline, s.tracker.pending);
      },
    },
  ],
});
t.teardown(async () => {
  await proxy.stop();
  await pgServer.stop();
});
await pgServer.sql('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))');

t.beforeEach(() => {
  resetRecords(proxy);
  deepestPipeline = 0;
});

/** One connection, so that everything below pipelines on it. */
function connect(t: Test, options: postgres.Options<{}> = {}) {
  const sql = postgres(proxy.url(), { max: 1, onnotice: () => undefined, ...options });
  t.teardown(() => sql.end({ timeout: 5 }));
  return sql;
}

/** The txproxy session the single connection of `sql` runs on. */
async function sessionOf(sql: postgres.Sql): Promise<string> {
  const [{ pid }] = await sql`SELECT pg_backend_pid() AS pid`;
  for (const s of proxy.app.server.sessions) if (s.backendPid === pid) return s.info.id;
  throw new Error('no session');
}

t.test('simple and prepared queries: results unchanged, statements named and reused', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  resetRecords(proxy);
  const simple = await sql`SELECT 1 AS one, 'two' AS two`.simple();
  t.same([...simple], [{ one: 1, two: 'two' }]);
  for (const id of [1, 2, 3]) await sql`INSERT INTO accounts (id, balance) VALUES (${id}, ${100 * id})`;
  const rows = await sql`SELECT id, balance FROM accounts WHERE id = ANY(${[1, 2, 3]}::int[]) ORDER BY id`;
  t.same([...rows], [
    { id: 1, balance: 100 },
    { id: 2, balance: 200 },
    { id: 3, balance: 300 },
  ]);
  await proxy.waitForTransactions(5);
  const mine = proxy.statements.filter((s) => s.sessionId === sessionId);
  t.same(
    mine.map((s) => [s.info.operation, s.protocol, s.commandTag]),
    [
      ['SELECT', 'simple', 'SELECT 1'],
      ['INSERT', 'extended', 'INSERT 0 1'],
      ['INSERT', 'extended', 'INSERT 0 1'],
      ['INSERT', 'extended', 'INSERT 0 1'],
      ['SELECT', 'extended', 'SELECT 3'],
    ],
  );
  const insertNames = new Set(mine.filter((s) => s.info.operation === 'INSERT').map((s) => s.statementName));
  t.equal(insertNames.size, 1, 'the three INSERTs ran one prepared statement');
  t.not([...insertNames][0], '', 'and it is a named one');
  t.ok(proxy.transactions.every((x) => x.implicit && x.outcome === 'commit'));
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('Promise.all of many queries pipelines them on one connection; each is its own implicit transaction', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  await sql`SELECT ${0}::int AS i`; // prepared once: later runs need no Describe round trip and pipeline
  resetRecords(proxy);
  deepestPipeline = 0;
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => sql`SELECT ${i}::int AS i`));
  t.same(
    results.map((r) => r[0].i),
    Array.from({ length: 30 }, (_, i) => i),
  );
  await proxy.waitForTransactions(30);
  t.ok(deepestPipeline > 2, `queries were in flight together (deepest pipeline ${deepestPipeline})`);
  const mine = proxy.statements.filter((s) => s.sessionId === sessionId);
  t.equal(mine.length, 30);
  t.same(new Set(mine.map((s) => s.transactionId)).size, 30, 'one transaction per Sync');
  t.ok(mine.every((s) => s.commandTag === 'SELECT 1' && s.rows === 1));
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('an error in the middle of a pipeline fails only its own query', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  resetRecords(proxy);
  const outcomes = await Promise.allSettled([
    sql`SELECT 1 AS a`,
    sql`SELECT 2 AS b`,
    sql`SELECT * FROM no_such_table`,
    sql`SELECT 4 AS d`,
    sql`SELECT 5 AS e`,
  ]);
  t.same(
    outcomes.map((o) => o.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
  t.match((outcomes[2] as PromiseRejectedResult).reason, { code: '42P01' });
  await proxy.waitForTransactions(5);
  const mine = proxy.statements.filter((s) => s.sessionId === sessionId);
  t.same(
    mine.map((s) => [s.text, s.error?.code ?? null]),
    [
      ['SELECT 1 AS a', null],
      ['SELECT 2 AS b', null],
      ['SELECT * FROM no_such_table', '42P01'],
      ['SELECT 4 AS d', null],
      ['SELECT 5 AS e', null],
    ],
  );
  t.same(
    proxy.transactions.map((x) => x.outcome),
    ['commit', 'commit', 'failed', 'commit', 'commit'],
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('sql.begin with nested savepoints: depths, a savepoint rolled back, the outer transaction commits', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  await sql`DELETE FROM accounts`;
  resetRecords(proxy);
  await sql.begin(async (sql) => {
    await sql`INSERT INTO accounts (id, balance) VALUES (10, 100)`;
    await sql.savepoint(async (sql) => {
      await sql`UPDATE accounts SET balance = balance - 30 WHERE id = 10`;
    });
    await t.rejects(
      sql.savepoint(async (sql) => {
        await sql`UPDATE accounts SET balance = balance - 500 WHERE id = 10`; // violates the CHECK
      }),
      { code: '23514' },
    );
    await sql.savepoint('outer', async (sql) => {
      await sql`INSERT INTO accounts (id, balance) VALUES (11, 5)`;
      await sql.savepoint('inner', async (sql) => {
        await sql`INSERT INTO accounts (id, balance) VALUES (12, 6)`;
      });
    });
  });
  const rows = await pgServer.sql('SELECT id, balance FROM accounts ORDER BY id');
  t.same(rows.rows, [
    { id: 10, balance: 70 },
    { id: 11, balance: 5 },
    { id: 12, balance: 6 },
  ]);
  await proxy.waitForTransactions(1);
  const [tx] = proxy.transactions.filter((x) => x.sessionId === sessionId);
  // postgres.js never releases: its savepoints pile up until COMMIT.
  t.match(tx, {
    implicit: false,
    outcome: 'commit',
    writes: 4, // the UPDATE that failed changed nothing
    savepointsCreated: 4,
    savepointsRolledBack: 1,
    savepointsReleased: 0,
    maxSavepointDepth: 4,
    firstError: { code: '23514' },
  });
  t.same(
    statementRecords(proxy, sessionId).map((r) => [r['db.query.text'], r['pg.savepoint_depth'], r['db.response.status_code']]),
    [
      ['begin', 0, null],
      ['INSERT INTO accounts (id, balance) VALUES (10, 100)', 0, null],
      ['savepoint "s0"', 1, null],
      ['UPDATE accounts SET balance = balance - 30 WHERE id = 10', 1, null],
      ['savepoint "s1"', 2, null],
      ['UPDATE accounts SET balance = balance - 500 WHERE id = 10', 2, '23514'],
      ['rollback to "s1"', 2, null],
      ['savepoint "s2_outer"', 3, null],
      ['INSERT INTO accounts (id, balance) VALUES (11, 5)', 3, null],
      ['savepoint "s3_inner"', 4, null],
      ['INSERT INTO accounts (id, balance) VALUES (12, 6)', 4, null],
      ['commit', 0, null],
    ],
  );
  t.match(transactionRecords(proxy, sessionId)[0], { outcome: 'commit', 'savepoints.max_depth': 4, 'savepoints.rolled_back': 1 });
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('an error inside sql.begin rolls the whole transaction back: outcome failed', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  resetRecords(proxy);
  await t.rejects(
    sql.begin(async (sql) => {
      await sql`INSERT INTO accounts (id, balance) VALUES (20, 1)`;
      await sql`INSERT INTO accounts (id, balance) VALUES (20, 1)`;
    }),
    { code: '23505' },
  );
  await proxy.waitForTransactions(1);
  t.match(proxy.transactions[0], { implicit: false, outcome: 'failed', statements: 4, writes: 1, firstError: { code: '23505' } });
  t.same(
    proxy.statements.map((s) => [s.text, s.txStatusBefore, s.txStatusAfter]),
    [
      ['begin', 'I', 'T'],
      ['INSERT INTO accounts (id, balance) VALUES (20, 1)', 'T', 'T'],
      ['INSERT INTO accounts (id, balance) VALUES (20, 1)', 'T', 'E'],
      ['rollback', 'E', 'I'],
    ],
  );
  t.equal((await pgServer.sql('SELECT count(*)::int AS n FROM accounts WHERE id = 20')).rows[0].n, 0);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('queries pipelined inside sql.begin stay in the one explicit transaction', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  await sql`SELECT ${0}::int AS i`;
  resetRecords(proxy);
  const values = await sql.begin((sql) => Array.from({ length: 10 }, (_, i) => sql`SELECT ${i}::int AS i`));
  t.same(
    values.map((r) => r[0].i),
    Array.from({ length: 10 }, (_, i) => i),
  );
  await proxy.waitForTransactions(1);
  t.equal(proxy.transactions.length, 1);
  t.match(proxy.transactions[0], { implicit: false, outcome: 'commit', statements: 12 });
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('errors on the first run of a parameterized query (Parse, Describe, Flush before any Execute)', async (t) => {
  const sql = connect(t);
  const sessionId = await sessionOf(sql);
  resetRecords(proxy);
  // A syntax error answers the Parse that postgres.js sends ahead to learn the parameter types.
  await t.rejects(sql`SELEC ${1}::int`, { code: '42601' });
  // A bad parameter value fails at Bind, after the Describe round trip.
  await t.rejects(sql`SELECT ${'not a number'}::int AS n`, { code: '22P02' });
  t.same([...(await sql`SELECT ${5}::int AS n`)], [{ n: 5 }]);
  await proxy.waitForTransactions(3);
  t.same(
    proxy.statements.map((s) => [s.text, s.error?.code ?? null]),
    [
      ['SELEC $1::int', '42601'],
      ['SELECT $1::int AS n', '22P02'],
      ['SELECT $1::int AS n', null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['failed', 'failed', 'commit']);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});
