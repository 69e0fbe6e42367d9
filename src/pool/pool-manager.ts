/**
 * All pools, one per (database, user), created when first asked for, and
 * the limits they share: max_db_connections across the users of a
 * database, max_user_connections across the databases of a user. When a
 * pool is held back by such a limit, an idle link of another pool under the
 * same limit is closed to make room (as PgBouncer evicts one).
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
import { maxDbConnections, maxUserConnections, poolSettingsFor, type PoolConfig, type PoolMode } from './pool-config.js';
import { poolClosing, PoolError } from './pool-errors.js';
import type { LinkConnector, PoolKey, PoolLink } from './pool-link.js';
import { PoolMetrics } from './pool-metrics.js';
import type { PoolSnapshot } from './pool-snapshot.js';
import type { AcquireOptions, PoolContext, PoolObserver, ReleaseOptions } from './pool-types.js';
import { Pool } from './pool.js';
import { SETTLED, type Ticket } from './wait-queue.js';

export interface PoolManagerOptions<L extends PoolLink = PoolLink> {
  config: PoolConfig;
  connect: LinkConnector<L>;
  /** How links come back: `session` (reset, the default) or `transaction`. */
  mode?: PoolMode;
  /** Where the pool metrics are registered; none: no metrics. */
  registry?: Registry;
  log?: Pick<Logger, 'warn' | 'debug'>;
  clock?: Clock;
  /** How often idle timeouts, lifetimes and min_pool_size are looked at; 0: only when maintain() is called. */
  maintenanceIntervalMs?: number;
}

const NO_METRICS: PoolObserver = { waited() {}, connected() {}, waitTimedOut() {}, linkClosed() {} };

export class PoolManager<L extends PoolLink = PoolLink> {
  private readonly pools = new Map<string, Pool<L>>();
  /** Open links and links being opened, by database and by user. */
  private readonly perDatabase = new Map<string, number>();
  private readonly perUser = new Map<string, number>();
  /** Which pool lent each link out. */
  private readonly lenders = new WeakMap<L, Pool<L>>();
  private readonly clock: Clock;
  private readonly metrics: PoolMetrics | null;
  private readonly stopTimer: () => void;
  private closing = false;
  /** `options.config`, until a reload replaces it. */
  private config: PoolConfig;

  constructor(private readonly options: PoolManagerOptions<L>) {
    this.config = options.config;
    this.clock = options.clock ?? systemClock;
    this.metrics = options.registry === undefined ? null : new PoolMetrics(options.registry, () => this.pools.values());
    const interval = options.maintenanceIntervalMs ?? 1000;
    let cancel = () => {};
    if (interval > 0) {
      const tick = () => {
        this.maintain();
        cancel = this.clock.setTimer(tick, interval);
      };
      cancel = this.clock.setTimer(tick, interval);
    }
    this.stopTimer = () => cancel();
  }

  /** The pool of (database, user), created (and warmed up to min_pool_size) on first use. */
  pool(database: string, user: string): Pool<L> {
    const id = `${database}\u0000${user}`;
    let pool = this.pools.get(id);
    if (pool === undefined) {
      const key: PoolKey = { database, user };
      const settings = poolSettingsFor(this.config, database, user, this.options.mode ?? 'session');
      pool = new Pool<L>(key, settings, this.contextFor(key));
      this.pools.set(id, pool);
      pool.topUp();
    }
    return pool;
  }

