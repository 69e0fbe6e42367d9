/**
 * Timed limits (idle in transaction, transaction duration), the autocommit
 * orphan-write warning, and the promise that sessions with nothing to
 * enforce carry no per-message hooks.
 */
import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { rawClient, serialize, TRUST_LOCAL } from '../helpers/exact-client.js';
import { buildConfig } from '../../src/config/load.js';
import type { SessionInterceptor } from '../../src/proxy/session.js';

const server = await startPostgres({ hba: TRUST_LOCAL });
const proxy = await startProxy(server, {
  policies: {
    default: { mode: 'autocommit' },
    rules: [
      { name: 'idle-300ms', match: { application_name: 'idler' }, limits: { idle_in_transaction_timeout: '300ms' } },
      { name: 'idle-warn', match: { application_name: 'idle-warn' }, action: 'warn', limits: { idle_in_transaction_timeout: '200ms' } },
      { name: 'request-idle', match: { application_name: 'django-idle' }, mode: 'single-transaction', limits: { idle_in_transaction_timeout: '300ms' } },
      { name: 'short-tx', match: { application_name: 'short' }, limits: { max_transaction_duration: '500ms' } },
    ],
  },
});
t.teardown(async () => {
  await proxy.stop();
  await server.stop();
});
await server.sql('CREATE TABLE items (id serial PRIMARY KEY, name text)');

const count = async () => (await server.sql('SELECT count(*)::int AS n FROM items')).rows[0].n as number;
const policyRecords = () => proxy.trace.records.filter((r) => r.kind === 'policy');
const idleInTransaction = async () =>
  (await server.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")).rows[0].n as number;
const sessionsClosed = () => eventually(() => proxy.app.server.sessions.size === 0, 5000, 'sessions to close');

t.beforeEach(async () => {
  await server.sql('TRUNCATE items');
  proxy.trace.records.length = 0;
});

/** The first error the client reports on its own (pg then also reports the closed connection). */
function nextError(client: pg.Client): Promise<pg.DatabaseError> {
  return new Promise((resolve) => client.on('error', (err) => resolve(err as pg.DatabaseError)));
}

t.test('idle_in_transaction_timeout: the session is ended with 25P03 and nothing stays idle in transaction', async (t) => {
  const client = await proxy.client({ application_name: 'idler' });
  const failed = nextError(client);
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('never committed')");
  t.equal(await idleInTransaction(), 1, 'the transaction sits idle');
  const err = await failed;
  t.match(err, { code: '25P03', severity: 'FATAL', message: 'terminating connection due to idle-in-transaction timeout', detail: /rule 'idle-300ms'.*300 ms/ });
  await sessionsClosed();
  await eventually(async () => (await idleInTransaction()) === 0, 5000, 'no idle-in-transaction backend');
  t.equal(await count(), 0, 'rolled back');
  t.match(policyRecords(), [{ rule: 'idle-300ms', decision: 'limit', sqlstate: '25P03', action: 'enforce' }]);
});

t.test('idle_in_transaction_timeout: activity in time keeps the session', async (t) => {
  const client = await proxy.client({ application_name: 'idler' });
  t.teardown(() => client.end());
  await client.query('BEGIN');
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 100));
    await client.query("INSERT INTO items (name) VALUES ('x')");
  }
  await client.query('COMMIT');
  await new Promise((r) => setTimeout(r, 500));
  t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'idle outside a transaction is fine');
  t.equal(await count(), 4);
  t.same(policyRecords(), []);
});

t.test('idle_in_transaction_timeout: the exact message a client receives before the close', async (t) => {
  const raw = await rawClient(proxy.port, { user: server.user, database: 'postgres', application_name: 'idler' });
  t.same(await raw.exchange([serialize.query('BEGIN')]), ['CC(BEGIN)', 'Z(T)']);
  await raw.closed;
  t.same(raw.received(), ['E(25P03 FATAL)']);
});

t.test('idle_in_transaction_timeout with action warn: recorded, the session lives on', async (t) => {
  const client = await proxy.client({ application_name: 'idle-warn' });
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await eventually(() => policyRecords().length > 0, 3000, 'the warning');
  await client.query("INSERT INTO items (name) VALUES ('x')");
  await client.query('COMMIT');
  t.equal(await count(), 1);
  t.match(policyRecords(), [{ rule: 'idle-warn', decision: 'warned', action: 'warn', sqlstate: '25P03' }]);
});

