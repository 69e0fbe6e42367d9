/**
 * What happens to a link between borrowers, with fake links and a
 * hand-moved clock: not clean → closed; the reset query in session mode;
 * the check query after server_check_delay; death while idle; lifetime,
 * idle timeout and min_pool_size; close().
 */
import t from 'tap';
import { PoolError } from '../../src/pool/pool-errors.js';
import { fakePool, flush, state, type FakeLink } from '../helpers/pool-fakes.js';

t.test('a link that is not clean is closed, never handed on', async (t) => {
  for (const [what, options] of [
    ['dirty', { dirty: true }],
    ['in a transaction', { status: 'T' as const }],
    ['in a failed transaction', { status: 'E' as const }],
  ] as const) {
    const { manager, connector } = fakePool({});
    const link = (await manager.acquire('app', 'alice')) as FakeLink;
    await manager.release(link, options);
    t.ok(link.closed, `${what}: closed`);
    t.same(link.statements, [], `${what}: no reset tried on it`);
    const next = await manager.acquire('app', 'alice');
    t.not(next, link, `${what}: the next borrower gets another link`);
    t.equal(connector.attempts.length, 2);
  }
});

t.test('session mode: server_reset_query runs as the link comes back; a failed reset closes it', async (t) => {
  const { manager } = fakePool({ server_reset_query: 'DISCARD ALL' });
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  await manager.release(link);
  t.same(link.statements, ['DISCARD ALL']);
  t.notOk(link.closed);
  t.equal(await manager.acquire('app', 'alice'), link, 'the reset link is lent again');
  link.answers.push({ tags: [], error: { severity: 'ERROR', code: '25001', message: 'cannot run inside a transaction block' }, status: 'T', rows: [], notifications: [] });
  await manager.release(link);
  t.ok(link.closed, 'a failed reset closes the link');
  t.not(await manager.acquire('app', 'alice'), link);
});

t.test('a reset that never answers closes the link after server_connect_timeout', async (t) => {
  const { manager, clock } = fakePool({ server_connect_timeout: 2000 });
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  link.answers.push('hang');
  const released = manager.release(link)!;
  await clock.advance(1999);
  t.equal(await state(released), 'pending');
  t.same(manager.snapshot()[0].servers.tested, 1, 'counted as tested while the reset runs');
  await clock.advance(1);
  await released;
  t.ok(link.closed);
});

t.test('transaction mode hands the link on without a reset', async (t) => {
  const { manager } = fakePool({}, { mode: 'transaction' });
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  await manager.release(link, { status: 'I' });
  t.same(link.statements, []);
  t.equal(await manager.acquire('app', 'alice'), link);
});

t.test('server_check_query runs on a link idle longer than server_check_delay; a failed check is unseen by the client', async (t) => {
  const { manager, clock, connector } = fakePool({ server_check_delay: 30_000, server_check_query: 'select 1', server_reset_query: '' });
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  await manager.release(link);
  await clock.advance(29_000);
  t.equal(await manager.acquire('app', 'alice'), link, 'recently used: lent without a check');
  t.same(link.statements, []);
  await manager.release(link);
  await clock.advance(30_000);
  t.same(manager.snapshot()[0].servers, { active: 0, idle: 0, used: 1, tested: 0, login: 0 }, 'reported as used');
  t.equal(await manager.acquire('app', 'alice'), link, 'checked, then lent');
  t.same(link.statements, ['select 1']);
  await manager.release(link);
  await clock.advance(30_000);
  link.answers.push(new Error('the server closed the connection'));
  const next = await manager.acquire('app', 'alice');
  t.not(next, link, 'a failed check: another link');
  t.ok(link.closed);
  t.equal(connector.attempts.length, 2);
});

t.test('a link that dies while idle is dropped and replaced for the next client', async (t) => {
  const { manager, connector } = fakePool({ min_pool_size: 0 });
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  await manager.release(link);
  link.die();
  await flush();
  t.same(manager.snapshot()[0].servers.idle, 0, 'dropped at once');
  const next = await manager.acquire('app', 'alice');
  t.not(next, link);
  t.equal(connector.attempts.length, 2);
});

