/**
 * atomic and read-only policies through real clients: refusals in the
 * simple and the extended protocol, pipelined batches, and what the server
 * is left with (nothing refused ever reaches it).
 */
import t from 'tap';
import pg from 'pg';
import postgres from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { extended, rawClient, serialize, TRUST_LOCAL } from '../helpers/exact-client.js';

const server = await startPostgres({ hba: TRUST_LOCAL });
const counted: string[] = [];
const proxy = await startProxy(
  server,
  {
    policies: {
      rules: [
        { name: 'reports-read-only', match: { application_name: 'reports*' }, mode: 'read-only' },
        { name: 'audit-warn', match: { application_name: 'audit' }, mode: 'atomic', action: 'warn' },
        { name: 'shallow-savepoints', match: { application_name: 'shallow' }, mode: 'autocommit', limits: { max_savepoint_depth: 2 } },
        { name: 'short-transactions', match: { application_name: 'short' }, mode: 'autocommit', limits: { max_statements_per_transaction: 3 } },
        { name: 'web-atomic', match: { user: 'postgres' }, mode: 'atomic' },
      ],
    },
  },
  { policyViolations: { inc: (rule, action) => counted.push(`${rule}:${action}`) } },
);
t.teardown(async () => {
  await proxy.stop();
  await server.stop();
});
await server.sql('CREATE TABLE items (id serial PRIMARY KEY, name text)');

const count = async () => (await server.sql('SELECT count(*)::int AS n FROM items')).rows[0].n as number;
const policyRecords = () => proxy.trace.records.filter((r) => r.kind === 'policy');

t.beforeEach(async () => {
  await server.sql('TRUNCATE items');
  proxy.trace.records.length = 0;
  counted.length = 0;
});

t.test('atomic: an autocommit INSERT is refused with 25P01 and never reaches the server', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const err = await client.query("INSERT INTO items (name) VALUES ('a')").catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '25P01', severity: 'ERROR', message: /INSERT outside a transaction block refused by txproxy policy rule 'web-atomic' \(atomic\)/ });
  t.match((err as pg.DatabaseError).hint, /BEGIN and COMMIT/);
  t.equal((err as pg.DatabaseError).where, undefined, 'no PL/pgSQL context line');
  t.equal(await count(), 0, 'table unchanged');
  // The session is usable and idle afterwards.
  t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  t.match(policyRecords(), [{ rule: 'web-atomic', mode: 'atomic', action: 'enforce', decision: 'refused', sqlstate: '25P01', 'db.query.text': "INSERT INTO items (name) VALUES ('a')", 'request.id': /\.r1$/ }]);
  t.same(counted, ['web-atomic:enforce']);
  const refused = proxy.trace.records.find((r) => r.kind === 'statement' && r['db.operation.name'] === 'INSERT');
  t.match(refused, { 'db.response.status_code': '25P01', 'db.query.text': "INSERT INTO items (name) VALUES ('a')" }, 'the trace shows the client statement refused');
});

t.test('atomic: the same INSERT inside BEGIN … COMMIT succeeds', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('a')");
  await client.query({ text: 'INSERT INTO items (name) VALUES ($1)', values: ['b'] });
  await client.query('COMMIT');
  t.equal(await count(), 2);
  t.same(policyRecords(), []);
});

t.test('atomic: extended protocol refusal, then the session carries on', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const err = await client.query({ text: 'INSERT INTO items (name) VALUES ($1) RETURNING id', values: ['a'] }).catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '25P01', message: /refused by txproxy policy rule 'web-atomic'/ });
  t.equal(await count(), 0);
  const named = await client.query({ name: 'ins', text: 'INSERT INTO items (name) VALUES ($1)', values: ['b'] }).catch((e: pg.DatabaseError) => e);
  t.match(named, { code: '25P01' }, 'a named prepared statement is refused too');
  t.same((await client.query({ text: 'SELECT $1::int AS n', values: [7] })).rows, [{ n: 7 }]);
  await client.query('BEGIN');
  await client.query({ name: 'ins', text: 'INSERT INTO items (name) VALUES ($1)', values: ['b'] });
  await client.query('COMMIT');
  t.equal(await count(), 1, 'the prepared statement runs once inside a block');
});

