/**
 * What pools share and how logins fail, with fake links: max_db_connections
 * across the users of a database, max_user_connections across the
 * databases of a user, eviction of an idle link to make room, per-database
 * and per-user overrides, and server_login_retry with the login error
 * handed to waiting clients.
 */
import t from 'tap';
import { PoolError } from '../../src/pool/pool-errors.js';
import { LinkError } from '../../src/server-link/server-link.js';
import { fakePool, flush, state } from '../helpers/pool-fakes.js';

t.test('max_db_connections counts every user of the database', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 5, max_db_connections: 2 });
  const alice = await manager.acquire('app', 'alice');
  const bob = await manager.acquire('app', 'bob');
  const carol = manager.acquire('app', 'carol');
  const other = await manager.acquire('reports', 'carol');
  t.ok(other, 'another database is not limited by it');
  t.equal(await state(carol), 'pending', 'the third user of app waits');
  await manager.release(alice);
  await flush();
  t.equal(await state(carol), 'resolved', "alice's idle link was closed to make room for carol");
  t.ok(connector.links[0].closed);
  t.same(
    connector.open().map((l) => l.backendPid).length,
    3,
    'app has 2 links, reports 1',
  );
  await manager.release(bob);
});

t.test('a waiter blocked by max_db_connections gets the slot a link of another user frees', async (t) => {
  const { manager } = fakePool({ default_pool_size: 5, max_db_connections: 1 });
  const alice = await manager.acquire('app', 'alice');
  const bob = manager.acquire('app', 'bob');
  await flush();
  t.equal(await state(bob), 'pending');
  await manager.release(alice, { dirty: true });
  await flush();
  t.equal(await state(bob), 'resolved');
});

t.test('max_user_connections counts every database of the user; per-user override', async (t) => {
  const { manager } = fakePool({ max_user_connections: 1, users: { batch: { max_user_connections: 2 } } });
  await manager.acquire('app', 'alice');
  const second = manager.acquire('reports', 'alice');
  t.equal(await state(second), 'pending', 'alice is held to 1');
  await manager.acquire('app', 'batch');
  await manager.acquire('reports', 'batch');
  const third = manager.acquire('other', 'batch');
  t.equal(await state(third), 'pending', 'batch is held to 2');
});

t.test('overrides: the user wins over the database, which wins over the default', async (t) => {
  const { manager } = fakePool({
    default_pool_size: 10,
    databases: { app: { pool_size: 3, server_reset_query: '' } },
    users: { alice: { pool_size: 1 } },
  });
  t.equal(manager.pool('app', 'alice').settings.pool_size, 1);
  t.equal(manager.pool('app', 'bob').settings.pool_size, 3);
  t.equal(manager.pool('app', 'bob').settings.server_reset_query, '');
  t.equal(manager.pool('other', 'bob').settings.pool_size, 10);
  t.equal(manager.pool('other', 'alice').settings.pool_size, 1);
});

t.test('a failed login: waiters get the server error, newcomers too until server_login_retry, then a new try', async (t) => {
  const { manager, clock, connector } = fakePool({ server_login_retry: 15_000 });
  const refused = () => new LinkError('password authentication failed for user "alice"', { severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "alice"' });
  connector.failures.push(refused(), refused());
  const first = manager.acquire('app', 'alice').catch((e: unknown) => e);
  const second = manager.acquire('app', 'alice').catch((e: unknown) => e);
  const a = await first;
  t.type(a, PoolError);
  t.match(a, { report: { severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "alice"', detail: /15s/ } });
  t.match(await second, { report: { code: '28P01' } }, 'every waiter gets it');
  t.equal(connector.attempts.length, 2, 'one attempt for each');
  t.match(manager.snapshot()[0].login_error, { code: '28P01', retry_in_seconds: 15 });

  await clock.advance(10_000);
  t.match(await manager.acquire('app', 'alice').catch((e: unknown) => e), { report: { code: '28P01' } }, 'a newcomer is refused at once');
  t.equal(connector.attempts.length, 2, 'without a new attempt');

  await clock.advance(5_000);
  const link = await manager.acquire('app', 'alice');
  t.ok(link, 'after server_login_retry a login is tried again');
  t.equal(manager.snapshot()[0].login_error, null);
});

t.test('a connection failure without a server error: FATAL 08001 naming the pool', async (t) => {
  const { manager, connector } = fakePool({});
  connector.failures.push(new Error('connect ECONNREFUSED 127.0.0.1:1'));
  t.match(await manager.acquire('app', 'alice').catch((e: unknown) => e), {
    report: { severity: 'FATAL', code: '08001', message: /cannot connect to the server for user "alice" on database "app": connect ECONNREFUSED/ },
  });
});

t.test('transaction mode, a failed login while other links are open: waiters keep waiting for those', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 2 }, { mode: 'transaction' });
  const held = await manager.acquire('app', 'alice');
  connector.failures.push(new Error('connect ETIMEDOUT'));
  const waiting = manager.acquire('app', 'alice');
  t.equal(await state(waiting), 'pending');
  await manager.release(held);
  t.equal(await waiting, held);
});

t.test('session mode, a failed login with room in the pool: the waiter gets the error, not a wait for a client to leave', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 2 });
  const held = await manager.acquire('app', 'alice');
  connector.failures.push(new Error('connect ETIMEDOUT'));
  t.match(await manager.acquire('app', 'alice').catch((e: unknown) => e), { report: { code: '08001' } });
  t.match(await manager.acquire('app', 'alice').catch((e: unknown) => e), { report: { code: '08001' } }, 'during server_login_retry too');
  await manager.release(held);
});

t.test('session mode, a failed login with the pool full: waiters wait for a link to come back', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 1, reserve_pool_size: 1, reserve_pool_timeout: 0 });
  const held = await manager.acquire('app', 'alice');
  connector.failures.push(new Error('connect ETIMEDOUT'));
  const waiting = manager.acquire('app', 'alice');
  await flush();
  t.equal(connector.attempts.length, 2, 'the reserve link was tried');
  t.equal(await state(waiting), 'pending');
  await manager.release(held);
  t.equal(await waiting, held);
});

t.test('min_pool_size waits for server_login_retry after a failed login', async (t) => {
  const { manager, clock, connector } = fakePool({ min_pool_size: 1, server_login_retry: 1000 });
  connector.failures.push(new Error('connect ECONNREFUSED'));
  manager.pool('app', 'alice');
  await flush();
  t.equal(connector.attempts.length, 1);
  manager.maintain();
  t.equal(connector.attempts.length, 1, 'no new attempt before server_login_retry');
  await clock.advance(1000);
  t.equal(connector.attempts.length, 2, 'tried again after it');
  t.equal(connector.open().length, 1);
});
