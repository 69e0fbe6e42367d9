/**
 * The pool metrics on the registry passed in, as a scrape reads them, and
 * the snapshot for the admin endpoint.
 */
import t from 'tap';
import { createRegistry } from '../../src/metrics/registry.js';
import { fakePool, flush } from '../helpers/pool-fakes.js';
import { metricValue } from '../helpers/metrics.js';

t.test('gauges, counters and the wait histogram follow the pools', async (t) => {
  const registry = createRegistry({ processMetrics: false });
  const { manager, clock, connector } = fakePool({ default_pool_size: 1, query_wait_timeout: 1000 }, { registry });
  const app = { database: 'app', user: 'alice' };
  const held = await manager.acquire('app', 'alice');
  const waiting = manager.acquire('app', 'alice');
  const timedOut = manager.acquire('app', 'alice').catch(() => null);
  await flush();
  t.equal(await metricValue(registry, 'txproxy_pool_clients', { ...app, state: 'active' }), 1);
  t.equal(await metricValue(registry, 'txproxy_pool_clients', { ...app, state: 'waiting' }), 2);
  t.equal(await metricValue(registry, 'txproxy_pool_servers', { ...app, state: 'active' }), 1);
  t.equal(await metricValue(registry, 'txproxy_pool_servers', { ...app, state: 'idle' }), 0);

  await clock.advance(500);
  await manager.release(held);
  await waiting;
  t.equal(await metricValue(registry, 'txproxy_pool_wait_seconds_count', app), 2, 'both loans observed');
  t.equal(await metricValue(registry, 'txproxy_pool_wait_seconds_sum', app), 0.5, 'the second waited 0.5s');
  await clock.advance(500);
  await timedOut;
  t.equal(await metricValue(registry, 'txproxy_pool_wait_timeouts_total', app), 1);
  t.equal(await metricValue(registry, 'txproxy_pool_server_connects_total', { ...app, outcome: 'ok' }), 1);

  connector.failures.push(new Error('connect ECONNREFUSED'));
  await manager.acquire('app', 'bob').catch(() => null);
  t.equal(await metricValue(registry, 'txproxy_pool_server_connects_total', { database: 'app', user: 'bob', outcome: 'error' }), 1);

  await manager.release(await waiting, { dirty: true });
  t.equal(await metricValue(registry, 'txproxy_pool_server_closes_total', { ...app, reason: 'dirty' }), 1);
  const text = await registry.metrics();
  t.match(text, /txproxy_pool_servers\{database="app",user="alice",state="login"\} 0/);
});

t.test('snapshot(): counts and links as plain data', async (t) => {
  const { manager, clock } = fakePool({ default_pool_size: 2, server_check_delay: 1000 });
  const a = await manager.acquire('app', 'alice', { client: 'session-7' });
  const b = await manager.acquire('app', 'alice', { client: 'session-8' });
  await manager.release(b);
  await clock.advance(2000);
  const [pool] = manager.snapshot();
  t.match(pool, {
    database: 'app',
    user: 'alice',
    mode: 'session',
    clients: { active: 1, waiting: 0 },
    servers: { active: 1, idle: 0, used: 1, tested: 0, login: 0 },
    max_wait_seconds: 0,
    login_error: null,
  });
  t.same(
    pool.links.map((l) => [l.backend_pid, l.state, l.client, l.idle_seconds]),
    [
      [a.backendPid, 'active', 'session-7', 2],
      [b.backendPid, 'used', null, 2],
    ],
  );
  t.same(JSON.parse(JSON.stringify(manager.snapshot())), manager.snapshot(), 'plain JSON');
});
