import t from 'tap';
import pg from 'pg';
import pino from 'pino';
import { LOCK_MONITOR_APPLICATION_NAME, type LockMonitor } from '../../src/locks/lock-monitor.js';
import type { Session } from '../../src/proxy/session.js';
import { getJson, Scrape } from '../helpers/admin.js';
import { metricValue } from '../helpers/metrics.js';
import { startPostgres } from '../helpers/postgres.js';
import { render } from '../unit/trace-render/fixtures.js';
import { eventually, startProxy, type TestProxy } from '../helpers/proxy.js';

const THRESHOLD_MS = 200;
const INTERVAL_MS = 100;

const postgres = await startPostgres();
await postgres.sql('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
await postgres.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g");
const proxy = await startProxy(postgres, { lock_monitor: { threshold: THRESHOLD_MS, interval: INTERVAL_MS } });
const monitor = proxy.app.lockMonitor as LockMonitor;
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

t.beforeEach(() => {
  proxy.statements.length = 0;
  proxy.transactions.length = 0;
  proxy.trace.records.length = 0;
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function pidOf(client: pg.Client): Promise<number> {
  return (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
}

function sessionOf(p: TestProxy, pid: number): Session {
  const session = [...p.app.server.sessions].find((s) => s.info.backendPid === pid);
  if (session === undefined) throw new Error(`no session for backend ${pid}`);
  return session;
}

const lockWaits = (p: TestProxy) => p.trace.records.filter((r) => r.kind === 'lock_wait');

/** The lock monitors' own backends on the server. */
async function sideBackends(): Promise<{ pid: number; query_start: Date; query: string }[]> {
  return (await postgres.sql('SELECT pid, query_start, query FROM pg_stat_activity WHERE application_name = $1', [LOCK_MONITOR_APPLICATION_NAME])).rows;
}
const registry = proxy.app.registry;

t.test('a SELECT FOR UPDATE waiting on another txproxy session: one wait, timed and attributed', async (t) => {
  const holder = await proxy.client({ application_name: 'holder' });
  const waiter = await proxy.client({ application_name: 'waiter' });
  t.teardown(async () => {
    await holder.end();
    await waiter.end();
  });
  const holderSession = sessionOf(proxy, await pidOf(holder));
  const waiterSession = sessionOf(proxy, await pidOf(waiter));
  const waitsBefore = await metricValue(registry, 'txproxy_lock_waits_total', { database: 'postgres', lock_type: 'transactionid' });
  const histogramBefore = await metricValue(registry, 'txproxy_lock_wait_seconds_count');

  // psycopg sends BEGIN itself, untagged; the application's statements carry the route.
  await holder.query('BEGIN');
  await holder.query("SELECT name FROM items WHERE id = 1 FOR UPDATE /*route='%2Fcheckout',controller='orders'*/");
  const holderTx = holderSession.tracker.transaction!.id;
  await waiter.query('BEGIN');
  const sent = Date.now();
  const waited = waiter.query('SELECT name FROM items WHERE id = 1 FOR UPDATE');

  // While it waits, the admin view and the gauge show it.
  await eventually(() => monitor.lockWaitOf(waiterSession.info.id) !== null, 3000, 'the wait to be sampled');
  const view = monitor.lockWaitOf(waiterSession.info.id)!;
  t.match(view, { lockType: 'transactionid', mode: 'ShareLock', relation: 'public.items' });
  t.same(view.blockedBy, [{ pid: holderSession.info.backendPid, sessionId: holderSession.info.id, transactionId: holderTx, route: '/checkout' }]);
  t.ok(Date.parse(view.since) >= sent - 5 && Date.parse(view.since) <= Date.now(), 'the wait began after the statement was sent');
  t.equal(await metricValue(registry, 'txproxy_lock_waiting_sessions'), 1);
  t.equal(monitor.lockWaitOf(holderSession.info.id), null, 'the holder waits for nothing');

  await sleep(Math.max(0, sent + 1000 - Date.now()));
  await holder.query('COMMIT');
  const result = await waited;
  const answered = Date.now();
  await waiter.query('COMMIT');
  t.same(result.rows, [{ name: 'item 1' }]);
  await proxy.waitForTransactions(2);

  const records = lockWaits(proxy);
  t.equal(records.length, 1, 'exactly one lock wait');
  const record = records[0];
  const realWait = answered - sent;
  const duration = record.duration_ms as number;
  t.ok(duration <= realWait + 5, `the wait (${duration} ms) is not longer than the client waited (${realWait} ms)`);
  t.ok(duration >= realWait - INTERVAL_MS, `the wait (${duration} ms) is within the sampler's resolution of ${realWait} ms`);
  t.ok(duration >= 900, 'the wait lasted until the holder committed');
  const statement = proxy.statements.find((s) => s.sessionId === waiterSession.info.id && s.text.includes('FOR UPDATE'))!;
  t.match(record, {
    kind: 'lock_wait',
    'session.id': waiterSession.info.id,
    'transaction.id': statement.transactionId,
    'statement.seq': statement.seq,
    'db.namespace': 'postgres',
    'pg.backend_pid': waiterSession.info.backendPid,
    'db.query.text': 'SELECT name FROM items WHERE id = 1 FOR UPDATE',
    'lock.type': 'transactionid',
    'lock.mode': 'ShareLock',
    'lock.relation': 'public.items',
  });
  t.ok(Math.abs(Date.parse(record.end as string) - Date.parse(record.time as string) - duration) <= 1, 'end - time = duration');
  t.same(record.blocked_by, [
    {
      'pg.backend_pid': holderSession.info.backendPid,
      'session.id': holderSession.info.id,
      'transaction.id': holderTx,
      'http.route': '/checkout',
      statements: [
        { seq: 2, text: 'BEGIN' },
        { seq: 3, text: 'SELECT name FROM items WHERE id = 1 FOR UPDATE' },
      ],
      'application.name': 'holder',
      state: 'idle in transaction',
      query: null,
    },
  ]);

  // The wait is on the statement and its transaction, in memory and in the trace.
  t.ok(Math.abs(statement.lockWaitMs - duration) < 0.001, 'the statement carries the wait');
  const statementRecord = proxy.trace.records.find((r) => r.kind === 'statement' && r['statement.seq'] === statement.seq && r['session.id'] === waiterSession.info.id);
  t.equal(statementRecord?.['pg.lock_wait_ms'], duration);
  const waiterTx = proxy.transactions.find((x) => x.id === statement.transactionId)!;
  t.ok(Math.abs(waiterTx.lockWaitMs - duration) < 0.001, 'the transaction carries the wait');
  const txRecord = proxy.trace.records.find((r) => r.kind === 'transaction' && r['transaction.id'] === waiterTx.id);
  t.equal(txRecord?.lock_wait_ms, duration);
  const holderTxRecord = proxy.trace.records.find((r) => r.kind === 'transaction' && r['transaction.id'] === holderTx);
  t.ok(holderTxRecord !== undefined && !('lock_wait_ms' in holderTxRecord), 'the holder did not wait');

  t.equal((await metricValue(registry, 'txproxy_lock_waits_total', { database: 'postgres', lock_type: 'transactionid' })) - waitsBefore, 1);
  t.equal((await metricValue(registry, 'txproxy_lock_wait_seconds_count')) - histogramBefore, 1);
  t.equal(await metricValue(registry, 'txproxy_lock_waiting_sessions'), 0);
  t.equal(monitor.lockWaitOf(waiterSession.info.id), null, 'no longer waiting');

  // txproxy trace shows the wait under the waiting statement, with who blocked it.
  const { text, problems } = render(proxy.trace.records);
  t.same(problems, []);
  const expected = [
    'SELECT name FROM items WHERE id = 1 FOR UPDATE',
    'LOCK WAIT ',
    ' for ShareLock on transactionid of public.items, blocked by:',
    `pid ${holderSession.info.backendPid} · session ${holderSession.info.id} · tx ${holderTx} · route /checkout`,
    '#2 BEGIN',
    '#3 SELECT name FROM items WHERE id = 1 FOR UPDATE',
  ];
  let at = text.indexOf(`tx ${statement.transactionId} `);
  for (const piece of expected) {
    const found = text.indexOf(piece, at);
    t.ok(found > at, `the transcript shows ${JSON.stringify(piece)} in order`);
    at = found;
  }
});

t.test('a blocker outside txproxy is described from pg_stat_activity', async (t) => {
  const outside = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: 'postgres', application_name: 'nightly-report' });
  await outside.connect();
  const waiter = await proxy.client();
  t.teardown(async () => {
    await outside.end();
    await waiter.end();
  });
  const outsidePid = await pidOf(outside);
  const waiterSession = sessionOf(proxy, await pidOf(waiter));
  await outside.query('BEGIN');
  await outside.query('UPDATE items SET name = $1 WHERE id = 2', ['renamed']);
  // Autocommit: the wait is in an implicit transaction.
  const waited = waiter.query('SELECT name FROM items WHERE id = 2 FOR UPDATE');
  await eventually(() => monitor.lockWaitOf(waiterSession.info.id) !== null, 3000, 'the wait to be sampled');
  t.same(monitor.lockWaitOf(waiterSession.info.id)?.blockedBy, [{ pid: outsidePid, sessionId: null, transactionId: null, route: null }]);
  await sleep(2 * INTERVAL_MS);
  await outside.query('COMMIT');
  t.same((await waited).rows, [{ name: 'renamed' }]);
  await proxy.waitForTransactions(2);

  const records = lockWaits(proxy);
  t.equal(records.length, 1);
  t.match(records[0], { 'session.id': waiterSession.info.id, 'lock.type': 'transactionid', 'lock.relation': 'public.items' });
  t.same(records[0].blocked_by, [
    {
      'pg.backend_pid': outsidePid,
      'session.id': null,
      'transaction.id': null,
      'http.route': null,
      statements: null,
      'application.name': 'nightly-report',
      state: 'idle in transaction',
      query: 'UPDATE items SET name = $1 WHERE id = 2',
    },
  ]);
  const statement = proxy.statements.find((s) => s.sessionId === waiterSession.info.id && s.text.includes('FOR UPDATE'))!;
  const tx = proxy.transactions.find((x) => x.id === statement.transactionId)!;
  t.equal(tx.implicit, true);
  t.ok(Math.abs(tx.lockWaitMs - (records[0].duration_ms as number)) < 0.001, 'the implicit transaction carries the wait');
  t.ok(tx.lockWaitMs >= 2 * INTERVAL_MS);
});

t.test('a wait on a table lock names the relation and the lock mode', async (t) => {
  const holder = await proxy.client();
  const waiter = await proxy.client();
  t.teardown(async () => {
    await holder.end();
    await waiter.end();
  });
  const waiterSession = sessionOf(proxy, await pidOf(waiter));
  await holder.query('BEGIN');
  await holder.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
  const waited = waiter.query('SELECT count(*)::int AS n FROM items');
  await eventually(() => monitor.lockWaitOf(waiterSession.info.id) !== null, 3000, 'the wait to be sampled');
  await holder.query('ROLLBACK');
  t.same((await waited).rows, [{ n: 10 }]);
  await proxy.waitForTransactions(2);
  const records = lockWaits(proxy);
  t.equal(records.length, 1);
  t.match(records[0], { 'lock.type': 'relation', 'lock.mode': 'AccessShareLock', 'lock.relation': 'public.items' });
  t.match(records[0].blocked_by, [{ statements: [{ text: 'BEGIN' }, { text: 'LOCK TABLE items IN ACCESS EXCLUSIVE MODE' }] }]);
});

t.test('no sampler query while every statement finishes under the threshold', async (t) => {
  // A txproxy of its own: its monitor has never had a reason to query.
  const quiet = await startProxy(postgres, { lock_monitor: { threshold: 1000, interval: 20 } });
  t.teardown(() => quiet.stop());
  const queries = () => metricValue(quiet.app.registry, 'txproxy_lock_monitor_queries_total');
  const others = new Set((await sideBackends()).map((r) => r.pid));
  const mine = async () => (await sideBackends()).filter((r) => !others.has(r.pid));

  const a = await quiet.client();
  const b = await quiet.client();
  t.teardown(async () => {
    await a.end();
    await b.end();
  });
  // Many short statements, statements longer than many intervals but under
  // the threshold, a short lock wait, and a transaction idle for long.
  const until = Date.now() + 1000;
  while (Date.now() < until) await a.query('SELECT 1');
  await a.query('SELECT pg_sleep(0.3)');
  await a.query('BEGIN');
  await a.query('SELECT name FROM items WHERE id = 3 FOR UPDATE');
  const waited = b.query('SELECT name FROM items WHERE id = 3 FOR UPDATE');
  await sleep(150);
  await a.query('COMMIT');
  await waited;
  await a.query('BEGIN');
  await a.query('SELECT 1');
  await sleep(1200);
  await a.query('COMMIT');

  t.equal(await queries(), 0, 'the monitor ran no query');
  t.same(await mine(), [], 'the monitor never even connected');

  // The positive control: a statement past the threshold is sampled, and
  // since it waits for no lock, pg_blocking_pids and pg_locks are not read.
  await a.query('SELECT pg_sleep(1.5)');
  await eventually(async () => (await metricValue(quiet.app.registry, 'txproxy_lock_monitor_queries_total', { query: 'activity' })) > 0, 5000, 'a sample');
  // A sample may still have been on its way when the statement finished.
  await sleep(300);
  t.equal(await metricValue(quiet.app.registry, 'txproxy_lock_monitor_queries_total', { query: 'waits' }), 0, 'no lock query for a statement that does not wait');
  t.ok((await metricValue(quiet.app.registry, 'txproxy_lock_monitor_query_seconds_count', { query: 'activity' })) > 0, 'the sampler timed its queries');
  const [side] = await mine();
  t.ok(side !== undefined, 'the side connection is open');
  t.match(side.query, /pg_stat_activity/);
  t.notMatch(side.query, /pg_blocking_pids/);

  // Short statements again: the count stands still, and so does the side
  // connection's last query on the server.
  const count = await queries();
  const until2 = Date.now() + 500;
  while (Date.now() < until2) await a.query('SELECT 1');
  t.equal(await queries(), count, 'no query once the long statement finished');
  const [after] = await mine();
  t.same(after.query_start, side.query_start, 'the server saw no query either');
});

t.test('lock_monitor.enabled: false starts no sampler and registers none of its metrics', async (t) => {
  const off = await startProxy(postgres, { lock_monitor: { enabled: false } });
  t.teardown(() => off.stop());
  t.equal(off.app.lockMonitor, null);
  t.equal(off.app.registry.getSingleMetric('txproxy_lock_waits_total'), undefined);
  t.ok(off.app.registry.getSingleMetric('txproxy_deadlocks_total'), 'deadlocks are still counted');
  const before = new Set((await sideBackends()).map((r) => r.pid));
  const client = await off.client();
  t.teardown(() => client.end());
  await client.query('SELECT pg_sleep(0.5)');
  t.same((await sideBackends()).filter((r) => !before.has(r.pid)), [], 'no side connection');
});

t.test('sslmode=prefer against a server without TLS: the side connection goes on in plain text', async (t) => {
  const before = new Set((await sideBackends()).map((r) => r.pid));
  const prefer = await startProxy(postgres, { lock_monitor: { threshold: 100, interval: 20 } }, { upstream: postgres.url });
  t.teardown(() => prefer.stop());
  const client = await prefer.client();
  t.teardown(() => client.end());
  await client.query('SELECT pg_sleep(0.6)');
  // Two connection attempts (TLS refused, then plain text) may outlast the statement on a busy machine.
  await eventually(async () => (await metricValue(prefer.app.registry, 'txproxy_lock_monitor_queries_total', { query: 'activity' })) > 0, 5000, 'a sample');
  t.equal((await sideBackends()).filter((r) => !before.has(r.pid)).length, 1, 'one side connection');
});

t.test('credentials the server refuses: no sampling, the proxy goes on', async (t) => {
  const target = new URL(postgres.url);
  target.password = 'not-the-password';
  target.searchParams.set('sslmode', 'disable');
  const logged: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line)) });
  const refused = await startProxy(postgres, { lock_monitor: { threshold: 50, interval: 20 } }, { upstream: target.toString(), log });
  t.teardown(() => refused.stop());
  // Clients bring their own credentials, which txproxy relays.
  const client = await refused.client();
  t.teardown(() => client.end());
  const result = await client.query('SELECT pg_sleep(0.3), 1 AS one');
  t.equal(result.rows[0].one, 1);
  await client.query('SELECT pg_sleep(0.3)');
  t.equal(await metricValue(refused.app.registry, 'txproxy_lock_monitor_queries_total'), 0, 'no query ran');
  t.equal(await metricValue(refused.app.registry, 'txproxy_lock_waiting_sessions'), 0);
  // One warning, not one per sample; the next attempt waits for the retry delay.
  const warnings = logged.filter((l) => l.msg === 'lock monitor cannot query the server');
  t.equal(warnings.length, 1);
  t.match(warnings[0], { level: 40, err: /password authentication failed/, retryMs: 5000 });
});

