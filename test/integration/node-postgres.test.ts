import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE)');

t.beforeEach(() => {
  proxy.statements.length = 0;
  proxy.transactions.length = 0;
});

t.test('simple protocol: results come back unchanged and are traced', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const result = await client.query("SELECT 1 AS one, 'two' AS two");
  t.same(result.rows, [{ one: 1, two: 'two' }]);
  await client.query("INSERT INTO items (name) VALUES ('a'), ('b')");
  await proxy.waitForTransactions(2);
  t.same(proxy.transactions.map((x) => [x.outcome, x.implicit, x.writes]), [
    ['commit', true, 0],
    ['commit', true, 1],
  ]);
  const records = proxy.trace.records.filter((r) => r.kind === 'statement');
  t.match(records.at(-1), { 'db.operation.name': 'INSERT', 'pg.command_tag': 'INSERT 0 2', 'db.response.returned_rows': 2, 'pg.protocol': 'simple' });
});

t.test('extended protocol with parameters and a named prepared statement', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  for (const name of ['c', 'd', 'e']) {
    await client.query({ name: 'insert-item', text: 'INSERT INTO items (name) VALUES ($1) RETURNING id', values: [name] });
  }
  const rows = await client.query({ text: 'SELECT name FROM items WHERE name = ANY($1) ORDER BY name', values: [['c', 'd', 'e']] });
  t.same(rows.rows.map((r) => r.name), ['c', 'd', 'e']);
  await proxy.waitForTransactions(4);
  t.same(proxy.statements.map((s) => [s.protocol, s.statementName]), [
    ['extended', 'insert-item'],
    ['extended', 'insert-item'],
    ['extended', 'insert-item'],
    ['extended', ''],
  ]);
});

t.test('an explicit transaction with an error and a savepoint', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('f')");
  await client.query('SAVEPOINT sp');
  await t.rejects(client.query("INSERT INTO items (name) VALUES ('f')"), { code: '23505' });
  await client.query('ROLLBACK TO SAVEPOINT sp');
  await client.query('COMMIT');
  await proxy.waitForTransactions(1);
  t.match(proxy.transactions[0], { outcome: 'commit', implicit: false, statements: 6, writes: 1, savepointsCreated: 1, savepointsRolledBack: 1, firstError: { code: '23505' } });
  const count = await postgres.sql("SELECT count(*)::int AS n FROM items WHERE name = 'f'");
  t.equal(count.rows[0].n, 1);
});

t.test('errors reach the client exactly as the server sent them', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const err = await client.query('SELECT * FROM no_such_table').catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '42P01', severity: 'ERROR', message: 'relation "no_such_table" does not exist', position: '15' });
});

// Transaction pooling shares server connections between clients: that is its point.
const sharedServers = process.env.TXPROXY_TEST_POOL_MODE === 'transaction';

t.test('many clients at once, each with its own upstream connection', { skip: sharedServers && 'clients share server connections in transaction pooling' }, async (t) => {
  const clients = await Promise.all(Array.from({ length: 10 }, () => proxy.client()));
  t.teardown(() => Promise.all(clients.map((c) => c.end())));
  const pids = await Promise.all(clients.map(async (c) => (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid));
  t.equal(new Set(pids).size, 10);
  t.equal(proxy.app.server.sessions.size, 10);
});

t.test('a large result and a large parameter pass through intact', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const big = 'x'.repeat(5 * 1024 * 1024);
  const echo = await client.query('SELECT $1::text AS v, length($1::text) AS n', [big]);
  t.equal(echo.rows[0].n, big.length);
  t.ok(echo.rows[0].v === big);
  const rows = await client.query('SELECT g, md5(g::text) FROM generate_series(1, 50000) g');
  t.equal(rows.rowCount, 50000);
  await proxy.waitForTransactions(2);
  t.equal(proxy.statements.at(-1)?.rows, 50000);
});
