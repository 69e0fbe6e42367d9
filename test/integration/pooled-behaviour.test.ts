/**
 * Session pooling as clients live it, through the whole of txproxy against
 * a real PostgreSQL: how many backends 200 clients use, what one client
 * leaves and the next never sees, waiting for a server, a pooled backend
 * terminated while idle, databases dropped, copied and renamed while pooled
 * connections to them are idle, cancel with two clients on two backends,
 * an upstream that is down, a server reached with sslmode=prefer, and
 * clients that leave mid-COPY, inside a transaction or mid-statement.
 */
import net from 'node:net';
import t from 'tap';
import pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { freePort } from '../../src/embedded/embedded-postgres.js';
import { cancelRequest } from '../../src/protocol/encode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { startFaultHop } from '../helpers/fault-hop.js';
import { startPostgres } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { eventually, startProxy, type TestProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
const proxies: TestProxy[] = [];
t.teardown(async () => {
  for (const proxy of proxies) await proxy.stop();
  await postgres.stop();
});

async function pooledProxy(pool: NonNullable<ConfigInput['pool']>, upstream?: string): Promise<TestProxy> {
  const proxy = await startProxy(
    postgres,
    { pool: { mode: 'session', ...pool }, auth: { type: 'scram-sha-256' } },
    { upstream, app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
  );
  proxies.push(proxy);
  return proxy;
}

type PgError = Error & { code?: string; severity?: string; detail?: string };

function failure(promise: Promise<unknown>): Promise<PgError | null> {
  return promise.then(
    () => null,
    (err: PgError) => err,
  );
}

/** node-postgres keeps BackendKeyData on the client without typing it. */
function backendKey(client: pg.Client): { pid: number; secret: number } {
  const c = client as unknown as { processID: number; secretKey: number };
  return { pid: c.processID, secret: c.secretKey };
}

function sendCancel(proxy: TestProxy, client: pg.Client): void {
  const key = Buffer.alloc(4);
  key.writeInt32BE(backendKey(client).secret);
  net.connect(proxy.port, '127.0.0.1').end(cancelRequest(backendKey(client).pid, key));
}

/** Backends of the application (not txproxy's side connections, not this test's own). */
async function serverBackends(database = 'postgres'): Promise<number[]> {
  const { rows } = await postgres.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = $1 AND pid <> pg_backend_pid() ORDER BY pid", [database]);
  return rows.map((r) => r.pid as number);
}

/** Waits until the proxy's pools (of one database, or all) lend nothing and reset nothing. */
async function poolsAtRest(proxy: TestProxy, database?: string): Promise<void> {
  await eventually(
    () =>
      proxy.app.pools!.manager
        .snapshot()
        .filter((pool) => database === undefined || pool.database === database)
        .every((pool) => pool.servers.active === 0 && pool.servers.tested === 0 && pool.servers.login === 0),
    10_000,
    'the pools at rest',
  );
}

async function sleeping(): Promise<number[]> {
  const { rows } = await postgres.sql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%' AND state = 'active' ORDER BY pid");
  return rows.map((r) => r.pid as number);
}

t.test('200 sequential clients with default_pool_size 2 use at most 2 backends, and the trace names them', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 2 });
  const before = new Set(await serverBackends());
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const client = await proxy.client({ application_name: `seq-${i}` });
    const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
    seen.add(rows[0].pid);
    await client.end();
    if (i % 50 === 49) {
      const now = (await serverBackends()).filter((pid) => !before.has(pid));
      t.ok(now.length <= 2, `after ${i + 1} clients: ${now.length} backends on the server`);
    }
  }
  t.ok(seen.size <= 2, `clients saw ${seen.size} backend pids`);
  await poolsAtRest(proxy);
  const pooled = proxy.app.pools!.manager.snapshot().flatMap((pool) => pool.links.map((link) => link.backend_pid));
  t.same(new Set(pooled), seen, 'the pool holds exactly the backends the clients used');
  const statementRecords = () => proxy.trace.records.filter((r) => r.kind === 'statement');
  await eventually(() => statementRecords().length >= 200, 10_000, '200 statement records');
  const traced = new Set(statementRecords().map((r) => r['pg.backend_pid']));
  t.same(traced, seen, 'every statement record names the backend pid it ran on');
});

