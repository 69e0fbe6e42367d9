import t from 'tap';
import { Registry } from 'prom-client';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { commandLabel, RouteLabels, SQLSTATE_LIMIT } from '../../src/metrics/labels.js';
import { CounterFamily, HistogramFamily } from '../../src/metrics/metric-cells.js';
import { ProxyMetrics } from '../../src/metrics/proxy-metrics.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';
import type { SessionInfo } from '../../src/tracker/types.js';
import { Scrape } from '../helpers/admin.js';
import { messagesOf, serialize, server } from '../helpers/messages.js';

async function scrape(registry: Registry): Promise<Scrape> {
  return Scrape.parse(await registry.metrics());
}

t.test('counter cells are exposed through the registry, and reset keeps them usable', async (t) => {
  const registry = new Registry();
  const family = new CounterFamily(registry, { name: 'x_total', help: 'x', labelNames: ['a', 'b'] });
  const cell = family.cell('1', 'quote"and\\backslash');
  cell.value += 3;
  t.equal(family.cell('1', 'quote"and\\backslash'), cell, 'the same labels give the same cell');
  const parsed = await scrape(registry);
  t.equal(parsed.family('x_total')?.type, 'COUNTER');
  t.equal(parsed.value('x_total', { a: '1', b: 'quote"and\\backslash' }), 3, 'label values are escaped by the registry');
  registry.resetMetrics();
  cell.value++;
  t.equal((await scrape(registry)).value('x_total', { a: '1' }), 1);
  t.throws(() => family.cell('only-one'), /takes 2 label values/);
  t.throws(() => new CounterFamily(registry, { name: 'x_total', help: 'again', labelNames: [] }), /already been registered/);
});

t.test('histogram cells: a value on a bound counts in that bucket, buckets are cumulative', async (t) => {
  const registry = new Registry();
  const family = new HistogramFamily(registry, { name: 'd_seconds', help: 'd', labelNames: ['k'], buckets: [1, 0.1, 0.5] });
  t.same(family.upperBounds, [0.1, 0.5, 1]);
  const a = family.cell('a');
  for (const v of [0.05, 0.1, 0.1000001, 0.5, 2, 7]) family.observe(a, v);
  family.observe(family.cell('b'), 0.2);
  const parsed = await scrape(registry);
  t.equal(parsed.family('d_seconds')?.type, 'HISTOGRAM');
  t.same(parsed.histogram('d_seconds', { k: 'a' }), {
    count: 6,
    sum: 0.05 + 0.1 + 0.1000001 + 0.5 + 2 + 7,
    buckets: [
      ['0.1', 2],
      ['0.5', 4],
      ['1', 4],
      ['+Inf', 6],
    ],
  });
  t.equal(parsed.histogram('d_seconds', { k: 'b' })?.count, 1);
  t.throws(() => new HistogramFamily(registry, { name: 'e', help: 'e', labelNames: [], buckets: [1, 1] }), /distinct/);
});

t.test('command labels come from a fixed set', async (t) => {
  const cases: [string, string][] = [
    ['SELECT', 'SELECT'],
    ['INSERT', 'INSERT'],
    ['ROLLBACK TO SAVEPOINT', 'ROLLBACK TO SAVEPOINT'],
    ['RELEASE SAVEPOINT', 'RELEASE SAVEPOINT'],
    ['COMMIT PREPARED', 'COMMIT PREPARED'],
    ['CREATE TABLE', 'CREATE'],
    ['CREATE INDEX', 'CREATE'],
    ['DROP FUNCTION', 'DROP'],
    ['ALTER SYSTEM', 'ALTER'],
    ['LOCK TABLE', 'LOCK TABLE'],
    ['SELEKT', 'other'],
    ['SELECT 1', 'other'],
    ['', 'other'],
  ];
  for (const [operation, label] of cases) t.equal(commandLabel(operation), label, JSON.stringify(operation));
});

