/**
 * psql (libpq, simple protocol) through txproxy: `-c`, a multi-statement
 * `-c` (one implicit transaction), scripts with ON_ERROR_ROLLBACK (psql's
 * own savepoint around every statement of a block) and AUTOCOMMIT off (psql
 * sends BEGIN itself).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { psql } from '../helpers/cli.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { checkTraceInvariants, resetRecords, statementRecords } from '../helpers/trace-checks.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-psql-'));
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
});
await postgres.sql('CREATE TABLE notes (id int PRIMARY KEY, body text)');
const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };

t.beforeEach(async () => {
  await postgres.sql('TRUNCATE notes');
  resetRecords(proxy);
});

async function ids(): Promise<number[]> {
  return (await postgres.sql('SELECT id FROM notes ORDER BY id')).rows.map((r) => r.id);
}

/** Waits for the psql session to be over (its session record written). */
async function sessionsEnded(n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (proxy.trace.records.filter((r) => r.kind === 'session' && r.event === 'end').length < n) {
    if (Date.now() > deadline) throw new Error('psql session did not end');
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('psql -c: output unchanged, one statement, one implicit transaction', async (t) => {
  const result = await psql(endpoint, ['-c', "SELECT 40 + 2 AS answer, 'ok' AS status"]);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, '42|ok\n');
  await sessionsEnded(1);
  t.match(statementRecords(proxy), [{ 'db.operation.name': 'SELECT', 'pg.protocol': 'simple', 'pg.command_tag': 'SELECT 1', 'db.response.returned_rows': 1 }]);
  t.equal(statementRecords(proxy).length, 1, 'psql sent nothing else');
  t.same(proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements]), [[true, 'commit', 1]]);
  checkTraceInvariants(t, proxy);
});

t.test('psql -c with two INSERTs is one implicit transaction of two statements', async (t) => {
  const result = await psql(endpoint, ['-c', "INSERT INTO notes VALUES (1, 'a'); INSERT INTO notes VALUES (2, 'b')"]);
  t.equal(result.code, 0, result.stderr);
  t.same(await ids(), [1, 2]);
  await sessionsEnded(1);
  t.same(proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes]), [[true, 'commit', 2, 2]]);
  t.same(
    proxy.statements.map((s) => [s.text, s.commandTag]),
    [
      ["INSERT INTO notes VALUES (1, 'a')", 'INSERT 0 1'],
      ["INSERT INTO notes VALUES (2, 'b')", 'INSERT 0 1'],
    ],
  );
  t.equal(proxy.statements[0].transactionId, proxy.statements[1].transactionId);
  checkTraceInvariants(t, proxy);
});

t.test('psql -c with a failing second INSERT: the implicit transaction fails and the first is undone', async (t) => {
  const result = await psql(endpoint, ['-c', "INSERT INTO notes VALUES (3, 'c'); INSERT INTO notes VALUES (3, 'again'); INSERT INTO notes VALUES (4, 'd')"]);
  t.equal(result.code, 1);
  t.match(result.stderr, /duplicate key value violates unique constraint "notes_pkey"/);
  t.same(await ids(), []);
  await sessionsEnded(1);
  t.same(proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes, x.firstError?.code]), [[true, 'failed', 2, 1, '23505']]);
  t.equal(proxy.statements.length, 2, 'the third statement never ran');
  checkTraceInvariants(t, proxy);
});

t.test('a script with \\set ON_ERROR_ROLLBACK on: psql wraps each statement in its own savepoint', async (t) => {
  const script = path.join(dir, 'on-error-rollback.sql');
  writeFileSync(
    script,
    [
      '\\set ON_ERROR_ROLLBACK on',
      'BEGIN;',
      "INSERT INTO notes VALUES (10, 'kept');",
      "INSERT INTO notes VALUES (10, 'duplicate');",
      "INSERT INTO notes VALUES (11, 'kept too');",
      'COMMIT;',
      '',
    ].join('\n'),
  );
  const result = await psql(endpoint, ['-f', script], { onErrorStop: false });
  t.equal(result.code, 0, 'psql goes on after the error');
  t.match(result.stderr, /duplicate key/);
  t.same(await ids(), [10, 11], 'the failed INSERT was rolled back to its savepoint, the rest committed');
  await sessionsEnded(1);
  t.same(
    proxy.statements.map((s) => [s.text, s.commandTag ?? s.error?.code, s.savepointDepth]),
    [
      ['BEGIN', 'BEGIN', 0],
      ['SAVEPOINT pg_psql_temporary_savepoint', 'SAVEPOINT', 1],
      ["INSERT INTO notes VALUES (10, 'kept')", 'INSERT 0 1', 1],
      ['RELEASE pg_psql_temporary_savepoint', 'RELEASE', 0],
      ['SAVEPOINT pg_psql_temporary_savepoint', 'SAVEPOINT', 1],
      ["INSERT INTO notes VALUES (10, 'duplicate')", '23505', 1],
      // ROLLBACK TO keeps the savepoint, and psql does not release it: the next one nests.
      ['ROLLBACK TO pg_psql_temporary_savepoint', 'ROLLBACK', 1],
      ['SAVEPOINT pg_psql_temporary_savepoint', 'SAVEPOINT', 2],
      ["INSERT INTO notes VALUES (11, 'kept too')", 'INSERT 0 1', 2],
      ['RELEASE pg_psql_temporary_savepoint', 'RELEASE', 1],
      // psql sets its savepoint before COMMIT too; COMMIT ends it with the transaction.
      ['SAVEPOINT pg_psql_temporary_savepoint', 'SAVEPOINT', 2],
      ['COMMIT', 'COMMIT', 0],
    ],
  );
  t.same(proxy.transactions.length, 1);
  t.match(proxy.transactions[0], {
    implicit: false,
    outcome: 'commit',
    statements: 12,
    writes: 2,
    savepointsCreated: 4,
    savepointsReleased: 2,
    savepointsRolledBack: 1,
    maxSavepointDepth: 2,
    firstError: { code: '23505' },
  });
  checkTraceInvariants(t, proxy);
});

