/**
 * Transaction pooling as the session-state tests drive it: a proxy with a
 * pool of its own size in front of the test PostgreSQL, the pool's state as
 * plain data, and the pin metrics as a scrape would read them.
 */
import pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import type { PinReason } from '../../src/pool/session-effects.js';
import type { PoolSnapshot } from '../../src/pool/pool-snapshot.js';
import { metricValue } from './metrics.js';
import type { TestPostgres } from './postgres.js';
import { eventually, startProxy, type TestProxy } from './proxy.js';

export const PIN_REASONS: readonly PinReason[] = ['listen', 'advisory_lock', 'temp_table', 'hold_cursor', 'sql_prepare', 'role', 'load', 'unknown'];

/** A proxy in transaction mode whose one pool (the test user's) has `size` server connections. */
export function startTransactionProxy(postgres: TestPostgres, size: number): Promise<TestProxy> {
  return startProxy(
    postgres,
    { pool: { mode: 'transaction', default_pool_size: size }, auth: { type: 'scram-sha-256' } },
    { app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
  );
}

/** The proxy's one pool. */
export function onePool(proxy: TestProxy): PoolSnapshot {
  const pools = proxy.app.pools!.manager.snapshot();
  if (pools.length !== 1) throw new Error(`expected one pool, found ${pools.length}`);
  return pools[0];
}

/** Waits until no server connection is lent: every client between transactions and unpinned. */
export function allLinksIdle(proxy: TestProxy, timeoutMs = 10_000): Promise<void> {
  return eventually(() => {
    const pools = proxy.app.pools!.manager.snapshot();
    return pools.every((p) => p.servers.active === 0 && p.servers.tested === 0 && p.clients.waiting === 0);
  }, timeoutMs, 'every server connection back in its pool');
}

/** Pins taken so far (`txproxy_pool_pins_total`) and clients pinned now (`txproxy_pool_pinned_clients`), per reason. */
export interface PinCounts {
  taken: Record<PinReason, number>;
  pinned: Record<PinReason, number>;
}

export async function pinCounts(proxy: TestProxy): Promise<PinCounts> {
  const taken = {} as Record<PinReason, number>;
  const pinned = {} as Record<PinReason, number>;
  for (const reason of PIN_REASONS) {
    taken[reason] = await metricValue(proxy.app.registry, 'txproxy_pool_pins_total', { reason });
    pinned[reason] = await metricValue(proxy.app.registry, 'txproxy_pool_pinned_clients', { reason });
  }
  return { taken, pinned };
}

/**
 * The pins taken since `before` and the clients pinned now, per reason,
 * leaving out reasons at 0: `{ taken: { listen: 1 }, pinned: {} }` says
 * exactly one LISTEN pin was taken and nobody is pinned any more.
 */
export async function pinsSince(proxy: TestProxy, before: PinCounts): Promise<{ taken: Partial<Record<PinReason, number>>; pinned: Partial<Record<PinReason, number>> }> {
  const now = await pinCounts(proxy);
  const taken: Partial<Record<PinReason, number>> = {};
  const pinned: Partial<Record<PinReason, number>> = {};
  for (const reason of PIN_REASONS) {
    if (now.taken[reason] !== before.taken[reason]) taken[reason] = now.taken[reason] - before.taken[reason];
    if (now.pinned[reason] !== 0) pinned[reason] = now.pinned[reason];
  }
  return { taken, pinned };
}

/** Polls until the clients pinned for `reason` number `n`. */
export function pinnedClients(proxy: TestProxy, reason: PinReason, n: number, timeoutMs = 10_000): Promise<void> {
  return eventually(async () => (await metricValue(proxy.app.registry, 'txproxy_pool_pinned_clients', { reason })) === n, timeoutMs, `${n} clients pinned for ${reason}`);
}

/** The client holds a query that has not finished: resolves to whether it finished within `ms`. */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, ms));
  return settled;
}

/**
 * Starts `query` on `b` while `a`'s session holds the pool's one server:
 * resolves once the pool shows `b` waiting for it (and still waiting a
 * while later), with the promise of `b`'s result.
 */
export async function startWaiting<T>(proxy: TestProxy, query: () => Promise<T>): Promise<{ result: Promise<T>; stillWaiting: boolean }> {
  const result = query();
  result.catch(() => {});
  await eventually(() => onePool(proxy).clients.waiting === 1, 10_000, 'the second client waiting for the server');
  const finished = await settledWithin(result, 300);
  return { result, stillWaiting: !finished && onePool(proxy).clients.waiting === 1 && onePool(proxy).servers.active === 1 };
}

/** A plain connection to the test server, around txproxy. */
export async function directClient(postgres: TestPostgres, config: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const client = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: 'postgres', ...config });
  await client.connect();
  return client;
}

/** The backend pid a query of `client` runs on. */
export async function backendPid(client: pg.Client): Promise<number> {
  return (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
}