t.test('what client A leaves on a session is invisible to client B on the same server connection', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 1 });
  const a = await proxy.client();
  await a.query(`
    SET work_mem = '17MB';
    SELECT set_config('my.var', 'left by A', false);
    CREATE TEMP TABLE a_temp (id int);
    PREPARE a_stmt AS SELECT 1;
    LISTEN a_channel;
    SELECT pg_advisory_lock(4242);
    BEGIN;
    DECLARE a_cursor CURSOR WITH HOLD FOR SELECT generate_series(1, 3);
    COMMIT;
  `);
  await a.query({ name: 'a_protocol_stmt', text: 'SELECT $1::int AS n', values: [1] });
  const pidA = (await a.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  await a.end();
  await poolsAtRest(proxy);

  const b = await proxy.client();
  t.teardown(() => b.end());
  const { rows } = await b.query(`SELECT
      pg_backend_pid() AS pid,
      current_setting('work_mem') AS work_mem,
      current_setting('my.var', true) AS my_var,
      to_regclass('pg_temp.a_temp') AS temp_table,
      (SELECT count(*)::int FROM pg_prepared_statements) AS prepared,
      (SELECT count(*)::int FROM pg_listening_channels()) AS listening,
      (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
      (SELECT count(*)::int FROM pg_cursors) AS cursors`);
  t.equal(rows[0].pid, pidA, 'B runs on the server connection A used');
  // DISCARD ALL (RESET ALL) keeps a custom variable defined, empty, as PostgreSQL does within a session.
  t.ok(rows[0].my_var === null || rows[0].my_var === '', `my.var is unset (${rows[0].my_var})`);
  t.same({ ...rows[0], pid: undefined, my_var: undefined }, {
    pid: undefined,
    my_var: undefined,
    work_mem: '4MB',
    temp_table: null,
    prepared: 0,
    listening: 0,
    advisory_locks: 0,
    cursors: 0,
  });
  t.same((await b.query({ name: 'a_protocol_stmt', text: 'SELECT $1::int AS n', values: [2] })).rows, [{ n: 2 }], "B may prepare A's statement name again");
  const lock = await postgres.sql('SELECT pg_try_advisory_lock(4242) AS got');
  t.equal(lock.rows[0].got, true, "A's advisory lock is free for anyone");
});

t.test('query_wait_timeout reaches a waiting client as an ErrorResponse; the pool serves the next one', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 1, reserve_pool_size: 0, query_wait_timeout: 1000 });
  const holder = await proxy.client();
  const started = Date.now();
  const err = await failure(proxy.client());
  t.match(err, { code: '08P01', severity: 'FATAL', message: 'query_wait_timeout' });
  t.match(err?.detail, /within \d/);
  t.ok(Date.now() - started >= 900, 'after about query_wait_timeout');
  t.equal((await holder.query('SELECT 1 AS one')).rows[0].one, 1, 'the holder is unaffected');
  await holder.end();
  const next = await proxy.client();
  t.equal((await next.query('SELECT 2 AS two')).rows[0].two, 2);
  await next.end();
});

t.test('a pooled server connection terminated while idle is replaced without the next client noticing', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 1 });
  const first = await proxy.client();
  const pid = (await first.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  await first.end();
  await poolsAtRest(proxy);
  await postgres.sql('SELECT pg_terminate_backend($1)', [pid]);
  await eventually(async () => !(await serverBackends()).includes(pid), 5000, 'the backend gone');
  const next = await proxy.client();
  t.teardown(() => next.end());
  const { rows } = await next.query('SELECT pg_backend_pid() AS pid, 1 AS one');
  t.equal(rows[0].one, 1, 'the next client works at once');
  t.not(rows[0].pid, pid, 'on a new backend');
});

t.test('pg_terminate_backend with the pid from BackendKeyData ends that client only; the pool replaces the backend', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 2 });
  const [victim, killer] = await Promise.all([proxy.client(), proxy.client()]);
  t.teardown(() => killer.end());
  // node-postgres reports the server's FATAL, then the closed connection.
  const ended = new Promise<PgError>((resolve) => victim.on('error', resolve));
  const { rows } = await killer.query('SELECT pg_terminate_backend($1) AS done', [backendKey(victim).pid]);
  t.equal(rows[0].done, true, 'the pid the client was given is the real backend pid');
  t.match(await ended, { code: '57P01' }, 'the victim hears it from its server');
  t.equal((await killer.query('SELECT 1 AS one')).rows[0].one, 1, 'the other client is untouched');
  const next = await proxy.client();
  t.teardown(() => next.end());
  t.not(backendKey(next).pid, backendKey(victim).pid, 'the next client gets a new backend');
  t.equal((await next.query('SELECT 1 AS one')).rows[0].one, 1);
});