t.test('atomic: SELECT … FOR UPDATE outside a block is refused, inside it runs', async (t) => {
  await server.sql("INSERT INTO items (name) VALUES ('x')");
  const client = await proxy.client();
  t.teardown(() => client.end());
  await t.rejects(client.query('SELECT * FROM items FOR UPDATE'), { code: '25P01', message: /SELECT … FOR UPDATE\/SHARE outside a transaction block/ });
  t.same((await client.query('SELECT name FROM items')).rows, [{ name: 'x' }], 'plain reads pass');
  await client.query('BEGIN');
  t.equal((await client.query('SELECT * FROM items FOR UPDATE')).rowCount, 1);
  await client.query('ROLLBACK');
});

t.test('atomic: a refused statement in a multi-statement Query: nothing after it runs, nothing before it stays', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await t.rejects(client.query("SELECT 1; INSERT INTO items (name) VALUES ('a'); INSERT INTO items (name) VALUES ('b')"), { code: '25P01' });
  t.equal(await count(), 0);
  await client.query("BEGIN; INSERT INTO items (name) VALUES ('a'); COMMIT");
  t.equal(await count(), 1, 'writes after BEGIN in the same Query are inside a block');
});

t.test('atomic: a pipelined extended batch — the batch after the refused one still runs', async (t) => {
  const sql = postgres({ host: '127.0.0.1', port: proxy.port, user: server.user, password: server.password, database: 'postgres', max: 1, onnotice: () => {} });
  t.teardown(() => sql.end());
  // postgres.js pipelines queries issued together: three batches in one write.
  const results = await Promise.allSettled([
    sql`SELECT 1 AS a`,
    sql`INSERT INTO items (name) VALUES (${'refused'})`,
    sql`SELECT 2 AS b`,
  ]);
  t.match(results[0], { status: 'fulfilled', value: [{ a: 1 }] });
  t.match(results[1], { status: 'rejected', reason: { code: '25P01' } });
  t.match(results[2], { status: 'fulfilled', value: [{ b: 2 }] });
  t.equal(await count(), 0);
  // Inside a transaction block the pipeline's writes go through.
  await sql.begin(async (tx) => {
    await Promise.all([tx`INSERT INTO items (name) VALUES (${'a'})`, tx`INSERT INTO items (name) VALUES (${'b'})`]);
  });
  t.equal(await count(), 2);
});

t.test('atomic: pipelined batches in one write, exactly as the client receives them', async (t) => {
  const raw = await rawClient(proxy.port, { user: server.user, database: 'postgres' });
  t.teardown(() => raw.destroy());
  const answers = await raw.exchange(
    [
      ...extended('SELECT 1 AS a'),
      ...extended('INSERT INTO items (name) VALUES ($1)', ['refused']),
      // Two statements in one batch: the refusal of the first skips the second, as a server error would.
      ...extended('INSERT INTO items (name) VALUES ($1)', ['refused too'], false),
      ...extended('SELECT 2 AS b'),
      ...extended('SELECT 3 AS c'),
    ],
    4,
  );
  t.same(answers, [
    ...['1', '2', 'T', 'D', 'CC(SELECT 1)', 'Z(I)'],
    ...['1', '2', 'n', 'E(25P01)', 'Z(I)'],
    ...['1', '2', 'n', 'E(25P01)', 'Z(I)'],
    ...['1', '2', 'T', 'D', 'CC(SELECT 1)', 'Z(I)'],
  ]);
  t.same(await raw.exchange([serialize.query("BEGIN; INSERT INTO items (name) VALUES ('ok'); COMMIT")]), ['CC(BEGIN)', 'CC(INSERT 0 1)', 'CC(COMMIT)', 'Z(I)']);
  t.equal(await count(), 1);
  t.match(policyRecords().map((r) => r.decision), ['refused', 'refused'], 'the statement skipped after a refusal is not decided on');
});

