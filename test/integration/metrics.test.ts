/**
 * `/metrics` after real workloads through txproxy, read with a Prometheus
 * text-format parser. Each test uses its own database, so its series are
 * its own.
 */
import t from 'tap';
import pg from 'pg';
import { Scrape } from '../helpers/admin.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres, { http: '127.0.0.1:0', metrics: { routes: ['/checkout'] } });
const adminPort = proxy.app.adminPort!;
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

/** Creates a database with one table `items`, directly (not through txproxy, so nothing is counted). */
async function createDatabase(name: string): Promise<void> {
  await postgres.sql(`CREATE DATABASE ${name}`);
  const client = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: name });
  await client.connect();
  await client.query('CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)');
  await client.query('INSERT INTO items (id) VALUES (0)');
  await client.end();
}

/** `command/outcome/route` → value, for the statements of one database. */
function statementCounts(scrape: Scrape, database: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of scrape.series('txproxy_statements_total', { database })) out[`${s.labels.command}/${s.labels.outcome}/${s.labels.route}`] = s.value;
  return out;
}

function transactionCounts(scrape: Scrape, database: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of scrape.series('txproxy_transactions_total', { database })) out[`${s.labels.outcome}/${s.labels.implicit}/${s.labels.route}`] = s.value;
  return out;
}

t.beforeEach(() => {
  proxy.transactions.length = 0;
});

t.test('a known workload gives exact counters and matching histograms', async (t) => {
  await createDatabase('workload');
  const before = await Scrape.of(adminPort);
  const client = await proxy.client({ database: 'workload' });
  for (let i = 1; i <= 3; i++) await client.query(`INSERT INTO items (id) VALUES (${i})`);
  for (let i = 4; i <= 5; i++) await client.query('INSERT INTO items (id) VALUES ($1)', [i]);
  await client.query('BEGIN');
  await client.query('INSERT INTO items (id) VALUES (6)');
  await client.query('SAVEPOINT sp');
  await client.query('INSERT INTO items (id) VALUES (7)');
  await client.query('ROLLBACK TO SAVEPOINT sp');
  await client.query('ROLLBACK');
  await t.rejects(client.query('SELECT * FROM no_such_table'), { code: '42P01' });
  await client.end();
  await proxy.waitForTransactions(7);

  const scrape = await Scrape.of(adminPort);
  t.equal(scrape.contentType, 'text/plain; version=0.0.4; charset=utf-8');

  t.same(statementCounts(scrape, 'workload'), {
    'INSERT/ok/none': 7,
    'BEGIN/ok/none': 1,
    'SAVEPOINT/ok/none': 1,
    'ROLLBACK TO SAVEPOINT/ok/none': 1,
    'ROLLBACK/ok/none': 1,
    'SELECT/error/none': 1,
  });
  t.same(transactionCounts(scrape, 'workload'), {
    'commit/true/none': 5,
    'rollback/false/none': 1,
    'failed/true/none': 1,
  });

  const durations: Record<string, number> = { INSERT: 7, BEGIN: 1, SAVEPOINT: 1, 'ROLLBACK TO SAVEPOINT': 1, ROLLBACK: 1, SELECT: 1 };
  t.equal(scrape.series('txproxy_statement_duration_seconds_count', { database: 'workload' }).length, Object.keys(durations).length);
  for (const [command, count] of Object.entries(durations)) {
    const h = scrape.histogram('txproxy_statement_duration_seconds', { database: 'workload', command });
    t.equal(h?.count, count, `${command} durations`);
    t.equal(h?.buckets.at(-1)?.[0], '+Inf');
    t.equal(h?.buckets.at(-1)?.[1], count, `${command}: the +Inf bucket holds every observation`);
    t.ok(h!.buckets.every(([, v], i, all) => i === 0 || v >= all[i - 1][1]), `${command}: buckets are cumulative`);
    t.ok(h!.sum > 0 && h!.sum < 30, `${command}: plausible sum of seconds`);
  }
  t.equal(scrape.histogram('txproxy_transaction_duration_seconds', { database: 'workload', implicit: 'true', route: 'none' })?.count, 6);
  t.equal(scrape.histogram('txproxy_transaction_duration_seconds', { database: 'workload', implicit: 'false', route: 'none' })?.count, 1);
  t.equal(scrape.histogram('txproxy_idle_in_transaction_seconds', { database: 'workload' })?.count, 1, 'one explicit transaction');

  const delta = (name: string, labels: Record<string, string>) => (scrape.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);
  t.equal(delta('txproxy_savepoints_total', { op: 'create' }), 1);
  t.equal(delta('txproxy_savepoints_total', { op: 'rollback_to' }), 1);
  t.equal(delta('txproxy_savepoints_total', { op: 'release' }), 0);

  t.same(
    scrape.series('txproxy_errors_total', { database: 'workload' }).map((s) => [s.labels.sqlstate, s.value]),
    [['42P01', 1]],
  );
  t.equal(scrape.value('txproxy_lock_not_available_total', { database: 'workload' }), 0);
  t.equal(scrape.value('txproxy_serialization_failures_total', { database: 'workload' }), 0);
  t.same(scrape.series('txproxy_transaction_retries_total', { database: 'workload' }), [], 'a 42P01 is no reason to retry');

  t.equal(scrape.family('txproxy_statements_total')?.type, 'COUNTER');
  t.equal(scrape.family('txproxy_statement_duration_seconds')?.type, 'HISTOGRAM');
  t.equal(scrape.family('txproxy_client_sessions')?.type, 'GAUGE');
  t.equal(scrape.family('process_cpu_user_seconds_total')?.type, 'COUNTER', 'process metrics are there');
  t.ok(scrape.family('nodejs_eventloop_lag_seconds'), 'event loop metrics are there');
});