t.test('a link that died while lent is dropped when it comes back', async (t) => {
  const { manager } = fakePool({});
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  link.die();
  await manager.release(link);
  t.same(manager.snapshot()[0].servers, { active: 0, idle: 0, used: 0, tested: 0, login: 0 });
});

t.test('server_lifetime: a link older than it is closed when it comes back, and idle ones at maintenance', async (t) => {
  const { manager, clock } = fakePool({ server_lifetime: 10_000, default_pool_size: 2 });
  const [a, b] = (await Promise.all([manager.acquire('app', 'alice'), manager.acquire('app', 'alice')])) as FakeLink[];
  await manager.release(b);
  await clock.advance(10_000);
  await manager.release(a);
  t.ok(a.closed, 'closed as it came back');
  manager.maintain();
  t.ok(b.closed, 'the idle one closed at maintenance');
});

t.test('server_lifetime 0: each link serves one client', async (t) => {
  const { manager } = fakePool({ server_lifetime: 0 });
  const link = (await manager.acquire('app', 'alice')) as FakeLink;
  await manager.release(link);
  t.ok(link.closed);
});

t.test('server_idle_timeout closes idle links beyond min_pool_size; min_pool_size is warmed up and kept', async (t) => {
  const { manager, clock, connector } = fakePool({ min_pool_size: 2, default_pool_size: 5, server_idle_timeout: 60_000 });
  manager.pool('app', 'alice');
  await flush();
  t.equal(connector.open().length, 2, 'warmed up to min_pool_size on creation');
  const links = await Promise.all([1, 2, 3].map(() => manager.acquire('app', 'alice')));
  t.equal(connector.open().length, 3);
  for (const link of links) await manager.release(link);
  await clock.advance(60_000);
  manager.maintain();
  t.equal(connector.open().length, 2, 'idle links beyond the minimum closed');
  connector.open()[0].die();
  await flush();
  t.equal(connector.open().length, 2, 'a dead one is replaced to keep the minimum');
});

t.test('min_pool_size is capped at the pool size', async (t) => {
  const { manager, connector } = fakePool({ min_pool_size: 10, default_pool_size: 3 });
  manager.pool('app', 'alice');
  await flush();
  t.equal(connector.attempts.length, 3);
});

t.test('close(): waiters refused, idle links closed, lent ones closed as they come back', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 3 });
  const [a, b, c] = (await Promise.all([1, 2, 3].map(() => manager.acquire('app', 'alice')))) as FakeLink[];
  await manager.release(c);
  const waiters = [manager.acquire('app', 'alice'), manager.acquire('app', 'alice')];
  await flush();
  t.equal(await waiters[0], c, 'the idle link went to the first waiter');
  const refused = waiters[1].catch((e: unknown) => e);
  const closed = manager.close();
  t.match(await refused, { report: { severity: 'FATAL', code: '57P01' } }, 'the other waiter is refused');
  t.equal(await state(closed), 'pending', 'close() waits for the lent links');
  await manager.release(a);
  t.ok(a.closed, 'a lent link is closed as it comes back');
  await manager.release(b);
  await manager.release(c);
  await closed;
  t.same(connector.open(), []);
  await t.rejects(manager.acquire('app', 'alice'), PoolError, 'no link after close()');
});

t.test('close({ force: true }) closes lent links under their borrowers', async (t) => {
  const { manager, connector } = fakePool({});
  await manager.acquire('app', 'alice');
  await manager.close({ force: true });
  t.same(connector.open(), []);
});

t.test('the manager maintains its pools on its own timer, and forgets pools with nothing left', async (t) => {
  const { manager, clock, connector } = fakePool({ server_idle_timeout: 5000 }, { maintenanceIntervalMs: 1000 });
  const link = await manager.acquire('app', 'alice');
  await manager.release(link);
  await clock.advance(4000);
  t.notOk(link.closed, 'not yet idle long enough');
  await clock.advance(2000);
  t.ok(link.closed, 'closed by the timer-driven maintenance');
  t.same(manager.snapshot(), [], 'the empty pool is forgotten');
  t.equal(connector.attempts.length, 1);
  await manager.close();
  await clock.advance(10_000);
});