t.test('read-only: a refusal inside an explicit block leaves it failed, as the server would', async (t) => {
  const client = await proxy.client({ application_name: 'reports-daily' });
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await t.rejects(client.query("INSERT INTO items (name) VALUES ('a')"), { code: '25006' });
  await t.rejects(client.query('SELECT 1'), { code: '25P02' }, 'the block is failed on the server');
  await client.query('ROLLBACK');
  t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  t.equal(await count(), 0);
});

t.test('read-only: writes refused with 25006 in any state, reads pass', async (t) => {
  const client = await proxy.client({ application_name: 'reports' });
  t.teardown(() => client.end());
  const err = await client.query("UPDATE items SET name = 'x'").catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '25006', message: /cannot execute UPDATE in a read-only transaction: txproxy policy rule 'reports-read-only'/ });
  await t.rejects(client.query({ text: 'DELETE FROM items WHERE id = $1', values: [1] }), { code: '25006' });
  await t.rejects(client.query('CREATE TABLE other (id int)'), { code: '25006' });
  t.same((await client.query('SELECT count(*)::int AS n FROM items')).rows, [{ n: 0 }]);
  const exists = await server.sql("SELECT to_regclass('other') IS NOT NULL AS e");
  t.equal(exists.rows[0].e, false);
  t.same(counted, ['reports-read-only:enforce', 'reports-read-only:enforce', 'reports-read-only:enforce']);
});

t.test('warn: the write runs, the decision is recorded and counted', async (t) => {
  const client = await proxy.client({ application_name: 'audit' });
  t.teardown(() => client.end());
  await client.query("INSERT INTO items (name) VALUES ('a')");
  t.equal(await count(), 1);
  t.match(policyRecords(), [{ rule: 'audit-warn', action: 'warn', decision: 'warned', sqlstate: '25P01' }]);
  t.same(counted, ['audit-warn:warn']);
});

t.test('warn: the recorded message says the statement ran, not that it was refused', async (t) => {
  const client = await proxy.client({ application_name: 'audit' });
  t.teardown(() => client.end());
  await client.query("UPDATE items SET name = 'b'");
  await eventually(() => policyRecords().length === 1, 5000, 'the warning');
  const [record] = policyRecords();
  t.match(record.message, /^UPDATE outside a transaction block let through with a warning \(action warn\) by txproxy policy rule 'audit-warn'/);
  t.notMatch(record.message, /refused/);
});

t.test('max_savepoint_depth: the savepoint past the limit is refused and the block fails', async (t) => {
  const client = await proxy.client({ application_name: 'shallow' });
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await client.query('SAVEPOINT a');
  await client.query('SAVEPOINT b');
  const err = await client.query('SAVEPOINT c').catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '54000', message: /max_savepoint_depth \(2\) of txproxy policy rule 'shallow-savepoints'/ });
  await client.query('ROLLBACK TO SAVEPOINT b');
  await client.query('RELEASE SAVEPOINT b');
  await client.query('SAVEPOINT c');
  await client.query("INSERT INTO items (name) VALUES ('kept')");
  await client.query('COMMIT');
  t.equal(await count(), 1, 'after releasing one, a new savepoint fits');
  t.match(policyRecords(), [{ rule: 'shallow-savepoints', decision: 'limit', sqlstate: '54000' }]);
});

t.test('max_statements_per_transaction: the statement past the limit is refused', async (t) => {
  const client = await proxy.client({ application_name: 'short' });
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('a')");
  await client.query("INSERT INTO items (name) VALUES ('b')");
  await t.rejects(client.query("INSERT INTO items (name) VALUES ('c')"), { code: '54000', message: /max_statements_per_transaction \(3\)/ });
  await client.query('COMMIT'); // answered ROLLBACK: the block failed
  t.equal(await count(), 0);
  for (let i = 0; i < 5; i++) await client.query("INSERT INTO items (name) VALUES ('autocommit')");
  t.equal(await count(), 5, 'autocommit statements are transactions of one');
});