t.test('routes: listed ones keep their label, others fold into `other`, untagged is `none`', async (t) => {
  await createDatabase('routes');
  const client = await proxy.client({ database: 'routes' });
  t.teardown(() => client.end());
  const tag = (route: string, trace: string) =>
    `/*route='${encodeURIComponent(route)}',traceparent='00-${trace.repeat(32)}-${'1'.repeat(16)}-01'*/`;
  await client.query('SELECT 1');
  await client.query(`SELECT 2 ${tag('/checkout', 'a')}`);
  await client.query(`SELECT 3 ${tag('/admin/secret', 'b')}`);
  await client.query(`UPDATE items SET v = v + 1 ${tag('/admin/secret', 'b')}`);
  await proxy.waitForTransactions(4);

  const scrape = await Scrape.of(adminPort);
  t.same(statementCounts(scrape, 'routes'), {
    'SELECT/ok/none': 1,
    'SELECT/ok//checkout': 1,
    'SELECT/ok/other': 1,
    'UPDATE/ok/other': 1,
  });
  t.same(transactionCounts(scrape, 'routes'), { 'commit/true/none': 1, 'commit/true//checkout': 1, 'commit/true/other': 2 });
  const everyRoute = scrape.families.flatMap((f) => f.metrics.map((m) => m.labels?.route)).filter((r) => r !== undefined);
  t.notOk(everyRoute.includes('/admin/secret'), 'an unlisted route never becomes a label value');
});

