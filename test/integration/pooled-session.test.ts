/**
 * Pooled client sessions (`pool.mode: session`): txproxy logs clients in
 * itself, lends them a server connection of the pool and takes it back when
 * they leave. Real PostgreSQL, real node-postgres clients and raw sockets.
 */
import net from 'node:net';
import t from 'tap';
import pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import type { PoolSnapshot } from '../../src/pool/pool-snapshot.js';
import { cancelRequest } from '../../src/protocol/encode.js';
import { startPostgres } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { errorFieldsOf, messageWithLength, RawConnection, startupMessage } from '../helpers/raw-connection.js';
import { serialize } from '../helpers/messages.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();

/** node-postgres keeps BackendKeyData on the client without typing it. */
function backendKey(client: pg.Client): { pid: number; secret: number } {
  const c = client as unknown as { processID: number; secretKey: number };
  return { pid: c.processID, secret: c.secretKey };
}

const proxy = await startProxy(
  postgres,
  { pool: { mode: 'session', default_pool_size: 2 }, auth: { type: 'scram-sha-256' } },
  { app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

function pool(): PoolSnapshot {
  const pools = proxy.app.pools!.manager.snapshot();
  if (pools.length !== 1) throw new Error(`expected one pool, found ${pools.length}`);
  return pools[0];
}

/** Waits until no server connection is lent or being reset, and `n` are idle. */
async function idleLinks(n: number): Promise<void> {
  await eventually(() => {
    const { servers } = pool();
    return servers.idle + servers.used === n && servers.active === 0 && servers.tested === 0;
  }, 5000, `${n} idle server connections`);
}

function backendPids(): number[] {
  return pool().links.map((link) => link.backend_pid);
}

t.test('sequential clients share one server connection, each with its own session state', async (t) => {
  const pids = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const client = await proxy.client({ application_name: `client-${i}` });
    const { rows } = await client.query("SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app, current_setting('statement_timeout') AS timeout");
    pids.add(rows[0].pid);
    t.equal(rows[0].app, `client-${i}`, 'the startup parameters of this client apply');
    t.equal(rows[0].timeout, '0', 'what the previous client SET is gone');
    t.equal(backendKey(client).pid, rows[0].pid, 'BackendKeyData carries the real backend pid');
    await client.query("SET statement_timeout = '5s'");
    await client.end();
    await idleLinks(1);
  }
  t.equal(pids.size, 1, 'one backend served all twenty clients');
  t.same(backendPids(), [...pids]);
});

t.test('startup parameters and options reach a reused connection as a fresh backend would take them', async (t) => {
  const settings = { options: '-c search_path=a,public -c work_mem=7MB --geqo-threshold=9 -c application_name=with\\ space', statement_timeout: 1234 } as pg.ClientConfig;
  const query = "SELECT current_setting('search_path') AS sp, current_setting('work_mem') AS wm, current_setting('geqo_threshold') AS gt, current_setting('statement_timeout') AS st, current_setting('application_name') AS app";
  const direct = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: 'postgres', ...settings });
  await direct.connect();
  t.teardown(() => direct.end());
  const expected = (await direct.query(query)).rows[0];
  t.same(expected, { sp: 'a,public', wm: '7MB', gt: '9', st: '1234ms', app: 'with space' });
  await idleLinks(1);
  const client = await proxy.client(settings);
  t.teardown(() => client.end());
  t.same((await client.query(query)).rows[0], expected, 'the same settings as PostgreSQL gives directly');
});

t.test('a bad startup parameter gets the server error, fatal, as at startup', async (t) => {
  const client = new pg.Client(proxy.connection({ options: '-c work_mem=lots' } as pg.ClientConfig));
  const err = await client.connect().then(
    () => null,
    (e: Error & { code?: string; severity?: string }) => e,
  );
  t.equal(err?.code, '22023');
  t.equal(err?.severity, 'FATAL');
  t.match(err?.message, /work_mem/);
});

