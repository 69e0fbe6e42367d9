/**
 * Transaction pooling (`pool.mode: transaction`): clients share server
 * connections transaction by transaction, each keeping its own settings
 * and prepared statements; state that ties a client to its server pins it
 * there, visibly, or is refused (`pool.session_state: refuse`). Real
 * PostgreSQL, node-postgres clients.
 */
import t from 'tap';
import pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { serialize } from '../helpers/messages.js';
import { metricValue } from '../helpers/metrics.js';
import { RawClient } from '../helpers/raw-client.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy, type TestProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();

async function transactionPooling(pool: NonNullable<ConfigInput['pool']> = {}): Promise<TestProxy> {
  const proxy = await startProxy(
    postgres,
    { pool: { mode: 'transaction', default_pool_size: 1, ...pool }, auth: { type: 'scram-sha-256' } },
    { app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
  );
  t.teardown(() => proxy.stop());
  return proxy;
}

const proxy = await transactionPooling();
t.teardown(() => postgres.stop());

function activeLinks(p: TestProxy): number {
  return p.app.pools!.manager.snapshot()[0].servers.active;
}

t.test('two clients on a pool of one: one backend, each with its own settings and prepared statements', async (t) => {
  const a = await proxy.client({ application_name: 'a' });
  const b = await proxy.client({ application_name: 'b' });
  t.teardown(async () => {
    await a.end();
    await b.end();
  });
  const ra = await a.query("SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app");
  const rb = await b.query("SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app");
  t.equal(ra.rows[0].pid, rb.rows[0].pid, 'one server connection for both');
  t.equal(ra.rows[0].app, 'a');
  t.equal(rb.rows[0].app, 'b');
  await eventually(() => activeLinks(proxy) === 0, 5000, 'the link back in the pool between transactions');

  await a.query('SET statement_timeout = 1234');
  t.equal((await b.query('SHOW statement_timeout')).rows[0].statement_timeout, '0', "A's SET is not B's");
  t.equal((await a.query('SHOW statement_timeout')).rows[0].statement_timeout, '1234ms', 'A keeps its SET');

  const plusOne = { name: 'p1', text: 'SELECT $1::int + 1 AS x', values: [1] };
  t.equal((await a.query(plusOne)).rows[0].x, 2);
  t.equal((await b.query({ name: 'p1', text: 'SELECT $1::int * 10 AS x', values: [3] })).rows[0].x, 30, 'the same name, another statement');
  t.equal((await a.query({ ...plusOne, values: [5] })).rows[0].x, 6, "A's p1 is still A's");

  // While A's transaction is open, B waits for the one server connection.
  await a.query('BEGIN');
  const waiting = b.query('SELECT 42 AS x');
  await a.query('SELECT 1');
  t.equal(activeLinks(proxy), 1);
  await a.query('COMMIT');
  t.equal((await waiting).rows[0].x, 42, 'B ran once A committed');
});

t.test('a pin is counted, shown on the session and traced, and ends when the state is gone', async (t) => {
  const registry = proxy.app.registry;
  const before = await metricValue(registry, 'txproxy_pool_pins_total', { reason: 'listen' });
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('LISTEN events');
  // The server is asked what the statement left once its answer is on its way to the client.
  await eventually(() => [...proxy.app.server.sessions].some((s) => s.pinReasons.length > 0), 5000, 'the pin');
  const session = [...proxy.app.server.sessions].find((s) => s.pinReasons.length > 0)!;
  t.same(session.pinReasons, ['listen']);
  t.equal(await metricValue(registry, 'txproxy_pool_pinned_clients', { reason: 'listen' }), 1);
  t.equal(await metricValue(registry, 'txproxy_pool_pins_total', { reason: 'listen' }), before + 1);
  t.equal(activeLinks(proxy), 1, 'the listener keeps its server connection');
  t.match(proxy.trace.records.filter((r) => r.kind === 'pin').at(-1), { 'session.id': session.info.id, reasons: ['listen'], 'pg.backend_pid': session.backendPid });

  await client.query('UNLISTEN *');
  await eventually(() => session.pinReasons.length === 0, 5000, 'the unpin');
  t.equal(await metricValue(registry, 'txproxy_pool_pinned_clients', { reason: 'listen' }), 0);
  t.match(proxy.trace.records.filter((r) => r.kind === 'unpin').at(-1), { 'session.id': session.info.id, reasons: ['listen'] });
  await eventually(() => activeLinks(proxy) === 0, 5000, 'the link back in the pool');
});

t.test('pool.session_state: refuse answers 0A000 in the statement’s place, with what to do instead', async (t) => {
  const strict = await transactionPooling({ session_state: 'refuse' });
  const client = await strict.client();
  t.teardown(() => client.end());

  const listen = await client.query('LISTEN events').catch((err: pg.DatabaseError) => err);
  t.match(listen, { code: '0A000', message: /^LISTEN is not allowed in transaction pooling/, hint: /session-mode pool/ });
  const prepared = await client.query({ text: 'CREATE TEMP TABLE scratch (id int)', values: [] }).catch((err: pg.DatabaseError) => err);
  t.match(prepared, { code: '0A000', message: /^CREATE TABLE is not allowed/, hint: /ON COMMIT DROP/ }, 'refused at Parse in the extended protocol');
  const lock = await client.query('SELECT pg_advisory_lock(7)').catch((err: pg.DatabaseError) => err);
  t.match(lock, { code: '0A000', hint: /pg_advisory_xact_lock/ });

  // Inside a block the refusal fails the block, as a server error would.
  await client.query('BEGIN');
  await client.query('SET ROLE postgres').catch(() => {});
  const after = await client.query('SELECT 1').catch((err: pg.DatabaseError) => err);
  t.match(after, { code: '25P02' });
  await client.query('ROLLBACK');

  // What leaves nothing behind still runs.
  await client.query('BEGIN');
  await client.query('CREATE TEMP TABLE scratch (id int) ON COMMIT DROP');
  await client.query('SELECT pg_advisory_xact_lock(7)');
  await client.query('COMMIT');
  t.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
  t.same([...strict.app.server.sessions][0].pinReasons, [], 'nothing pinned');
});

t.test('a client that SETs and leaves at once does not leave its setting to the next client', async (t) => {
  const raw = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  // The SET and the goodbye in one write: the session ends before txproxy could read the setting back.
  raw.send(serialize.query("SET search_path = 'nowhere'"), serialize.end());
  raw.socket.end();
  await eventually(() => proxy.app.server.sessions.size === 0 && activeLinks(proxy) === 0, 5000, 'the session gone, its link back');
  const next = await proxy.client();
  t.teardown(() => next.end());
  t.equal((await next.query('SHOW search_path')).rows[0].search_path, '"$user", public');
});
