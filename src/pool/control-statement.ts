/**
 * txproxy's own statement on an idle link (the reset or the check query),
 * reduced to the one thing the pool needs: may the link be handed on?
 */
import type { Clock } from './clock.js';
import type { PoolLink } from './pool-link.js';

/**
 * True when `sql` ran without error and left no transaction open. A server
 * that does not answer within `timeoutMs` is as good as gone: false, and
 * the caller closes the link.
 */
export async function runControl(link: PoolLink, sql: string, clock: Clock, timeoutMs: number): Promise<boolean> {
  const running = link.run(sql);
  running.catch(() => {}); // read below, or abandoned after the timeout when the link is closed
  let cancel = () => {};
  const timedOut = new Promise<null>((resolve) => {
    cancel = clock.setTimer(() => resolve(null), timeoutMs);
  });
  try {
    const result = await Promise.race([running, timedOut]);
    return result !== null && result.error === null && result.status === 'I';
  } catch {
    return false;
  } finally {
    cancel();
  }
}