  /** A link of the pool of (database, user), as lendTo; `signal` gives up waiting (the promise rejects with its reason). */
  acquire(database: string, user: string, options: AcquireOptions = {}): Promise<L> {
    const { signal, client = null } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<L>((resolve, reject) => {
      if (signal === undefined) {
        this.lendTo(database, user, client, resolve, reject);
        return;
      }
      const onAbort = () => {
        if (ticket.cancel()) reject(signal.reason);
      };
      const settled = <T>(settle: (value: T) => void) => (value: T) => {
        signal.removeEventListener('abort', onAbort);
        settle(value);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const ticket = this.lendTo(database, user, client, settled(resolve), settled(reject));
    });
  }

  /**
   * A link of the pool of (database, user) for `take`, when it is this
   * client's turn (see Pool.lendTo); a PoolError for `refuse` otherwise.
   */
  lendTo(database: string, user: string, client: string | null, take: (link: L) => void, refuse: (err: PoolError) => void): Ticket {
    if (this.closing) {
      refuse(new PoolError(poolClosing()));
      return SETTLED;
    }
    const pool = this.pool(database, user);
    return pool.lendTo(
      client,
      (link) => {
        this.lenders.set(link, pool);
        take(link);
      },
      refuse,
    );
  }

  /** Gives a link back to the pool it came from (see Pool.release). */
  release(link: L, options: ReleaseOptions = {}): Promise<void> | null {
    const pool = this.lenders.get(link);
    if (pool === undefined) throw new Error('release() of a link no pool has lent');
    this.lenders.delete(link);
    return pool.release(link, options);
  }

  /**
   * Closes every idle link to `database`, for a statement that needs it
   * free of other sessions (DROP DATABASE …); returns how many closed.
   */
  closeIdle(database: string): number {
    let closed = 0;
    for (const pool of this.pools.values()) {
      if (pool.key.database !== database) continue;
      while (pool.evictIdle()) closed++;
    }
    return closed;
  }

  /**
   * Settings from a reload: pools made from now on get them, and each
   * existing pool takes its own (Pool.reconfigure). A pool's mode stays;
   * the caller refuses a reload that changes modes (restartOnlyChanges).
   * Raised shared limits let waiting pools open links at once; lowered
   * ones apply to links opened from now on.
   */
  reconfigure(config: PoolConfig): void {
    this.config = config;
    for (const pool of this.pools.values()) pool.reconfigure(poolSettingsFor(config, pool.key.database, pool.key.user, this.options.mode ?? 'session'));
  }

  /** Every pool as plain data. */
  snapshot(): PoolSnapshot[] {
    return [...this.pools.values()].map((pool) => pool.snapshot());
  }

  /** Idle timeouts, lifetimes, min_pool_size; pools with nothing left are forgotten. */
  maintain(): void {
    for (const [id, pool] of this.pools) {
      pool.maintain();
      if (pool.unused) this.pools.delete(id);
    }
  }

  /** Closes every pool (see Pool.close); resolves when every link is closed. */
  async close(options: { force?: boolean } = {}): Promise<void> {
    this.closing = true;
    this.stopTimer();
    await Promise.all([...this.pools.values()].map((pool) => pool.close(options)));
  }

  private contextFor(key: PoolKey): PoolContext<L> {
    const observer = this.metrics?.observer(key) ?? NO_METRICS;
    const log = this.options.log;
    return {
      clock: this.clock,
      connect: (timeoutMs) => this.options.connect(key, timeoutMs),
      mayOpen: (pool) => this.blockedBy(pool) === null,
      makeRoom: (pool) => this.makeRoom(pool),
      linkOpening: (pool) => {
        bump(this.perDatabase, pool.key.database, 1);
        bump(this.perUser, pool.key.user, 1);
      },
      linkGone: (pool) => {
        bump(this.perDatabase, pool.key.database, -1);
        bump(this.perUser, pool.key.user, -1);
        this.wakeSharing(pool);
      },
      linkIdle: (pool) => this.wakeSharing(pool),
      observer: {
        waited: (ms) => observer.waited(ms),
        waitTimedOut: () => observer.waitTimedOut(),
        connected: (ok, error) => {
          observer.connected(ok, error);
          if (!ok) log?.warn({ database: key.database, user: key.user, code: error?.code, err: error?.message }, 'pool server login failed');
        },
        linkClosed: (reason) => {
          observer.linkClosed(reason);
          log?.debug({ database: key.database, user: key.user, reason }, 'pool server connection closed');
        },
      },
    };
  }

  /** The shared limit that keeps `pool` from opening a link, if one does. */
  private blockedBy(pool: Pool<L>): 'database' | 'user' | null {
    const config = this.config;
    const dbLimit = maxDbConnections(config, pool.key.database);
    if (dbLimit > 0 && (this.perDatabase.get(pool.key.database) ?? 0) >= dbLimit) return 'database';
    const userLimit = maxUserConnections(config, pool.key.user);
    if (userLimit > 0 && (this.perUser.get(pool.key.user) ?? 0) >= userLimit) return 'user';
    return null;
  }

  /** Closes the longest idle link among the other pools under the limit that holds `pool` back. */
  private makeRoom(pool: Pool<L>): void {
    const limit = this.blockedBy(pool);
    if (limit === null) return;
    let victim: Pool<L> | null = null;
    let oldest = Infinity;
    for (const other of this.pools.values()) {
      if (other === pool || other.key[limit] !== pool.key[limit]) continue;
      const since = other.oldestIdleAt();
      if (since !== null && since < oldest) {
        oldest = since;
        victim = other;
      }
    }
    victim?.evictIdle();
  }

  /**
   * A slot under a shared limit came free, or a link that could be closed
   * for room went idle: the pools under the same limits that have clients
   * waiting look again, the one whose client has waited longest first.
   * Deferred to a microtask so no pool is re-entered in the middle of its
   * own work.
   */
  private wakeSharing(from: Pool<L>): void {
    const config = this.config;
    const dbLimited = maxDbConnections(config, from.key.database) > 0;
    const userLimited = maxUserConnections(config, from.key.user) > 0;
    if (!dbLimited && !userLimited) return;
    queueMicrotask(() => {
      const waiting = [...this.pools.values()]
        .filter((p) => p !== from && p.waitingSince() !== null)
        .filter((p) => (dbLimited && p.key.database === from.key.database) || (userLimited && p.key.user === from.key.user))
        .sort((a, b) => a.waitingSince()! - b.waitingSince()!);
      for (const pool of waiting) pool.dispatch();
    });
  }
}

function bump(counts: Map<string, number>, name: string, by: number): void {
  const n = (counts.get(name) ?? 0) + by;
  if (n === 0) counts.delete(name);
  else counts.set(name, n);
}
