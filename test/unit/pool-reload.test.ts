/**
 * A reload's `pool:` settings, with fake links and a hand-moved clock: a
 * larger pool serves its waiters at once, a smaller one closes idle links
 * now and lent ones as they come back (`resized`), timeouts apply to those
 * already waiting, and modes are left to a restart.
 */
import t from 'tap';
import { Registry } from 'prom-client';
import { defaultPoolConfig, restartOnlyChanges } from '../../src/pool/pool-config.js';
import { PoolError } from '../../src/pool/pool-errors.js';
import { fakePool, state } from '../helpers/pool-fakes.js';
import { metricValue } from '../helpers/metrics.js';

t.test('a larger pool_size serves the clients waiting at once', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 1 });
  const held = await manager.acquire('app', 'alice');
  const waiting = manager.acquire('app', 'alice');
  t.equal(await state(waiting), 'pending', 'the pool of 1 is full');
  manager.reconfigure(defaultPoolConfig({ default_pool_size: 2 }));
  t.equal(await state(waiting), 'resolved', 'served as the pool grows');
  t.equal(connector.attempts.length, 2);
  t.equal(manager.pool('app', 'alice').settings.pool_size, 2);
  await manager.release(held);
  await manager.release(await waiting);
});

t.test('a smaller pool_size closes idle links now and lent ones as they come back', async (t) => {
  const registry = new Registry();
  const { manager, connector } = fakePool({ default_pool_size: 4, server_reset_query: '' }, { registry });
  const links = await Promise.all([1, 2, 3, 4].map(() => manager.acquire('app', 'alice')));
  await manager.release(links[0]);
  await manager.release(links[1]);
  manager.reconfigure(defaultPoolConfig({ default_pool_size: 1, server_reset_query: '' }));
  t.equal(connector.open().length, 2, 'the two idle links are closed at once');
  t.ok(links[0].closed && links[1].closed);
  await manager.release(links[2]);
  t.ok(links[2].closed, 'a link beyond the new size is closed as it comes back');
  await manager.release(links[3]);
  t.notOk(links[3].closed, 'the last one is within the size and stays');
  t.same(manager.snapshot()[0].servers, { active: 0, idle: 1, used: 0, tested: 0, login: 0 });
  const closes = await metricValue(registry, 'txproxy_pool_server_closes_total', { database: 'app', user: 'alice', reason: 'resized' });
  t.equal(closes, 3, 'counted as resized');
});

t.test('links beyond a lowered size go to waiting clients before they close', async (t) => {
  const { manager } = fakePool({ default_pool_size: 2, server_reset_query: '' });
  const [a, b] = await Promise.all([manager.acquire('app', 'alice'), manager.acquire('app', 'alice')]);
  const waiting = manager.acquire('app', 'alice');
  manager.reconfigure(defaultPoolConfig({ default_pool_size: 1, server_reset_query: '' }));
  await manager.release(a);
  t.equal(await waiting, a, 'handed on, not closed, while a client waits');
  await manager.release(b);
  t.ok(b.closed, 'then closed once nobody waits');
  await manager.release(a);
  t.notOk(a.closed);
});

t.test('a shorter query_wait_timeout applies to the clients already waiting', async (t) => {
  const { manager, clock } = fakePool({ default_pool_size: 1, query_wait_timeout: 0 });
  const held = await manager.acquire('app', 'alice');
  const waiting = manager.acquire('app', 'alice').catch((e: PoolError) => e);
  await clock.advance(5000);
  t.equal(await state(waiting), 'pending', 'no timeout at first');
  manager.reconfigure(defaultPoolConfig({ default_pool_size: 1, query_wait_timeout: 8000 }));
  await clock.advance(2999);
  t.equal(await state(waiting), 'pending');
  await clock.advance(1);
  t.match(await waiting, { report: { code: '08P01', message: 'query_wait_timeout' } }, 'at 8 s since it began to wait');
  await manager.release(held);
});

t.test('pools made after the reload get its settings, overrides included', async (t) => {
  const { manager } = fakePool({ default_pool_size: 3 });
  manager.reconfigure(defaultPoolConfig({ default_pool_size: 5, databases: { reports: { pool_size: 1 } } }));
  t.equal(manager.pool('app', 'alice').settings.pool_size, 5);
  t.equal(manager.pool('reports', 'alice').settings.pool_size, 1);
});

t.test('a raised min_pool_size opens links at once', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 5 });
  manager.pool('app', 'alice');
  t.equal(connector.attempts.length, 0);
  manager.reconfigure(defaultPoolConfig({ default_pool_size: 5, min_pool_size: 2 }));
  t.equal(connector.attempts.length, 2);
});

t.test('a pool keeps its mode; modes and the session-side settings are named for a restart', async (t) => {
  const { manager } = fakePool({ databases: { app: { pool_mode: 'session' } } });
  manager.pool('app', 'alice');
  manager.reconfigure(defaultPoolConfig({ databases: { app: { pool_mode: 'transaction', pool_size: 7 } } }));
  t.equal(manager.pool('app', 'alice').settings.mode, 'session', 'the mode stays');
  t.equal(manager.pool('app', 'alice').settings.pool_size, 7, 'the rest applies');

  const base = defaultPoolConfig({ mode: 'session', users: { etl: { pool_size: 2 } } });
  t.same(restartOnlyChanges(base, defaultPoolConfig({ mode: 'session', default_pool_size: 50, users: { etl: { pool_size: 9 } } })), [], 'sizes and timeouts reload');
  t.same(
    restartOnlyChanges(
      base,
      defaultPoolConfig({ mode: 'transaction', max_prepared_statements: 10, session_state: 'refuse', users: { etl: { pool_mode: 'transaction' } }, databases: { app: { pool_mode: 'session' } } }),
    ),
    ['pool.mode', 'pool.max_prepared_statements', 'pool.session_state', 'pool.databases.app.pool_mode', 'pool.users.etl.pool_mode'],
  );
});