t.test('a wrong password and an unknown user get the same 28P01', async (t) => {
  for (const config of [proxy.connection({ password: 'wrong' }), proxy.connection({ user: 'nobody' })]) {
    const client = new pg.Client(config);
    const err = await client.connect().then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    t.equal(err?.code, '28P01');
    t.match(err?.message, /^password authentication failed for user "/);
  }
});

t.test('a client that leaves inside a transaction does not hand it on', async (t) => {
  await idleLinks(1);
  const a = await proxy.client();
  a.on('error', () => undefined);
  await a.query('CREATE TABLE IF NOT EXISTS pooled_left (id int)');
  await a.query('BEGIN');
  await a.query('INSERT INTO pooled_left VALUES (1)');
  const pidA = backendKey(a).pid;
  (a as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
  await eventually(() => !backendPids().includes(pidA), 5000, 'the connection closed');
  const b = await proxy.client();
  t.teardown(() => b.end());
  const { rows } = await b.query('SELECT pg_backend_pid() AS pid, (SELECT count(*)::int FROM pooled_left) AS n');
  t.not(rows[0].pid, pidA, 'another backend');
  t.equal(rows[0].n, 0, 'the open transaction was rolled back');
});

t.test('a cancel reaches the backend the client holds, with the server its own key', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const sleeping = client.query('SELECT pg_sleep(30)').then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  await eventually(async () => (await postgres.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")).rows[0].n === 1);
  const key = Buffer.alloc(4);
  key.writeInt32BE(backendKey(client).secret);
  const socket = net.connect(proxy.port, '127.0.0.1');
  socket.end(cancelRequest(backendKey(client).pid, key));
  const err = await sleeping;
  t.equal(err?.code, '57014', 'query_canceled');
});

t.test('a pooled session is traced like any other', async (t) => {
  const before = proxy.transactions.length;
  const client = await proxy.client();
  await client.query('SELECT 1');
  await client.end();
  await eventually(() => proxy.transactions.length > before);
  t.equal(proxy.transactions.at(-1)?.outcome, 'commit');
});

t.test('a query pipelined behind the SCRAM client-final message runs once the session is ready, traced', async (t) => {
  await postgres.sql('CREATE TABLE IF NOT EXISTS pooled_pipelined (id int)');
  const before = proxy.transactions.length;
  const client = await RawClient.connect({
    port: proxy.port,
    user: postgres.user,
    password: postgres.password,
    pipelined: serialize.query('INSERT INTO pooled_pipelined VALUES (42)'),
  });
  t.teardown(() => client.close());
  const answers = await client.readyForQuery();
  t.same(
    answers.map((m) => m.type),
    ['C', 'Z'],
  );
  await eventually(() => proxy.transactions.length > before);
  t.match(proxy.transactions.at(-1), { outcome: 'commit', writes: 1 });
  t.equal((await postgres.sql('SELECT count(*)::int AS n FROM pooled_pipelined WHERE id = 42')).rows[0].n, 1);
});

t.test('during the login only password messages, and none over 65535 bytes, as PostgreSQL', async (t) => {
  const query = await RawConnection.connect(proxy.port);
  query.write(startupMessage({ user: postgres.user, database: 'postgres' }));
  t.equal((await query.readMessage()).type, 'R');
  query.write(serialize.query('SELECT 1'));
  const refused = await query.readMessage();
  t.equal(refused.type, 'E');
  t.match(errorFieldsOf(refused), { severity: 'FATAL', code: '08P01', message: 'expected password response, got message type 81' });
  await query.closed;

  const huge = await RawConnection.connect(proxy.port);
  huge.write(startupMessage({ user: postgres.user, database: 'postgres' }));
  t.equal((await huge.readMessage()).type, 'R');
  huge.write(messageWithLength('p', 1 << 30));
  const tooLong = await huge.readMessage();
  t.match(errorFieldsOf(tooLong), { severity: 'FATAL', code: '08P01' });
  await huge.closed;
});