t.test('idle_in_transaction_timeout under single-transaction: the idle request is rolled back', async (t) => {
  const client = await proxy.client({ application_name: 'django-idle' });
  const failed = nextError(client);
  await client.query("INSERT INTO items (name) VALUES ('acknowledged')");
  t.match(await failed, { code: '25P03', severity: 'FATAL' });
  await sessionsClosed();
  t.equal(await count(), 0);
  t.match(policyRecords().map((r) => r.decision), ['wrapped', 'limit', 'rolled_back']);
});

t.test('max_transaction_duration: a transaction running too long is ended with 25P04', async (t) => {
  const client = await proxy.client({ application_name: 'short' });
  client.on('error', () => undefined);
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('x')");
  const started = Date.now();
  const err = await client.query('SELECT pg_sleep(10)').catch((e: pg.DatabaseError) => e);
  t.match(err, { code: '25P04', severity: 'FATAL', message: 'terminating connection due to transaction timeout' });
  t.ok(Date.now() - started < 8000, 'the running statement was cut short');
  await sessionsClosed();
  await eventually(async () => (await server.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'")).rows[0].n === 0, 5000, 'the sleep cancelled');
  t.equal(await count(), 0);
  t.match(policyRecords(), [{ rule: 'short-tx', decision: 'limit', sqlstate: '25P04' }]);
});

t.test('max_transaction_duration: short transactions and idle sessions are left alone', async (t) => {
  const client = await proxy.client({ application_name: 'short' });
  t.teardown(() => client.end());
  for (let i = 0; i < 3; i++) {
    await client.query('BEGIN');
    await client.query("INSERT INTO items (name) VALUES ('x')");
    await client.query('COMMIT');
    await new Promise((r) => setTimeout(r, 300));
  }
  t.equal(await count(), 3);
  t.same(policyRecords(), []);
});

t.test('autocommit: two writes of one request in separate transactions are warned about once', async (t) => {
  const client = await proxy.client();
  await client.query("INSERT INTO items (name) VALUES ('order')");
  await client.query("INSERT INTO items (name) VALUES ('order line')");
  await client.query("INSERT INTO items (name) VALUES ('address')");
  await client.query('BEGIN');
  await client.query("INSERT INTO items (name) VALUES ('atomic')");
  await client.query('COMMIT');
  await client.end();
  await sessionsClosed();
  t.match(policyRecords(), [{ rule: 'default', mode: 'autocommit', decision: 'warned', action: 'warn', sqlstate: null, message: /committed writes in 2 separate autocommit transactions/ }]);
  t.equal(policyRecords().length, 1);

  proxy.trace.records.length = 0;
  const single = await proxy.client();
  await single.query("INSERT INTO items (name) VALUES ('one write')");
  await single.query('SELECT count(*) FROM items');
  await single.end();
  await sessionsClosed();
  t.same(policyRecords(), [], 'one write alone is no risk');
});

t.test('sessions with nothing to enforce get no per-message hooks', async (t) => {
  const plain = await proxy.client();
  const limited = await proxy.client({ application_name: 'idler' });
  t.teardown(() => limited.end());
  const hooks = () =>
    [...proxy.app.server.sessions]
      .map((session) => {
        const interceptor = (session as unknown as { interceptor: SessionInterceptor }).interceptor;
        return [session.info.id, session.info.applicationName, interceptor.onClientMessage !== undefined, interceptor.onServerMessage !== undefined];
      })
      .sort();
  t.match(hooks(), [
    [/\d/, '', false, false],
    [/\d/, 'idler', true, true],
  ]);
  // SET application_name re-reads the rules: the idle limit now applies to this session.
  await plain.query("SET application_name = 'idler'");
  t.match(hooks(), [
    [/\d/, 'idler', true, true],
    [/\d/, 'idler', true, true],
  ]);
  const failed = nextError(plain);
  await plain.query('BEGIN');
  t.match(await failed, { code: '25P03' });
});

t.test('a reload: requests under way keep their rule, including in sessions that had no hooks', async (t) => {
  const original = proxy.app.options.config.policies;
  t.teardown(() => proxy.app.reloadPolicies(original));
  const before = await proxy.client({ application_name: 'later' });
  t.teardown(() => before.end());
  await before.query('SELECT 1');
  const reloaded = buildConfig({ policies: { rules: [{ name: 'later', match: { application_name: 'later' }, mode: 'read-only' }] } }, {}, {});
  proxy.app.reloadPolicies(reloaded.policies);
  await before.query("INSERT INTO items (name) VALUES ('the request under way keeps autocommit')");
  const after = await proxy.client({ application_name: 'later' });
  t.teardown(() => after.end());
  await t.rejects(after.query("INSERT INTO items (name) VALUES ('refused')"), { code: '25006' }, 'a new request gets the new rule');
  t.equal(await count(), 1);
});
