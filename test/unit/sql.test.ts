import t from 'tap';
import { classifyStatement, splitStatements } from '../../src/sql/classify.js';
import { redactSql } from '../../src/sql/redact.js';
import { extractSqlCommenter, parseTags, traceIdOf } from '../../src/sql/sqlcommenter.js';

t.test('splitting a Query the way the server runs it', async (t) => {
  const cases: [string, string[]][] = [
    ['SELECT 1', ['SELECT 1']],
    ['SELECT 1; SELECT 2;', ['SELECT 1', 'SELECT 2']],
    ["SELECT ';'; SELECT 2", ["SELECT ';'", 'SELECT 2']],
    ["SELECT 'it''s; here'", ["SELECT 'it''s; here'"]],
    ["SELECT E'a\\'; b'; SELECT 3", ["SELECT E'a\\'; b'", 'SELECT 3']],
    ['SELECT $$a;b$$; SELECT $x$ $$; $x$', ['SELECT $$a;b$$', 'SELECT $x$ $$; $x$']],
    ['SELECT "a;b" FROM t; SELECT 2', ['SELECT "a;b" FROM t', 'SELECT 2']],
    ['SELECT 1 -- ; not a split\n; SELECT 2', ['SELECT 1', 'SELECT 2']],
    ['SELECT /* ; /* nested ; */ ; */ 1; SELECT 2', ['SELECT /* ; /* nested ; */ ; */ 1', 'SELECT 2']],
    ['CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql; SELECT f()', ['CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql', 'SELECT f()']],
    ['SELECT 1;;; SELECT 2', ['SELECT 1', 'SELECT 2']],
    ['SELECT $1; SELECT $2', ['SELECT $1', 'SELECT $2']],
  ];
  for (const [sql, expected] of cases) t.same(splitStatements(sql).map((s) => s.text), expected, sql);
  const empty = splitStatements('  -- nothing\n');
  t.equal(empty.length, 1, 'an empty query is one (empty) statement');
  t.equal(empty[0].operation, '');
});

t.test('statements keep the comments sent with them; their text for rewriting does not', async (t) => {
  const cases: [string, string[], string[]][] = [
    // sql, sentText of each statement, text of each
    ['/* leading */ SELECT 1 -- trailing', ['/* leading */ SELECT 1 -- trailing'], ['SELECT 1']],
    ['-- why\nSELECT 1', ['-- why\nSELECT 1'], ['SELECT 1']],
    ['SELECT 1 /* a */; /* b */ SELECT 2 -- c', ['SELECT 1 /* a */', '/* b */ SELECT 2 -- c'], ['SELECT 1', 'SELECT 2']],
    ['SELECT 1; -- done', ['SELECT 1; -- done'], ['SELECT 1']],
    ['SELECT 1; /* x */ ; SELECT 2', ['SELECT 1; /* x */', 'SELECT 2'], ['SELECT 1', 'SELECT 2']],
    ['/* x */ ; SELECT 1', ['/* x */ ; SELECT 1'], ['SELECT 1']],
    ['SELECT 1 -- ; not a split\n; SELECT 2', ['SELECT 1 -- ; not a split', 'SELECT 2'], ['SELECT 1', 'SELECT 2']],
    ['  SELECT /* inside */ 1  ', ['SELECT /* inside */ 1'], ['SELECT /* inside */ 1']],
    ["SELECT '/* not a comment */'", ["SELECT '/* not a comment */'"], ["SELECT '/* not a comment */'"]],
  ];
  for (const [sql, sent, text] of cases) {
    const statements = splitStatements(sql);
    t.same(statements.map((s) => s.sentText), sent, `sent: ${sql}`);
    t.same(statements.map((s) => s.text), text, `text: ${sql}`);
  }
  t.equal(classifyStatement('/* Hibernate: load User */ select * from users').operation, 'SELECT', 'a leading comment does not name the operation');
  t.equal(splitStatements('-- only a comment')[0].sentText, '-- only a comment');
});

