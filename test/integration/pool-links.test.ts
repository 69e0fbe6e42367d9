/**
 * The pool with real ServerLinks to a real PostgreSQL: reuse within the
 * pool size (seen in pg_stat_activity), first come first served,
 * query_wait_timeout, the reserve, a backend terminated while idle,
 * server_lifetime, min_pool_size and server_check_query.
 */
import t from 'tap';
import { PoolError } from '../../src/pool/pool-errors.js';
import { serverLinkConnector } from '../../src/pool/link-connector.js';
import { defaultPoolConfig, type PoolConfigInput } from '../../src/pool/pool-config.js';
import { PoolManager } from '../../src/pool/pool-manager.js';
import { parseUpstreamUrl } from '../../src/proxy/upstream.js';
import { createRegistry } from '../../src/metrics/registry.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { query, value } from '../helpers/link-client.js';
import { metricValue } from '../helpers/metrics.js';

const server = await startPostgres();
t.teardown(() => server.stop());
const target = parseUpstreamUrl(`${server.url}?sslmode=disable`);

let appCounter = 0;

/** A manager whose links carry their own application_name, so pg_stat_activity can count them. */
function manager(config: PoolConfigInput, t: { teardown(fn: () => unknown): void }) {
  const application = `pool-test-${++appCounter}`;
  const registry = createRegistry({ processMetrics: false });
  const pools = new PoolManager({
    config: defaultPoolConfig(config),
    registry,
    maintenanceIntervalMs: 100,
    connect: serverLinkConnector({
      target,
      credentials: () => ({ kind: 'password', password: 'postgres' }),
      parameters: () => ({ application_name: application }),
    }),
  });
  t.teardown(() => pools.close({ force: true }));
  const backends = async () =>
    (await server.sql('SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid', [application])).rows.map((r) => r.pid as number);
  return { pools, backends, registry };
}

t.test('200 loans one after another with default_pool_size 2 use at most 2 backends', async (t) => {
  const { pools, backends } = manager({ default_pool_size: 2 }, t);
  const pids = new Set<string | null>();
  for (let i = 0; i < 200; i++) {
    const link = await pools.acquire('postgres', 'postgres');
    pids.add(await value(link, 'SELECT pg_backend_pid()'));
    await pools.release(link, { status: 'I' });
  }
  t.ok(pids.size <= 2, `backends used: ${pids.size}`);
  // Four borrowers at once still fit in two backends, waiting their turn.
  await Promise.all(
    [1, 2, 3, 4].map(async () => {
      for (let i = 0; i < 25; i++) {
        const link = await pools.acquire('postgres', 'postgres');
        pids.add(await value(link, 'SELECT pg_backend_pid()'));
        await pools.release(link);
      }
    }),
  );
  t.ok(pids.size <= 2, `backends used with 4 borrowers: ${pids.size}`);
  const seen = await backends();
  t.ok(seen.length <= 2, 'pg_stat_activity shows at most 2');
  t.same(new Set(seen.map(String)), new Set([...pids]), 'the ones it shows are the ones used');
});

t.test('waiters get the link first come first served', async (t) => {
  const { pools } = manager({ default_pool_size: 1 }, t);
  let link = await pools.acquire('postgres', 'postgres');
  const order: number[] = [];
  const waits = [0, 1, 2, 3, 4].map((i) => pools.acquire('postgres', 'postgres').then((l) => (order.push(i), l)));
  await eventually(() => pools.snapshot()[0].clients.waiting === 5, 5000, 'five waiters');
  for (const wait of waits) {
    await query(link, 'SELECT 1');
    await pools.release(link);
    link = await wait;
  }
  await pools.release(link);
  t.same(order, [0, 1, 2, 3, 4]);
});

t.test('query_wait_timeout: FATAL 08P01 query_wait_timeout, counted', async (t) => {
  const { pools, registry } = manager({ default_pool_size: 1, query_wait_timeout: '300ms' }, t);
  const held = await pools.acquire('postgres', 'postgres');
  const started = Date.now();
  const err = await pools.acquire('postgres', 'postgres').catch((e: unknown) => e);
  t.type(err, PoolError);
  t.match(err, { report: { severity: 'FATAL', code: '08P01', message: 'query_wait_timeout' } });
  t.ok(Date.now() - started >= 290, 'not before the timeout');
  t.equal(await metricValue(registry, 'txproxy_pool_wait_timeouts_total', { database: 'postgres', user: 'postgres' }), 1);
  await pools.release(held);
});