t.test('DROP DATABASE, CREATE DATABASE … TEMPLATE and ALTER DATABASE … RENAME succeed with idle pooled connections to them', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 2 });
  await postgres.sql('CREATE DATABASE pooled_src');
  // Two clients at once, so the pool of pooled_src keeps two idle connections.
  const users = await Promise.all([proxy.client({ database: 'pooled_src' }), proxy.client({ database: 'pooled_src' })]);
  await users[0].query('CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)');
  await Promise.all(users.map((c) => c.end()));
  await poolsAtRest(proxy);
  t.equal((await serverBackends('pooled_src')).length, 2, 'two idle pooled connections to pooled_src');

  const admin = await proxy.client();
  t.teardown(() => admin.end());
  await admin.query('CREATE DATABASE pooled_copy TEMPLATE pooled_src');
  const copy = await proxy.client({ database: 'pooled_copy' });
  t.same((await copy.query('SELECT id FROM kept')).rows, [{ id: 7 }], 'the copy holds the template data');
  await copy.end();
  await poolsAtRest(proxy, 'pooled_copy');
  await admin.query('ALTER DATABASE pooled_copy RENAME TO pooled_renamed');
  const renamed = await proxy.client({ database: 'pooled_renamed' });
  t.same((await renamed.query('SELECT id FROM kept')).rows, [{ id: 7 }]);
  await renamed.end();
  await poolsAtRest(proxy, 'pooled_renamed');
  await admin.query('DROP DATABASE pooled_renamed');
  await admin.query('DROP DATABASE pooled_src');
  const { rows } = await postgres.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pooled_%'");
  t.same(rows, [], 'all gone');
});

t.test('a database created after a client was refused for its absence is there for the next client at once', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 2 });
  const early = await failure(proxy.client({ database: 'pooled_later' }));
  t.match(early, { code: '3D000', severity: 'FATAL', message: 'database "pooled_later" does not exist' });
  await postgres.sql('CREATE DATABASE pooled_later');
  t.teardown(() => postgres.sql('DROP DATABASE pooled_later WITH (FORCE)'));
  const client = await proxy.client({ database: 'pooled_later' });
  t.equal((await client.query('SELECT current_database() AS db')).rows[0].db, 'pooled_later', 'as PostgreSQL would, not the stale refusal');
  await client.end();
});

t.test('a cancel reaches the right backend: two clients on two servers, only one cancelled', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 2 });
  const [a, b] = await Promise.all([proxy.client(), proxy.client()]);
  t.teardown(async () => {
    await a.end();
    await b.end();
  });
  t.not(backendKey(a).pid, backendKey(b).pid, 'two backends');
  const aRun = failure(a.query('SELECT pg_sleep(30)'));
  const bRun = failure(b.query('SELECT pg_sleep(30.5)'));
  await eventually(async () => (await sleeping()).length === 2, 10_000, 'both sleeping');
  sendCancel(proxy, a);
  t.match(await aRun, { code: '57014' }, 'A is cancelled');
  t.same(await sleeping(), [backendKey(b).pid], 'B still sleeps on its own backend');
  sendCancel(proxy, b);
  t.match(await bRun, { code: '57014' }, 'then B');
});

t.test('the upstream down: a clear FATAL naming it', async (t) => {
  const port = await freePort();
  const proxy = await pooledProxy({}, `postgres://${postgres.user}@127.0.0.1:${port}/postgres?sslmode=disable`);
  const err = await failure(proxy.client());
  t.equal(err?.severity, 'FATAL');
  t.equal(err?.code, '08001', 'sqlclient_unable_to_establish_sqlconnection, as without pooling');
  t.match(err?.message, `127.0.0.1:${port}`, 'names the server');
});