t.test('55P03, 40001 and the retries that follow them are counted', async (t) => {
  await createDatabase('locks');
  const a = await proxy.client({ database: 'locks' });
  const b = await proxy.client({ database: 'locks' });
  t.teardown(() => Promise.all([a.end(), b.end()]));

  // NOWAIT against a held row lock: 55P03; the same request then succeeds.
  await a.query('BEGIN');
  await a.query('SELECT * FROM items WHERE id = 0 FOR UPDATE');
  await t.rejects(b.query('SELECT * FROM items WHERE id = 0 FOR UPDATE NOWAIT'), { code: '55P03' });
  await a.query('COMMIT');
  await b.query('SELECT * FROM items WHERE id = 0 FOR UPDATE NOWAIT');

  // A concurrent update under REPEATABLE READ: 40001; the transaction is run again.
  await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await a.query('SELECT v FROM items WHERE id = 0');
  await b.query('UPDATE items SET v = v + 1 WHERE id = 0');
  await t.rejects(a.query('UPDATE items SET v = v + 1 WHERE id = 0'), { code: '40001' });
  await a.query('ROLLBACK');
  await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await a.query('UPDATE items SET v = v + 1 WHERE id = 0');
  await a.query('COMMIT');

  // Not retryable: a unique violation followed by more work.
  await t.rejects(b.query('INSERT INTO items (id) VALUES (0)'), { code: '23505' });
  await b.query('SELECT 1');
  await proxy.waitForTransactions(8);

  const scrape = await Scrape.of(adminPort);
  t.equal(scrape.value('txproxy_lock_not_available_total', { database: 'locks' }), 1);
  t.equal(scrape.value('txproxy_serialization_failures_total', { database: 'locks' }), 1);
  t.same(
    Object.fromEntries(scrape.series('txproxy_errors_total', { database: 'locks' }).map((s) => [s.labels.sqlstate, s.value])),
    { '55P03': 1, '40001': 1, '23505': 1 },
  );
  t.same(
    Object.fromEntries(scrape.series('txproxy_transaction_retries_total', { database: 'locks' }).map((s) => [s.labels.sqlstate, s.value])),
    { '55P03': 1, '40001': 1 },
  );
  t.same(transactionCounts(scrape, 'locks'), {
    'commit/false/none': 2,
    'failed/true/none': 2,
    'commit/true/none': 3,
    'failed/false/none': 1,
  });
});

t.test('the policy engine counts violations through the App', async (t) => {
  const metrics = proxy.app.metrics!;
  metrics.policyViolation('no-writes-outside-transactions', 'enforce');
  metrics.policyViolation('no-writes-outside-transactions', 'enforce');
  metrics.policyViolation('no-writes-outside-transactions', 'warn');
  const scrape = await Scrape.of(adminPort);
  t.equal(scrape.value('txproxy_policy_violations_total', { rule: 'no-writes-outside-transactions', action: 'enforce' }), 2);
  t.equal(scrape.value('txproxy_policy_violations_total', { rule: 'no-writes-outside-transactions', action: 'warn' }), 1);
});

t.test('session gauges are computed at scrape time', async (t) => {
  await createDatabase('gauges');
  const idle = await proxy.client({ database: 'gauges' });
  const inTx = await proxy.client({ database: 'gauges' });
  const busy = await proxy.client({ database: 'gauges' });
  await inTx.query('BEGIN');
  await inTx.query('SELECT 1');
  const sleeping = busy.query('SELECT pg_sleep(2.5)');
  let scrape = await Scrape.of(adminPort);
  // Until the sleep reaches the server and the transaction has aged, the gauges are still moving.
  await eventually(async () => {
    scrape = await Scrape.of(adminPort);
    const active = scrape.series('txproxy_client_sessions', { database: 'gauges' }).find((s) => s.labels.state === 'active');
    return active?.value === 1 && scrape.value('txproxy_oldest_transaction_age_seconds')! >= 0.35;
  }, 2000, 'the sleep to run and the transaction to age');
  const states = Object.fromEntries(scrape.series('txproxy_client_sessions', { database: 'gauges' }).map((s) => [s.labels.state, s.value]));
  t.same(states, { startup: 0, active: 1, idle: 1, idle_in_transaction: 1, idle_in_transaction_aborted: 0 });
  const oldest = scrape.value('txproxy_oldest_transaction_age_seconds')!;
  t.ok(oldest >= 0.35 && oldest < 60, `the open transaction is about 0.4 s old (${oldest})`);
  await sleeping;
  await inTx.query('COMMIT');
  await Promise.all([idle.end(), inTx.end(), busy.end()]);
  let after = await Scrape.of(adminPort);
  await eventually(async () => {
    after = await Scrape.of(adminPort);
    return after.series('txproxy_client_sessions', { database: 'gauges' }).length === 0;
  }, 5000, 'the closed sessions to leave the gauges');
  t.same(after.series('txproxy_client_sessions', { database: 'gauges' }), [], 'closed sessions leave no series');
  t.equal(after.value('txproxy_oldest_transaction_age_seconds'), 0);
});