t.test('the admin API: /sessions shows a wait in progress, /metrics the lock metrics', async (t) => {
  const admin = await startProxy(postgres, { http: '127.0.0.1:0', lock_monitor: { threshold: 100, interval: 20 } });
  t.teardown(() => admin.stop());
  const port = admin.app.adminPort!;
  const holder = await admin.client({ application_name: 'admin-holder' });
  const waiter = await admin.client({ application_name: 'admin-waiter' });
  t.teardown(async () => {
    await holder.end();
    await waiter.end();
  });
  const holderSession = sessionOf(admin, await pidOf(holder));
  await holder.query('BEGIN');
  await holder.query('SELECT name FROM items WHERE id = 4 FOR UPDATE');
  const waited = waiter.query('SELECT name FROM items WHERE id = 4 FOR UPDATE');
  let shown: any = null;
  await eventually(
    async () => {
      const { json } = await getJson(port, '/sessions');
      shown = json.sessions.find((s: any) => s.application === 'admin-waiter')?.lockWait ?? null;
      return shown !== null;
    },
    3000,
    '/sessions to show the wait',
  );
  t.match(shown, { lockType: 'transactionid', mode: 'ShareLock', relation: 'public.items' });
  t.same(shown.blockedBy, [{ pid: holderSession.info.backendPid, sessionId: holderSession.info.id, transactionId: holderSession.tracker.transaction!.id, route: null }]);
  const during = await Scrape.of(port);
  t.equal(during.value('txproxy_lock_waiting_sessions'), 1);
  await holder.query('COMMIT');
  await waited;

  const { json } = await getJson(port, '/sessions');
  t.equal(json.sessions.find((s: any) => s.application === 'admin-waiter').lockWait, null, 'the wait is over');
  const after = await Scrape.of(port);
  t.equal(after.value('txproxy_lock_waits_total', { database: 'postgres', lock_type: 'transactionid' }), 1);
  t.equal(after.histogram('txproxy_lock_wait_seconds', { database: 'postgres' })?.count, 1);
  t.equal(after.value('txproxy_lock_waiting_sessions'), 0);
  t.ok(after.sum('txproxy_lock_monitor_queries_total', { query: 'waits' }) >= 1);
  t.equal(after.family('txproxy_deadlocks_total')?.type, 'COUNTER');
});