t.test('route labels: listed routes, none, other', async (t) => {
  const routes = new RouteLabels(['/checkout', 'orders.views.detail']);
  t.equal(routes.label('/checkout'), '/checkout');
  t.equal(routes.label('orders.views.detail'), 'orders.views.detail');
  t.equal(routes.label('/checkout/'), 'other');
  t.equal(routes.label('/users/12345'), 'other');
  t.equal(routes.label(null), 'none');
});

const session: SessionInfo = {
  id: '9',
  user: 'u',
  database: 'd',
  applicationName: '',
  clientAddress: '127.0.0.1',
  startedAt: 0,
  backendPid: 1,
  replication: false,
};

t.test('SQLSTATE labels are capped: made-up codes cannot grow the series without bound', async (t) => {
  const registry = new Registry();
  const metrics = new ProxyMetrics(registry, { routes: [] });
  const extra = 100;
  for (let i = 0; i < SQLSTATE_LIMIT + extra; i++) {
    metrics.sessionError(session, { severity: 'ERROR', code: `P${String(i).padStart(4, '0')}`, message: 'raised' });
  }
  metrics.sessionError(session, { severity: 'ERROR', code: 'not a code', message: 'odd' });
  const parsed = await scrape(registry);
  const series = parsed.series('txproxy_errors_total', { database: 'd' });
  t.equal(series.length, SQLSTATE_LIMIT + 1);
  t.equal(parsed.value('txproxy_errors_total', { database: 'd', sqlstate: 'other' }), extra + 1);
  t.equal(parsed.value('txproxy_errors_total', { database: 'd', sqlstate: 'P0000' }), 1);
});

t.test('a retry is counted only for the request whose transaction failed', async (t) => {
  const registry = new Registry();
  const metrics = new ProxyMetrics(registry, { routes: [] });
  let now = 0;
  const tracker = new SessionTracker(session, metrics, { wall: () => now, mono: () => now });
  tracker.start();
  const query = (sql: string, ...answers: Buffer[]) => {
    for (const [type, buf, start, end] of messagesOf(serialize.query(sql))) tracker.onClientMessage(type, buf, start, end);
    now += 1;
    for (const [type, buf, start, end] of messagesOf(Buffer.concat([...answers, server.ready('I')]))) tracker.onServerMessage(type, buf, start, end);
  };
  const traced = (sql: string, trace: string) => `${sql} /*traceparent='00-${trace.repeat(32)}-${'1'.repeat(16)}-01'*/`;

  query(traced('UPDATE t SET v = 1', 'a'), server.error('40001', 'could not serialize access'));
  query(traced('UPDATE t SET v = 1', 'a'), server.complete('UPDATE 1'));
  query(traced('UPDATE t SET v = 2', 'a'), server.complete('UPDATE 1'));
  query(traced('SELECT 1 FOR UPDATE NOWAIT', 'b'), server.error('55P03', 'could not obtain lock'));
  // The next statement belongs to another request: not a retry.
  query(traced('SELECT 1 FOR UPDATE NOWAIT', 'c'), server.complete('SELECT 1'));

  const parsed = await scrape(registry);
  t.same(
    parsed.series('txproxy_transaction_retries_total').map((s) => [s.labels.sqlstate, s.value]),
    [['40001', 1]],
  );
  t.equal(parsed.value('txproxy_serialization_failures_total', { database: 'd' }), 1);
  t.equal(parsed.value('txproxy_lock_not_available_total', { database: 'd' }), 1);
});

t.test('the metrics config: routes and process, nothing else', async (t) => {
  t.same(buildConfig({}, {}, {}).metrics, { routes: [], process: true });
  t.same(buildConfig({ metrics: { routes: ['/a', '/b'], process: false } }, {}, {}).metrics, { routes: ['/a', '/b'], process: false });
  t.throws(() => buildConfig({ metrics: { routes: '/a' } }, {}, {}), ConfigError);
  t.throws(() => buildConfig({ metrics: { routes: '/a' } }, {}, {}), /'metrics\.routes'/);
  t.throws(() => buildConfig({ metrics: { route: ['/a'] } }, {}, {}), /unknown key 'metrics\.route'/);
  t.throws(() => buildConfig({ metrics: { routes: [''] } }, {}, {}), /'metrics\.routes\.0'/);
});
