/**
 * The pool's line of waiting clients, with fake links and a hand-moved
 * clock: first come first served, query_wait_timeout, giving up, the
 * reserve after reserve_pool_timeout, and reuse within the pool size.
 */
import t from 'tap';
import { PoolError } from '../../src/pool/pool-errors.js';
import type { FakeLink } from '../helpers/pool-fakes.js';
import { fakePool, flush, state } from '../helpers/pool-fakes.js';

t.test('links are reused: 200 borrowers one after another open only the pool size', async (t) => {
  const { manager, connector } = fakePool({ default_pool_size: 2 });
  for (let i = 0; i < 200; i++) {
    const link = await manager.acquire('app', 'alice');
    await manager.release(link);
  }
  t.equal(connector.attempts.length, 1, 'one borrower at a time needs one link');
  const held = await Promise.all([manager.acquire('app', 'alice'), manager.acquire('app', 'alice')]);
  t.equal(connector.attempts.length, 2, 'two at once need two');
  for (const link of held) await manager.release(link);
});

t.test('waiters are served first come first served', async (t) => {
  const { manager } = fakePool({ default_pool_size: 1 });
  const first = await manager.acquire('app', 'alice');
  const order: string[] = [];
  const waits = ['a', 'b', 'c', 'd'].map((name) =>
    manager.acquire('app', 'alice').then((link) => {
      order.push(name);
      return link;
    }),
  );
  await flush();
  t.same(manager.snapshot()[0].clients, { active: 1, waiting: 4 });
  let link: FakeLink = first;
  for (let i = 0; i < waits.length; i++) {
    await manager.release(link);
    link = await waits[i];
  }
  t.same(order, ['a', 'b', 'c', 'd']);
  await manager.release(link);
  t.same(manager.snapshot()[0].clients, { active: 0, waiting: 0 });
});

t.test('query_wait_timeout: the waiter gets FATAL 08P01 query_wait_timeout, the others keep their place', async (t) => {
  const { manager, clock } = fakePool({ default_pool_size: 1, query_wait_timeout: 1000 });
  const held = await manager.acquire('app', 'alice');
  const early = manager.acquire('app', 'alice').catch((e: PoolError) => e);
  await clock.advance(600);
  const late = manager.acquire('app', 'alice');
  await clock.advance(400);
  const err = await early;
  t.type(err, PoolError);
  t.match(err, { report: { severity: 'FATAL', code: '08P01', message: 'query_wait_timeout', detail: /user "alice" on database "app".*1s/ } });
  t.equal(await state(late), 'pending', 'the later waiter still waits');
  await manager.release(held);
  t.ok(await late, 'and gets the link');
});

t.test('query_wait_timeout: each waiter times out at its own deadline, also when those ahead were served or gave up first', async (t) => {
  const { manager, clock } = fakePool({ default_pool_size: 1, query_wait_timeout: 1000 });
  let held = await manager.acquire('app', 'alice');
  const first = manager.acquire('app', 'alice');
  await clock.advance(300);
  const abort = new AbortController();
  const second = manager.acquire('app', 'alice', { signal: abort.signal }).catch(() => 'gave up');
  await clock.advance(300);
  const third = manager.acquire('app', 'alice').then(
    () => 'served',
    (e: PoolError) => e.report.message,
  );
  await clock.advance(100);
  await manager.release(held);
  held = await first;
  abort.abort(new Error('client went away'));
  t.equal(await second, 'gave up');
  // The third has waited 100 ms; its deadline is 900 ms away.
  await clock.advance(899);
  t.equal(await state(third), 'pending', 'not before its own deadline');
  await clock.advance(1);
  t.equal(await third, 'query_wait_timeout', 'at its own deadline');
  t.same(manager.snapshot()[0].clients, { active: 1, waiting: 0 });
  await manager.release(held);
});

t.test('a waiter that gives up leaves the line; the link goes to the next', async (t) => {
  const { manager } = fakePool({ default_pool_size: 1 });
  const held = await manager.acquire('app', 'alice');
  const abort = new AbortController();
  const gaveUp = manager.acquire('app', 'alice', { signal: abort.signal }).catch((e: unknown) => e);
  const next = manager.acquire('app', 'alice');
  abort.abort(new Error('client went away'));
  t.match(await gaveUp, { message: 'client went away' });
  await manager.release(held);
  t.equal(await next, held, 'the next waiter got it');
  t.same(manager.snapshot()[0].clients, { active: 1, waiting: 0 });
});

t.test('the reserve opens only to a client that waited reserve_pool_timeout, and closes when nobody waits', async (t) => {
  const { manager, clock, connector } = fakePool({ default_pool_size: 1, reserve_pool_size: 1, reserve_pool_timeout: 5000 });
  const held = await manager.acquire('app', 'alice');
  const waiting = manager.acquire('app', 'alice');
  await clock.advance(4900);
  t.equal(connector.attempts.length, 1, 'no reserve link before reserve_pool_timeout');
  t.equal(await state(waiting), 'pending');
  await clock.advance(100);
  t.equal(connector.attempts.length, 2, 'a reserve link after it');
  const reserve = await waiting;
  t.not(reserve, held);
  await manager.release(reserve);
  t.ok(connector.links[1].closed, 'the reserve link is closed when it comes back and nobody waits');
  await manager.release(held);
  t.notOk(connector.links[0].closed, 'the pool-size link stays');
});

t.test('the reserve is capped at reserve_pool_size', async (t) => {
  const { manager, clock, connector } = fakePool({ default_pool_size: 1, reserve_pool_size: 1, reserve_pool_timeout: 0 });
  await manager.acquire('app', 'alice');
  const second = manager.acquire('app', 'alice');
  const third = manager.acquire('app', 'alice');
  await clock.advance(10);
  t.equal(await state(second), 'resolved');
  t.equal(await state(third), 'pending');
  t.equal(connector.attempts.length, 2);
});