t.test('\\set AUTOCOMMIT off: psql opens the transaction itself, the script commits and rolls back', async (t) => {
  const result = await psql(endpoint, [], {
    input: ['\\set AUTOCOMMIT off', "INSERT INTO notes VALUES (20, 'x');", 'COMMIT;', "INSERT INTO notes VALUES (21, 'y');", 'ROLLBACK;', 'SELECT count(*) FROM notes;', ''].join('\n'),
  });
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, '1\n');
  t.same(await ids(), [20]);
  await sessionsEnded(1);
  // The SELECT opened a third transaction that psql leaves open: closing the session rolls it back.
  t.same(
    proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes]),
    [
      [false, 'commit', 3, 1],
      [false, 'rollback', 3, 1],
      [false, 'disconnect', 2, 0],
    ],
  );
  t.same(
    proxy.statements.map((s) => s.text),
    ['BEGIN', "INSERT INTO notes VALUES (20, 'x')", 'COMMIT', 'BEGIN', "INSERT INTO notes VALUES (21, 'y')", 'ROLLBACK', 'BEGIN', 'SELECT count(*) FROM notes'],
  );
  checkTraceInvariants(t, proxy);
});

t.test('psql -c with BEGIN, writes, COMMIT and a last INSERT: an explicit transaction, then an implicit one', async (t) => {
  const result = await psql(endpoint, ['-c', "BEGIN; INSERT INTO notes VALUES (30, 'a'); INSERT INTO notes VALUES (31, 'b'); COMMIT; INSERT INTO notes VALUES (32, 'c')"]);
  t.equal(result.code, 0, result.stderr);
  t.same(await ids(), [30, 31, 32]);
  await sessionsEnded(1);
  t.same(
    proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes]),
    [
      [false, 'commit', 4, 2],
      [true, 'commit', 1, 1],
    ],
  );
  checkTraceInvariants(t, proxy);
});

t.test('psql -c with INSERT; ROLLBACK; INSERT: the ROLLBACK undoes the implicit block, the last INSERT commits alone', async (t) => {
  const result = await psql(endpoint, ['-c', "INSERT INTO notes VALUES (35, 'undone'); ROLLBACK; INSERT INTO notes VALUES (36, 'kept')"]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /there is no transaction in progress/, 'the server warns, and psql shows it');
  t.same(await ids(), [36]);
  await sessionsEnded(1);
  t.same(
    proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes]),
    [
      [true, 'rollback', 2, 1],
      [true, 'commit', 1, 1],
    ],
  );
  checkTraceInvariants(t, proxy);
});

t.test('a SQL-standard function body (BEGIN ATOMIC … END) sent by psql is one statement, not three', async (t) => {
  const result = await psql(endpoint, [
    '-c',
    'CREATE FUNCTION note_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT count(*) FROM notes; END; SELECT note_count()',
  ]);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, '0\n');
  const script = "CREATE PROCEDURE add_note(i int) LANGUAGE sql BEGIN ATOMIC INSERT INTO notes VALUES (i, CASE WHEN i > 0 THEN 'pos' END); END;\nCALL add_note(40);\n";
  const second = await psql(endpoint, [], { input: script });
  t.equal(second.code, 0, second.stderr);
  t.same(await ids(), [40]);
  await sessionsEnded(2);
  t.same(
    proxy.statements.map((s) => [s.info.operation, s.commandTag]),
    [
      ['CREATE FUNCTION', 'CREATE FUNCTION'],
      ['SELECT', 'SELECT 1'],
      ['CREATE PROCEDURE', 'CREATE PROCEDURE'],
      ['CALL', 'CALL'],
    ],
    'each statement the server ran, with its own text and tag, and nothing else',
  );
  t.match(proxy.statements[1].text, /^SELECT note_count\(\)$/);
  checkTraceInvariants(t, proxy);
});