t.test('transaction control and savepoint names', async (t) => {
  const cases: [string, string | null, string | null, string][] = [
    ['BEGIN', 'begin', null, 'BEGIN'],
    ['begin isolation level serializable', 'begin', null, 'BEGIN'],
    ['START TRANSACTION READ ONLY', 'begin', null, 'START TRANSACTION'],
    ['COMMIT', 'commit', null, 'COMMIT'],
    ['END', 'commit', null, 'COMMIT'],
    ['ABORT', 'rollback', null, 'ROLLBACK'],
    ['ROLLBACK WORK', 'rollback', null, 'ROLLBACK'],
    ['SAVEPOINT Foo', 'savepoint', 'foo', 'SAVEPOINT'],
    ['SAVEPOINT "s1403_x1"', 'savepoint', 's1403_x1', 'SAVEPOINT'],
    ['SAVEPOINT "Mixed ""Case"""', 'savepoint', 'Mixed "Case"', 'SAVEPOINT'],
    ['RELEASE SAVEPOINT "s1403_x1"', 'release', 's1403_x1', 'RELEASE SAVEPOINT'],
    ['RELEASE a', 'release', 'a', 'RELEASE SAVEPOINT'],
    ['ROLLBACK TO SAVEPOINT "s1403_x1"', 'rollback_to', 's1403_x1', 'ROLLBACK TO SAVEPOINT'],
    ['ROLLBACK TO b', 'rollback_to', 'b', 'ROLLBACK TO SAVEPOINT'],
    ['rollback transaction to savepoint B', 'rollback_to', 'b', 'ROLLBACK TO SAVEPOINT'],
    ["PREPARE TRANSACTION 'x'", 'prepare_transaction', null, 'PREPARE TRANSACTION'],
    ["COMMIT PREPARED 'x'", null, null, 'COMMIT PREPARED'],
    ['PREPARE q AS SELECT 1', null, null, 'PREPARE'],
  ];
  for (const [sql, control, savepoint, operation] of cases) {
    const info = classifyStatement(sql);
    t.same([info.txControl, info.savepoint, info.operation], [control, savepoint, operation], sql);
  }
  t.ok(classifyStatement('COMMIT AND CHAIN').chain);
  t.notOk(classifyStatement('COMMIT AND NO CHAIN').chain);
});

t.test('writes, locking reads and statements that cannot run in a block', async (t) => {
  const cases: [string, boolean, boolean, boolean][] = [
    // sql, write, lockingRead, nonTransactional
    ['SELECT * FROM t', false, false, false],
    ['INSERT INTO t VALUES (1)', true, false, false],
    ['update t set a = 1', true, false, false],
    ['DELETE FROM t', true, false, false],
    ['MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE', true, false, false],
    ['TRUNCATE t', true, false, false],
    ['SELECT * FROM t FOR UPDATE', false, true, false],
    ['SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED', false, true, false],
    ['select * from t for share', false, true, false],
    ['WITH x AS (SELECT 1) SELECT * FROM x', false, false, false],
    ['WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x', true, false, false],
    ['WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x', false, true, false],
    ["SELECT 'INSERT INTO t'", false, false, false],
    ['SELECT * INTO new_t FROM t', true, false, false],
    ['COPY t FROM STDIN', true, false, false],
    ['COPY t TO STDOUT', false, false, false],
    ['COPY (SELECT * FROM t) TO STDOUT', false, false, false],
    ['CREATE TABLE t (a int)', true, false, false],
    ['CREATE INDEX CONCURRENTLY i ON t (a)', true, false, true],
    ['CREATE DATABASE d', true, false, true],
    ['VACUUM t', false, false, true],
    ['EXPLAIN INSERT INTO t VALUES (1)', false, false, false],
    ['EXPLAIN ANALYZE INSERT INTO t VALUES (1)', true, false, false],
    ['EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t', true, false, false],
  ];
  for (const [sql, write, locking, nonTx] of cases) {
    const info = classifyStatement(sql);
    t.same([info.write, info.lockingRead, info.nonTransactional], [write, locking, nonTx], sql);
  }
  t.equal(classifyStatement('CREATE UNIQUE INDEX i ON t (a)').operation, 'CREATE INDEX');
  t.equal(classifyStatement('WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x').operation, 'INSERT');
});

t.test('redaction blanks literals and keeps structure', async (t) => {
  t.equal(redactSql("SELECT * FROM users WHERE email = 'a@b.c' AND id = 42"), 'SELECT * FROM users WHERE email = ? AND id = ?');
  t.equal(redactSql('SELECT $1, $$secret$$, 1.5e3, "Col"'), 'SELECT $1, ?, ?, "Col"');
  t.equal(redactSql("SELECT E'it\\'s' -- note with data\n"), 'SELECT ? --\n');
  t.equal(redactSql("INSERT INTO t VALUES ('x', 'y')"), 'INSERT INTO t VALUES (?, ?)');
});

t.test('sqlcommenter tags', async (t) => {
  const sql =
    "SELECT * FROM orders /*action='checkout',controller='orders',framework='django%3A5.0',route='%2Fcheckout%2F',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/";
  const { text, tags } = extractSqlCommenter(sql);
  t.equal(text, 'SELECT * FROM orders');
  t.same(tags, {
    action: 'checkout',
    controller: 'orders',
    framework: 'django:5.0',
    route: '/checkout/',
    traceparent: '00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01',
  });
  t.equal(traceIdOf(tags!.traceparent), '5bd66ef5095369c7b0d1f8f4bd33716a');
  t.equal(traceIdOf('garbage'), null);
  t.same(parseTags("a='x\\'y'"), { a: "x'y" }, 'escaped quote');
  t.equal(parseTags('just a comment'), null);
  t.same(extractSqlCommenter('SELECT /* plain comment */ 1'), { text: 'SELECT /* plain comment */ 1', tags: null });
  t.same(extractSqlCommenter("SELECT '/*x=''y''*/' AS s"), { text: "SELECT '/*x=''y''*/' AS s", tags: null }, 'a comment inside a string is not a comment');
});
