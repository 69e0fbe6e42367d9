/**
 * Transaction pooling, clients that vanish: one pinned to its server (a
 * temporary table, LISTEN, an advisory lock, a WITH HOLD cursor, SQL
 * PREPARE, SET ROLE, settings), one inside a transaction, one in the middle
 * of an extended-protocol batch, one waiting for a server. On a pool of one
 * server connection the next client sees none of what they left: no
 * temporary table, no channel, no open transaction, no lock, no cursor, no
 * prepared statement, the login role and default settings.
 */
import t, { type Test } from 'tap';
import type pg from 'pg';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { allLinksIdle, backendPid, directClient, onePool, pinCounts, pinnedClients, pinsSince, startTransactionProxy, startWaiting } from '../helpers/transaction-pool.js';

const postgres = await startPostgres();
const proxy = await startTransactionProxy(postgres, 1);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE ROLE tx_gone_other NOLOGIN');
await postgres.sql('CREATE TABLE tx_gone_rows (id int PRIMARY KEY, v int)');
await postgres.sql('INSERT INTO tx_gone_rows VALUES (1, 0)');

const defaults = await (async () => {
  const direct = await directClient(postgres);
  const { rows } = await direct.query("SELECT current_setting('work_mem') AS work_mem, current_setting('statement_timeout') AS statement_timeout");
  await direct.end();
  return rows[0] as { work_mem: string; statement_timeout: string };
})();

/** Everything of a session's state the next client could inherit, as that client sees it. */
const LEFT_OVER = `SELECT pg_backend_pid() AS pid,
  (SELECT count(*)::int FROM pg_listening_channels()) AS listening,
  (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory') AS advisory_locks,
  (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_objects,
  to_regclass('tx_gone_tmp') AS temp_table,
  (SELECT count(*)::int FROM pg_cursors) AS cursors,
  (SELECT count(*)::int FROM pg_prepared_statements) AS prepared,
  current_user::text AS current_user, session_user::text AS session_user,
  current_setting('work_mem') AS work_mem, current_setting('statement_timeout') AS statement_timeout,
  now() = statement_timestamp() AS fresh_transaction,
  (SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%') AS idle_in_transaction,
  (SELECT v FROM tx_gone_rows WHERE id = 1) AS v`;

function clean(pid: number): Record<string, unknown> {
  return {
    pid,
    listening: 0,
    advisory_locks: 0,
    temp_objects: 0,
    temp_table: null,
    cursors: 0,
    prepared: 0,
    current_user: postgres.user,
    session_user: postgres.user,
    work_mem: defaults.work_mem,
    statement_timeout: defaults.statement_timeout,
    fresh_transaction: true,
    idle_in_transaction: 0,
    v: 0,
  };
}

