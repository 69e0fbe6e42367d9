/**
 * What one borrower leaves on a session-mode link is invisible to the next
 * (server_reset_query), a link left inside a transaction is closed rather
 * than handed on, max_db_connections holds across two users of one
 * database, and a failed login reaches waiting clients with the server's
 * own error and server_login_retry — all against a real PostgreSQL.
 */
import t from 'tap';
import { serverLinkConnector } from '../../src/pool/link-connector.js';
import { defaultPoolConfig, type PoolConfigInput } from '../../src/pool/pool-config.js';
import { PoolManager } from '../../src/pool/pool-manager.js';
import { parseUpstreamUrl } from '../../src/proxy/upstream.js';
import type { ServerLink } from '../../src/server-link/server-link.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { query, value } from '../helpers/link-client.js';

const server = await startPostgres();
t.teardown(() => server.stop());
const target = parseUpstreamUrl(`${server.url}?sslmode=disable`);
await server.sql("CREATE ROLE pool_bob LOGIN PASSWORD 'bob-secret'");
await server.sql('CREATE DATABASE pool_app');
await server.sql('GRANT ALL ON DATABASE pool_app TO pool_bob');

const PASSWORDS: Record<string, string> = { postgres: 'postgres', pool_bob: 'bob-secret' };

function manager(config: PoolConfigInput, t: { teardown(fn: () => unknown): void }) {
  const pools = new PoolManager({
    config: defaultPoolConfig(config),
    connect: serverLinkConnector({ target, credentials: ({ user }) => ({ kind: 'password', password: PASSWORDS[user] }) }),
  });
  t.teardown(() => pools.close({ force: true }));
  return pools;
}

async function ok(link: Parameters<typeof query>[0], sql: string): Promise<void> {
  const answer = await query(link, sql);
  if (answer.error !== null) throw new Error(`${sql}: ${answer.error.message}`);
}

t.test('session state one borrower leaves is gone for the next (DISCARD ALL)', async (t) => {
  const pools = manager({ default_pool_size: 1 }, t);
  const first = await pools.acquire('postgres', 'postgres');
  const pid = await value(first, 'SELECT pg_backend_pid()');
  await ok(first, "SET work_mem = '7MB'");
  await ok(first, 'CREATE TEMP TABLE left_behind (x int)');
  await ok(first, 'PREPARE left_plan AS SELECT 1');
  await ok(first, 'LISTEN left_channel');
  await ok(first, 'SELECT pg_advisory_lock(4242)');
  await ok(first, 'BEGIN; DECLARE left_cursor CURSOR WITH HOLD FOR SELECT 1; COMMIT');
  t.equal(await value(first, 'SELECT count(*) FROM pg_cursors'), '1', 'the first borrower has its cursor');
  await pools.release(first, { status: 'I' });

  const second = await pools.acquire('postgres', 'postgres');
  t.equal(await value(second, 'SELECT pg_backend_pid()'), pid, 'the same backend');
  t.equal(await value(second, 'SHOW work_mem'), '4MB', 'SET is reset');
  t.equal(await value(second, "SELECT count(*) FROM pg_class WHERE relname = 'left_behind' AND relpersistence = 't'"), '0', 'the temp table is gone');
  t.equal(await value(second, 'SELECT count(*) FROM pg_prepared_statements'), '0', 'the prepared statement is gone');
  t.equal(await value(second, 'SELECT count(*) FROM pg_listening_channels()'), '0', 'LISTEN is undone');
  t.equal(await value(second, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"), '0', 'the advisory lock is released');
  t.equal(await value(second, 'SELECT count(*) FROM pg_cursors'), '0', 'the WITH HOLD cursor is closed');
  // And another session can take the lock the first borrower held.
  t.equal((await server.sql('SELECT pg_try_advisory_lock(4242) AS got')).rows[0].got, true);
  await pools.release(second);
});

t.test('a link given back inside a transaction is closed, and its transaction rolled back', async (t) => {
  const pools = manager({ default_pool_size: 1 }, t);
  await server.sql('CREATE TABLE IF NOT EXISTS pool_dirty (x int)');
  const link = await pools.acquire('postgres', 'postgres');
  const pid = Number(await value(link, 'SELECT pg_backend_pid()'));
  const answer = await query(link, 'BEGIN; INSERT INTO pool_dirty VALUES (1)');
  t.equal(answer.status, 'T');
  await pools.release(link, { status: answer.status });
  t.ok(link.closed, 'closed, not handed on');
  // The lent link's socket was left paused by its borrower: closing it still ends the socket, none is left half-open.
  await eventually(() => (link as ServerLink).socket.destroyed, 5000, 'the socket to close');
  await eventually(async () => (await server.sql('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n === 0, 5000, 'the backend to exit');
  t.equal((await server.sql('SELECT count(*)::int AS n FROM pool_dirty')).rows[0].n, 0, 'the insert was rolled back');
  const next = await pools.acquire('postgres', 'postgres');
  t.equal((await query(next, 'SELECT 1')).status, 'I', 'the next borrower starts outside any transaction');
  await pools.release(next);
});

t.test('max_db_connections holds across two users of one database', async (t) => {
  const pools = manager({ default_pool_size: 5, max_db_connections: 2 }, t);
  const backendsOfApp = async () => (await server.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'pool_app'")).rows[0].n as number;
  const alice = await Promise.all([pools.acquire('pool_app', 'postgres'), pools.acquire('pool_app', 'postgres')]);
  const bobWaits = pools.acquire('pool_app', 'pool_bob');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(pools.snapshot().find((p) => p.user === 'pool_bob')?.clients.waiting, 1, 'bob waits');
  t.equal(await backendsOfApp(), 2, 'two backends for the database');
  await pools.release(alice[0]);
  const bob = await bobWaits;
  t.equal(await value(bob, 'SELECT current_user'), 'pool_bob', "bob got a link of his own once one of alice's was freed");
  await eventually(async () => (await backendsOfApp()) === 2, 5000, 'still two backends');
  t.equal(pools.snapshot().reduce((n, p) => n + p.servers.active + p.servers.idle + p.servers.login + p.servers.tested + p.servers.used, 0), 2);
  await pools.release(bob);
  await pools.release(alice[1]);
});

t.test('a failed login: the server error to waiting clients, refused at once until server_login_retry, then tried again', async (t) => {
  let password = 'wrong';
  const pools = new PoolManager({
    config: defaultPoolConfig({ server_login_retry: '1s' }),
    connect: serverLinkConnector({ target, credentials: () => ({ kind: 'password', password }) }),
  });
  t.teardown(() => pools.close({ force: true }));
  const waiting = await Promise.all([1, 2].map(() => pools.acquire('postgres', 'pool_bob').catch((e: unknown) => e)));
  for (const err of waiting) {
    t.match(err, { report: { severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "pool_bob"', detail: /server_login_retry/ } });
  }
  password = 'bob-secret';
  t.match(await pools.acquire('postgres', 'pool_bob').catch((e: unknown) => e), { report: { code: '28P01' } }, 'refused at once within server_login_retry');
  await new Promise((r) => setTimeout(r, 1100));
  const link = await pools.acquire('postgres', 'pool_bob');
  t.equal(await value(link, 'SELECT current_user'), 'pool_bob', 'logged in after server_login_retry');
  await pools.release(link);

  const missing = await pools.acquire('no_such_db', 'pool_bob').catch((e: unknown) => e);
  t.match(missing, { report: { severity: 'FATAL', code: '3D000', message: 'database "no_such_db" does not exist' } }, 'the server error for a missing database');
});