t.test('the reserve is used only after reserve_pool_timeout', async (t) => {
  const { pools, backends } = manager({ default_pool_size: 1, reserve_pool_size: 1, reserve_pool_timeout: '1s' }, t);
  const held = await pools.acquire('postgres', 'postgres');
  const started = Date.now();
  const reserve = await pools.acquire('postgres', 'postgres');
  t.ok(Date.now() - started >= 990, `waited ${Date.now() - started}ms for the reserve`);
  t.equal((await backends()).length, 2, 'a second backend from the reserve');
  await pools.release(reserve);
  await eventually(async () => (await backends()).length === 1, 5000, 'the reserve backend to go');
  await pools.release(held);
});

t.test('a backend terminated while idle is replaced without the next borrower noticing', async (t) => {
  const { pools, backends } = manager({ default_pool_size: 1 }, t);
  const link = await pools.acquire('postgres', 'postgres');
  const pid = Number(await value(link, 'SELECT pg_backend_pid()'));
  await pools.release(link);
  await server.sql('SELECT pg_terminate_backend($1)', [pid]);
  await eventually(async () => (await backends()).length === 0, 5000, 'the backend to exit');
  const next = await pools.acquire('postgres', 'postgres');
  const answer = await query(next, 'SELECT pg_backend_pid()');
  t.equal(answer.error, null, 'the query works');
  t.not(Number(answer.rows[0][0]), pid, 'on a new backend');
  await pools.release(next);
});

t.test('server_lifetime: an old link is closed as it comes back and the next loan gets a new backend', async (t) => {
  const { pools, backends } = manager({ default_pool_size: 1, server_lifetime: '500ms' }, t);
  const link = await pools.acquire('postgres', 'postgres');
  const pid = await value(link, 'SELECT pg_backend_pid()');
  await new Promise((r) => setTimeout(r, 600));
  await pools.release(link);
  t.ok(link.closed, 'closed');
  const next = await pools.acquire('postgres', 'postgres');
  t.not(await value(next, 'SELECT pg_backend_pid()'), pid);
  await pools.release(next);
  await eventually(async () => !(await backends()).includes(Number(pid)), 5000, 'the old backend to exit');
});

t.test('min_pool_size: the pool warms up and is kept topped up', async (t) => {
  const { pools, backends } = manager({ default_pool_size: 5, min_pool_size: 3 }, t);
  pools.pool('postgres', 'postgres');
  await eventually(async () => (await backends()).length === 3, 10_000, 'three backends');
  const [first] = await backends();
  await server.sql('SELECT pg_terminate_backend($1)', [first]);
  await eventually(async () => {
    const now = await backends();
    return now.length === 3 && !now.includes(first);
  }, 10_000, 'a replacement');
  t.pass('three backends, the terminated one replaced');
});

t.test('server_check_query runs after server_check_delay; a failing check is unseen by the borrower', async (t) => {
  const { pools, backends, registry } = manager({ default_pool_size: 2, server_check_delay: '200ms', server_check_query: "select 'pool check'", server_reset_query: '' }, t);
  const link = await pools.acquire('postgres', 'postgres');
  await value(link, "select 'client'");
  await pools.release(link);
  await new Promise((r) => setTimeout(r, 300));
  const again = await pools.acquire('postgres', 'postgres');
  t.equal(again, link, 'the same link');
  const last = await server.sql('SELECT query FROM pg_stat_activity WHERE pid = $1', [Number(await value(again, 'SELECT pg_backend_pid()'))]);
  t.equal(last.rows[0].query, 'SELECT pg_backend_pid()');
  await pools.release(again);

  // The check's own statement, seen from outside before the next borrower runs anything.
  await new Promise((r) => setTimeout(r, 300));
  const checked = await pools.acquire('postgres', 'postgres');
  const [pid] = await backends();
  const seen = await server.sql('SELECT query FROM pg_stat_activity WHERE pid = $1', [pid]);
  t.equal(seen.rows[0].query, "select 'pool check'", 'the check ran before the loan');
  await pools.release(checked);

});

t.test('a link failing server_check_query is closed and the borrower gets another, unaware', async (t) => {
  const { pools, registry } = manager({ default_pool_size: 2, server_check_delay: '200ms', server_check_query: 'select 1/0' }, t);
  const stale = await pools.acquire('postgres', 'postgres');
  await pools.release(stale);
  await new Promise((r) => setTimeout(r, 300));
  const fresh = await pools.acquire('postgres', 'postgres');
  t.not(fresh, stale, 'another link');
  t.ok(stale.closed, 'the one that failed its check is closed');
  t.equal((await query(fresh, 'SELECT 1')).error, null, 'the borrower never noticed');
  t.equal(await metricValue(registry, 'txproxy_pool_server_closes_total', { reason: 'check_failed' }), 1);
  await pools.release(fresh);
});