/** A client whose socket can be cut as a crashed process's would be. */
async function mortal(applicationName: string): Promise<pg.Client & { die(): void }> {
  const client = (await proxy.client({ application_name: applicationName })) as pg.Client & { die(): void };
  client.on('error', () => {});
  client.die = () => (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  return client;
}

function sessionCount(): number {
  return proxy.app.server.sessions.size;
}

t.test('a client that dies pinned (temporary table, LISTEN, lock, cursor, PREPARE, role, settings) leaves its server clean for the one waiting', async (t) => {
  await allLinksIdle(proxy);
  const before = await pinCounts(proxy);
  const a = await mortal('a');
  const b = await proxy.client({ application_name: 'b' });
  t.teardown(() => b.end());
  const pid = await backendPid(a);
  await a.query("SET work_mem = '17MB'; SET statement_timeout = '9s'");
  await a.query('CREATE TEMP TABLE tx_gone_tmp (x int); LISTEN tx_gone; SELECT pg_advisory_lock(5101)');
  await a.query('DECLARE tx_gone_c CURSOR WITH HOLD FOR SELECT 1; PREPARE tx_gone_p AS SELECT 1');
  await a.query('SET ROLE tx_gone_other');
  for (const reason of ['temp_table', 'listen', 'advisory_lock', 'hold_cursor', 'sql_prepare', 'role'] as const) await pinnedClients(proxy, reason, 1);
  const { result } = await startWaiting(proxy, () => b.query(LEFT_OVER));
  t.equal(onePool(proxy).clients.waiting, 1, 'B waits for the server A holds');
  a.die();
  t.same((await result).rows[0], clean(pid), 'B gets the same backend, reset, with nothing of A’s');
  t.same(await pinsSince(proxy, before), { taken: { temp_table: 1, listen: 1, advisory_lock: 1, hold_cursor: 1, sql_prepare: 1, role: 1 }, pinned: {} }, 'every pin counted once and gone with A');
  await allLinksIdle(proxy);
});

t.test('a client that dies pinned while nobody waits: the next client to come finds the server clean', async (t) => {
  await allLinksIdle(proxy);
  const before = await pinCounts(proxy);
  const a = await mortal('a');
  const pid = await backendPid(a);
  await a.query('CREATE TEMP TABLE tx_gone_tmp (x int); LISTEN tx_gone');
  await pinnedClients(proxy, 'listen', 1);
  a.die();
  await pinnedClients(proxy, 'listen', 0);
  await pinnedClients(proxy, 'temp_table', 0);
  await allLinksIdle(proxy);
  const c = await proxy.client({ application_name: 'c' });
  t.teardown(() => c.end());
  t.same((await c.query(LEFT_OVER)).rows[0], clean(pid));
  t.same(await pinsSince(proxy, before), { taken: { temp_table: 1, listen: 1 }, pinned: {} });
});

t.test('a client that dies inside a transaction: rolled back, its row lock gone, no transaction open for the next', async (t) => {
  await allLinksIdle(proxy);
  const before = await pinCounts(proxy);
  const a = await mortal('a');
  const b = await proxy.client({ application_name: 'b' });
  t.teardown(() => b.end());
  const pid = await backendPid(a);
  await a.query('BEGIN');
  await a.query('UPDATE tx_gone_rows SET v = 99 WHERE id = 1');
  await a.query("SET LOCAL work_mem = '19MB'");
  const { result } = await startWaiting(proxy, () => b.query(LEFT_OVER));
  a.die();
  const seen = (await result).rows[0];
  t.same({ ...seen, pid: 0 }, clean(0), 'B sees no change, no setting, no open transaction');
  t.not(seen.pid, pid, 'the server A left inside its transaction was closed, not handed on');
  await b.query("SET lock_timeout = '5s'");
  t.same((await b.query('UPDATE tx_gone_rows SET v = 0 WHERE id = 1 RETURNING v')).rows, [{ v: 0 }], 'A’s row lock is gone');
  await eventually(async () => (await postgres.sql('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n === 0, 10_000, 'A’s backend gone');
  t.same(await pinsSince(proxy, before), { taken: {}, pinned: {} });
  await allLinksIdle(proxy);
});

t.test('a client that dies pinned and inside a transaction: the next client finds neither', async (t) => {
  await allLinksIdle(proxy);
  const before = await pinCounts(proxy);
  const a = await mortal('a');
  await a.query('CREATE TEMP TABLE tx_gone_tmp (x int); SELECT pg_advisory_lock(5102)');
  await pinnedClients(proxy, 'advisory_lock', 1);
  await a.query('BEGIN');
  await a.query('UPDATE tx_gone_rows SET v = 98 WHERE id = 1; INSERT INTO tx_gone_tmp VALUES (1)');
  a.die();
  await pinnedClients(proxy, 'advisory_lock', 0);
  await allLinksIdle(proxy);
  const c = await proxy.client({ application_name: 'c' });
  t.teardown(() => c.end());
  const seen = (await c.query(LEFT_OVER)).rows[0];
  t.same({ ...seen, pid: 0 }, clean(0));
  t.same(await pinsSince(proxy, before), { taken: { temp_table: 1, advisory_lock: 1 }, pinned: {} });
});

t.test('a client that dies after SET, holding no server: the next client on that server has default settings', async (t) => {
  await allLinksIdle(proxy);
  const a = await mortal('a');
  const pid = await backendPid(a);
  await a.query("SET work_mem = '23MB'; SET statement_timeout = '7s'");
  await allLinksIdle(proxy);
  a.die();
  await eventually(() => sessionCount() === 0, 10_000, 'A’s session over');
  const c = await proxy.client({ application_name: 'c' });
  t.teardown(() => c.end());
  t.same((await c.query(LEFT_OVER)).rows[0], clean(pid));
});

t.test('a client that dies in the middle of an extended-protocol batch: no half-run statement, no prepared statement left', async (t) => {
  await allLinksIdle(proxy);
  const raw = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  await raw.query('SELECT pg_backend_pid()');
  raw.send(
    serialize.parse({ name: 'tx_gone_s', text: 'UPDATE tx_gone_rows SET v = $1 WHERE id = 1', types: [] }),
    serialize.bind({ portal: '', statement: 'tx_gone_s', values: ['97'] }),
    serialize.execute({ portal: '', rows: 0 }),
  );
  await eventually(() => onePool(proxy).servers.active === 1, 10_000, 'the batch holding the server');
  raw.socket.destroy();
  await allLinksIdle(proxy);
  const c = await proxy.client({ application_name: 'c' });
  t.teardown(() => c.end());
  const seen = (await c.query(LEFT_OVER)).rows[0];
  t.same({ ...seen, pid: 0 }, clean(0), 'the UPDATE never committed; nothing prepared is visible');
});

/** A pinned, B waiting behind it dies, C waits too: returns C's query and A. */
async function deathInTheQueue(t: Test): Promise<{ a: pg.Client; later: Promise<pg.QueryResult> }> {
  await allLinksIdle(proxy);
  const a = await proxy.client({ application_name: 'a' });
  const b = await mortal('b');
  const c = await proxy.client({ application_name: 'c' });
  t.teardown(async () => {
    await a.end();
    await c.end();
  });
  await a.query('LISTEN tx_gone_wait');
  await pinnedClients(proxy, 'listen', 1);
  const { result } = await startWaiting(proxy, () => b.query('SELECT 1'));
  void result.catch(() => {});
  const later = c.query(LEFT_OVER);
  void later.catch(() => {});
  await eventually(() => onePool(proxy).clients.waiting === 2, 10_000, 'B and C waiting');
  b.die();
  return { a, later };
}

t.test('a client that dies while waiting for a server: the next one in the queue is served, clean', async (t) => {
  const { a, later } = await deathInTheQueue(t);
  const pid = await backendPid(a);
  await a.query('UNLISTEN *');
  t.same({ ...(await later).rows[0], pid: 0 }, clean(0));
  t.not(pid, 0);
  await allLinksIdle(proxy);
});

t.test('a client that dies while waiting for a server leaves the queue at once', async (t) => {
  const { a, later } = await deathInTheQueue(t);
  await eventually(() => onePool(proxy).clients.waiting === 1, 10_000, 'C alone waiting');
  t.pass('B is out of the queue');
  await a.query('UNLISTEN *');
  await later;
  await allLinksIdle(proxy);
});
