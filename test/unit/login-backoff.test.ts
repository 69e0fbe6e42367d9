/**
 * LoginBackoff: a failed server login holds clients off until the retry
 * time, one timer then lets the pool try again, and a stopped backoff never
 * retries.
 */
import t from 'tap';
import { LoginBackoff } from '../../src/pool/login-backoff.js';
import type { Report } from '../../src/protocol/encode.js';
import { FakeClock } from '../helpers/pool-fakes.js';

const REFUSED: Report = { severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "app"' };

function backoff(): { clock: FakeClock; backoff: LoginBackoff; retries: () => number } {
  const clock = new FakeClock();
  let retries = 0;
  return { clock, backoff: new LoginBackoff(clock, () => retries++), retries: () => retries };
}

t.test('holds off until the retry time, then retries once', async (t) => {
  const { clock, backoff: b, retries } = backoff();
  t.equal(b.holding(clock.now()), null, 'nothing failed yet');
  t.equal(b.describe(clock.now()), null);

  b.failed(REFUSED, clock.now(), 15_000);
  t.equal(b.holding(clock.now()), REFUSED, 'held off at once');
  t.ok(b.pending, 'a retry is to come');
  b.armRetry(clock.now());
  await clock.advance(14_999);
  t.equal(b.holding(clock.now()), REFUSED, 'still held off 1 ms before the retry time');
  t.equal(retries(), 0);
  t.same(b.describe(clock.now()), { code: '28P01', message: REFUSED.message, retry_in_seconds: 0.001 });

  await clock.advance(1);
  t.equal(retries(), 1, 'one retry, however often the timer was asked for');
  t.equal(b.holding(clock.now()), null, 'a login may be tried');
  t.notOk(b.pending);
  t.same(b.describe(clock.now()), { code: '28P01', message: REFUSED.message, retry_in_seconds: 0 }, 'the error is shown until a login succeeds');

  b.succeeded();
  t.equal(b.describe(clock.now()), null);
});

t.test('a stopped backoff does not retry', async (t) => {
  const { clock, backoff: b, retries } = backoff();
  b.failed(REFUSED, clock.now(), 1_000);
  b.stop();
  t.notOk(b.pending, 'the timer is cancelled');
  b.failed(REFUSED, clock.now(), 1_000);
  t.notOk(b.pending, 'and none is armed after');
  await clock.advance(5_000);
  t.equal(retries(), 0);
});