t.test('the upstream going down while a client holds a pooled connection: a new client gets the FATAL at once, not a wait', async (t) => {
  const hop = await startFaultHop(postgres);
  t.teardown(() => hop.close());
  const proxy = await pooledProxy({ default_pool_size: 5, query_wait_timeout: 60_000, server_login_retry: 500 }, hop.url(postgres.user, postgres.password));
  const holder = await proxy.client();
  t.teardown(() => holder.end());
  await hop.refuse();
  for (const attempt of ['first', 'during server_login_retry']) {
    const started = Date.now();
    const err = await failure(proxy.client());
    t.match(err, { code: '08001', severity: 'FATAL', message: `127.0.0.1:${hop.port}` }, attempt);
    t.ok(Date.now() - started < 10_000, `${attempt}: refused in ${Date.now() - started} ms, not after query_wait_timeout`);
  }
  t.equal((await holder.query('SELECT 1 AS one')).rows[0].one, 1, 'the holder goes on');
  await hop.accept();
  await eventually(async () => (await failure(proxy.client().then((c) => c.end()))) === null, 10_000, 'a new client served once the server is back');
});

t.test('a pooled server negotiating sslmode=prefer with a server without TLS logs in', async (t) => {
  const proxy = await pooledProxy({}, postgres.url);
  const client = await proxy.client();
  t.teardown(() => client.end());
  t.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
});

t.test('clients that leave mid-COPY or inside a transaction leave no dirty server for the next', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 1 });
  await postgres.sql('CREATE TABLE left_behind (id int)');

  // Mid-COPY: CopyData sent, the socket closed without CopyDone.
  const copying = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  copying.send(serialize.query('COPY left_behind FROM STDIN'));
  t.equal((await copying.next()).type, 'G', 'CopyInResponse');
  copying.send(serialize.copyData(Buffer.from('1\n2\n')));
  copying.socket.destroy();

  const afterCopy = await proxy.client();
  t.same((await afterCopy.query('SELECT count(*)::int AS n FROM left_behind')).rows, [{ n: 0 }], 'no rows of the abandoned COPY');
  t.equal((await afterCopy.query('SELECT 1 AS one')).rows[0].one, 1, 'the server connection is usable');
  await afterCopy.end();

  // Inside a transaction, leaving politely with Terminate.
  const inTx = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  await inTx.query('BEGIN');
  await inTx.query('INSERT INTO left_behind VALUES (3)');
  await inTx.close();
  const afterTx = await proxy.client();
  const state = await afterTx.query("SELECT count(*)::int AS n, now() = statement_timestamp() AS fresh_tx FROM left_behind");
  t.same(state.rows, [{ n: 0, fresh_tx: true }], 'the insert rolled back; the next client is not inside that transaction');
  await afterTx.end();
});

t.test('a client that leaves mid-statement: its statement is cancelled, not left running on the pooled server', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 1 });
  await postgres.sql('INSERT INTO left_behind VALUES (9)');
  const busy = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  await busy.query('BEGIN');
  await busy.query('UPDATE left_behind SET id = 10');
  busy.send(serialize.query('SELECT pg_sleep(60)'));
  await eventually(async () => (await sleeping()).length === 1, 10_000, 'the sleep running');
  busy.socket.destroy();
  await eventually(async () => (await sleeping()).length === 0, 10_000, 'the sleep ended');
  const afterBusy = await proxy.client();
  t.teardown(() => afterBusy.end());
  await afterBusy.query("SET lock_timeout = '5s'");
  t.same((await afterBusy.query('UPDATE left_behind SET id = 11 RETURNING id')).rows, [{ id: 11 }], 'its row lock is gone');
});

t.test('a statement pipelined ahead of Terminate still runs to its end, as PostgreSQL runs it', async (t) => {
  const proxy = await pooledProxy({ default_pool_size: 1 });
  await postgres.sql('CREATE TABLE pipelined_last (id int)');
  const client = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  const closed = new Promise((resolve) => client.socket.once('close', resolve));
  client.send(serialize.query('SELECT pg_sleep(0.5); INSERT INTO pipelined_last VALUES (1)'), serialize.end());
  client.socket.end();
  await closed;
  await eventually(async () => (await postgres.sql('SELECT count(*)::int AS n FROM pipelined_last')).rows[0].n === 1, 10_000, 'the insert committed');
  t.pass('not cancelled');
});
