/**
 * single-transaction and dry-run through real clients: what a request
 * leaves behind at a clean end, an abrupt end and an error, exactly what
 * the client sees (tags, ReadyForQuery status), and request boundaries
 * from sqlcommenter trace ids.
 */
import t from 'tap';
import pg from 'pg';
import postgres from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { extended, rawClient, serialize, TRUST_LOCAL } from '../helpers/exact-client.js';

const server = await startPostgres({ hba: TRUST_LOCAL });
const proxy = await startProxy(server, {
  policies: {
    rules: [
      { name: 'django-requests', match: { application_name: 'django' }, mode: 'single-transaction' },
      { name: 'preview', match: { application_name: 'preview' }, mode: 'dry-run' },
      { name: 'orders', match: { route: '/orders/*' }, mode: 'single-transaction' },
    ],
  },
});
t.teardown(async () => {
  await proxy.stop();
  await server.stop();
});
await server.sql('CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE)');

const names = async () => (await server.sql('SELECT name FROM items ORDER BY id')).rows.map((r) => r.name as string);
const policyRecords = () => proxy.trace.records.filter((r) => r.kind === 'policy');
const sessionsClosed = () => eventually(() => proxy.app.server.sessions.size === 0, 5000, 'sessions to close');
const idleInTransaction = async () =>
  (await server.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")).rows[0].n as number;

t.beforeEach(async () => {
  await server.sql('TRUNCATE items');
  proxy.trace.records.length = 0;
});

/** Django with ATOMIC_REQUESTS and a nested atomic() that fails: INSERT, BEGIN, INSERT, ROLLBACK, INSERT. */
async function djangoRequest(client: pg.Client): Promise<void> {
  await client.query("INSERT INTO items (name) VALUES ('first')");
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('second')");
  await client.query('ROLLBACK');
  await client.query({ text: 'INSERT INTO items (name) VALUES ($1)', values: ['third'] });
}

t.test('single-transaction: an abrupt disconnect leaves nothing behind', async (t) => {
  const client = await proxy.client({ application_name: 'django' });
  client.on('error', () => undefined);
  await djangoRequest(client);
  t.same(await names(), [], 'nothing is visible before the request ends');
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await sessionsClosed();
  t.same(await names(), []);
  await eventually(async () => (await idleInTransaction()) === 0, 5000, 'no idle transaction');
  t.match(policyRecords().map((r) => r.decision), ['wrapped', 'rolled_back']);
});

t.test('single-transaction: the same request ending with Terminate keeps the first and third rows', async (t) => {
  const client = await proxy.client({ application_name: 'django' });
  await djangoRequest(client);
  await client.end();
  await sessionsClosed();
  t.same(await names(), ['first', 'third']);
  t.match(policyRecords(), [
    { rule: 'django-requests', mode: 'single-transaction', decision: 'wrapped' },
    { rule: 'django-requests', decision: 'committed', 'transaction.id': /\.t1$/ },
  ]);
  const tx = proxy.trace.records.filter((r) => r.kind === 'transaction');
  t.match(tx, [{ outcome: 'commit', implicit: false, 'savepoints.created': 1, 'savepoints.rolled_back': 1 }], 'one server transaction, traced');
});

t.test('single-transaction: tags and ReadyForQuery status are what the client expects', async (t) => {
  const raw = await rawClient(proxy.port, { user: server.user, database: 'postgres', application_name: 'django' });
  t.teardown(() => raw.destroy());
  t.same(await raw.exchange([serialize.query("INSERT INTO items (name) VALUES ('a')")]), ['CC(INSERT 0 1)', 'Z(I)']);
  const pid = (await server.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'django'")).rows[0].pid;
  t.match((await server.sql('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid])).rows, [{ state: 'idle in transaction' }], 'the server holds the request open');
  t.same(await raw.exchange([serialize.query('BEGIN')]), ['CC(BEGIN)', 'Z(T)']);
  t.same(await raw.exchange([serialize.query('BEGIN')]), ['N(WARNING 25001)', 'CC(BEGIN)', 'Z(T)'], 'BEGIN inside the block warns, as the server does');
  t.same(await raw.exchange([serialize.query('SAVEPOINT s1; INSERT INTO items (name) VALUES (\'b\'); RELEASE SAVEPOINT s1')]), [
    'CC(SAVEPOINT)',
    'CC(INSERT 0 1)',
    'CC(RELEASE)',
    'Z(T)',
  ]);
  t.same(await raw.exchange([serialize.query('SELECT 1/0')]), ['E(22012)', 'Z(E)'], 'an error inside the block fails the block');
  t.same(await raw.exchange([serialize.query('COMMIT')]), ['CC(ROLLBACK)', 'Z(I)'], 'COMMIT of a failed block is answered ROLLBACK');
  t.same(await raw.exchange([serialize.query('COMMIT')]), ['N(WARNING 25P01)', 'CC(COMMIT)', 'Z(I)'], 'COMMIT outside a block only warns');
  t.same(await raw.exchange(extended('BEGIN')), ['1', '2', 'n', 'CC(BEGIN)', 'Z(T)'], 'extended protocol BEGIN');
  t.same(await raw.exchange(extended('INSERT INTO items (name) VALUES ($1)', ['c'])), ['1', '2', 'n', 'CC(INSERT 0 1)', 'Z(T)']);
  t.same(await raw.exchange(extended('COMMIT')), ['1', '2', 'n', 'CC(COMMIT)', 'Z(I)'], 'extended protocol COMMIT');
  t.same(await raw.exchange([serialize.query('BEGIN; INSERT INTO items (name) VALUES (\'d\'); ROLLBACK')]), ['CC(BEGIN)', 'CC(INSERT 0 1)', 'CC(ROLLBACK)', 'Z(I)']);
  t.same(await names(), [], 'still nothing committed');
  raw.end();
  await raw.closed;
  await sessionsClosed();
  t.same(await names(), ['a', 'c']);
});

t.test("single-transaction: Django's nested atomic() savepoints keep working", async (t) => {
  const client = await proxy.client({ application_name: 'django' });
  await client.query('BEGIN');
  await client.query('SAVEPOINT "s1_x1"');
  await client.query("INSERT INTO items (name) VALUES ('kept')");
  await client.query('SAVEPOINT "s1_x2"');
  await t.rejects(client.query("INSERT INTO items (name) VALUES ('kept')"), { code: '23505' });
  await client.query('ROLLBACK TO SAVEPOINT "s1_x2"');
  await client.query('RELEASE SAVEPOINT "s1_x1"');
  await client.query('COMMIT');
  await client.query("INSERT INTO items (name) VALUES ('after')");
  await client.end();
  await sessionsClosed();
  t.same(await names(), ['kept', 'after']);
});

t.test('single-transaction: an error outside a block rolls the request back at once and refuses the rest of it', async (t) => {
  const client = await proxy.client({ application_name: 'django' });
  await client.query("INSERT INTO items (name) VALUES ('dup')");
  await t.rejects(client.query("INSERT INTO items (name) VALUES ('dup')"), { code: '23505' });
  await eventually(async () => (await idleInTransaction()) === 0, 5000, 'the request transaction rolled back');
  const err = await client.query('SELECT 1').catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '25P02', message: /rolled the request's transaction back/ });
  await client.query('ROLLBACK'); // harmless: no transaction in progress
  await client.end();
  await sessionsClosed();
  t.same(await names(), []);
  t.match(policyRecords().map((r) => r.decision), ['wrapped', 'rolled_back', 'refused']);
  t.match(policyRecords()[1], { sqlstate: '23505', message: /rolled back after an error \(23505/ });
});

t.test('single-transaction: a new sqlcommenter trace id ends one request and starts the next', async (t) => {
  const tag = (trace: string) => `/*route='/orders/new',traceparent='00-${trace.repeat(32)}-${'1'.repeat(16)}-01'*/`;
  const client = await proxy.client();
  client.on('error', () => undefined);
  await client.query(`INSERT INTO items (name) VALUES ('request-a') ${tag('a')}`);
  t.same(await names(), [], 'request a still open');
  await client.query({ text: `INSERT INTO items (name) VALUES ($1) ${tag('b')}`, values: ['request-b'] });
  t.same(await names(), ['request-a'], 'the second request committed the first');
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await sessionsClosed();
  t.same(await names(), ['request-a'], 'the second request, cut off, left nothing');
  const records = policyRecords();
  t.match(records.map((r) => [r.decision, r['request.id'], r['http.route']]), [
    ['wrapped', /\.r1$/, '/orders/new'],
    ['committed', /\.r1$/, '/orders/new'],
    ['wrapped', /\.r2$/, '/orders/new'],
    ['rolled_back', /\.r2$/, '/orders/new'],
  ]);
});

t.test('single-transaction: untagged sessions do not match a route rule', async (t) => {
  const client = await proxy.client();
  await client.query("INSERT INTO items (name) VALUES ('autocommit')");
  t.same(await names(), ['autocommit'], 'committed at once');
  await client.end();
  t.same(policyRecords(), []);
});

t.test('dry-run: rows reported, nothing left behind', async (t) => {
  await server.sql("INSERT INTO items (name) VALUES ('old-1'), ('old-2'), ('old-3')");
  const client = await proxy.client({ application_name: 'preview' });
  await client.query("INSERT INTO items (name) VALUES ('new-1'), ('new-2')");
  await client.query({ text: 'UPDATE items SET name = name || $1 WHERE name LIKE $2', values: ['!', 'old-%'] });
  await client.query('BEGIN');
  await client.query("DELETE FROM items WHERE name = 'new-1'");
  await client.query('ROLLBACK'); // undone by the request itself: not reported
  await client.query("DELETE FROM items WHERE name = 'new-2'");
  const seen = await client.query('SELECT count(*)::int AS n FROM items');
  t.equal(seen.rows[0].n, 4, 'the request sees its own changes');
  await client.end();
  await sessionsClosed();
  t.same(await names(), ['old-1', 'old-2', 'old-3'], 'nothing changed');
  const [report] = proxy.trace.records.filter((r) => r.kind === 'dry_run');
  t.match(report, {
    kind: 'dry_run',
    'session.id': /\d+/,
    'request.id': /\.r1$/,
    rows_total: 6,
    rolled_back: true,
    changes: [
      { command: 'INSERT', rows: 2, statement: "INSERT INTO items (name) VALUES ('new-1'), ('new-2')" },
      { command: 'UPDATE', rows: 3 },
      { command: 'DELETE', rows: 1, statement: "DELETE FROM items WHERE name = 'new-2'" },
    ],
  });
  t.equal((report.changes as unknown[]).length, 3);
  t.match(policyRecords().map((r) => [r.rule, r.mode, r.decision]), [
    ['preview', 'dry-run', 'wrapped'],
    ['preview', 'dry-run', 'rolled_back'],
  ]);
});

t.test('single-transaction through postgres.js: pipelined extended batches and sql.begin()', async (t) => {
  const sql = postgres({ host: '127.0.0.1', port: proxy.port, user: server.user, database: 'postgres', max: 1, connection: { application_name: 'django' }, onnotice: () => {} });
  // Prepared statements and pipelining: batches that start with Parse, later ones with Bind only.
  await Promise.all(['p1', 'p2', 'p3'].map((name) => sql`INSERT INTO items (name) VALUES (${name})`));
  await sql.begin(async (tx) => {
    await tx`INSERT INTO items (name) VALUES (${'in-block'})`;
    await tx.savepoint(async (sp) => {
      await sp`INSERT INTO items (name) VALUES (${'in-savepoint'})`;
    });
  });
  await sql
    .begin(async (tx) => {
      await tx`INSERT INTO items (name) VALUES (${'rolled-back'})`;
      throw new Error('the block fails');
    })
    .catch(() => undefined);
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM items`;
  t.equal(n, 5, 'the request sees its own rows');
  t.same(await names(), [], 'nothing committed yet');
  await sql.end();
  await sessionsClosed();
  t.same(await names(), ['p1', 'p2', 'p3', 'in-block', 'in-savepoint']);
});

t.test('single-transaction: Terminate inside an open block drops the block and commits the rest', async (t) => {
  const client = await proxy.client({ application_name: 'django' });
  await client.query("INSERT INTO items (name) VALUES ('outside')");
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('inside, never committed')");
  await client.end();
  await sessionsClosed();
  t.same(await names(), ['outside'], 'as the server would: the open block is rolled back, acknowledged work stays');
});

t.test('single-transaction: transaction modes on the request\'s first BEGIN open the request transaction with them', async (t) => {
  const client = await proxy.client({ application_name: 'django' });
  await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
  t.same((await client.query('SHOW transaction_isolation')).rows, [{ transaction_isolation: 'serializable' }]);
  await client.query("INSERT INTO items (name) VALUES ('serializable')");
  await client.query('COMMIT');
  // Later in the same request the modes can no longer change.
  const err = await client.query('BEGIN ISOLATION LEVEL READ COMMITTED').catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '25001', message: /transaction modes cannot change inside the request's transaction/ });
  await client.end();
  await sessionsClosed();
  t.same(await names(), [], 'the refusal outside a block failed the request');
});
