/**
 * The server connections of one (database, user): lent to clients first
 * come first served, reset and checked between borrowers, opened up to the
 * pool size (and the reserve, for a client waiting long), closed when idle
 * too long, too old, or not clean.
 *
 * Sockets stay behind PoolLink and the connector, time behind Clock, and
 * the limits shared between pools (max_db_connections,
 * max_user_connections) behind PoolContext, so this logic runs in tests
 * with fakes and a hand-moved clock.
 */
import type { ErrorFields } from '../protocol/decode.js';
import type { Report } from '../protocol/encode.js';
import { runControl } from './control-statement.js';
import { LoginBackoff } from './login-backoff.js';
import type { PoolSettings } from './pool-config.js';
import { loginFailed, poolClosing, PoolError, queryWaitTimeout } from './pool-errors.js';
import type { PoolKey, PoolLink } from './pool-link.js';
import type { PoolSnapshot } from './pool-snapshot.js';
import type { CloseReason, PoolContext, ReleaseOptions } from './pool-types.js';
import { SETTLED, Waiter, WaitQueue, type Ticket } from './wait-queue.js';

const INVALID_CATALOG_NAME = '3D000'; // database "…" does not exist

interface Entry<L extends PoolLink> {
  readonly link: L;
  state: 'idle' | 'active' | 'tested' | 'closed';
  readonly createdAt: number;
  /** Logged in, lent, given back or checked: the last time the link was known good. */
  lastUsedAt: number;
  /** Who holds it, as the borrower named itself (a session id); null unless lent. */
  client: string | null;
}

export class Pool<L extends PoolLink = PoolLink> {
  private readonly entries = new Map<L, Entry<L>>();
  /** Idle links by the time they came back, oldest first; lent from the end, so extra links age out. */
  private idle: Entry<L>[] = [];
  private readonly queue: WaitQueue<Entry<L>>;
  private connecting = 0;
  /** Links running the reset or the check query: they come back soon, so a waiter does not need a new one. */
  private testing = 0;
  private readonly backoff: LoginBackoff;
  private closing = false;
  private drainedResolvers: (() => void)[] = [];
  private inDispatch = false;
  private dispatchAgain = false;
  /** Links beyond a pool size a reload lowered, still lent: closed as they come back. */
  private surplus = 0;

  constructor(
    readonly key: PoolKey,
    private current: PoolSettings,
    private readonly ctx: PoolContext<L>,
  ) {
    this.queue = new WaitQueue(ctx.clock, current.query_wait_timeout, (waiter, waitedMs) => {
      ctx.observer.waitTimedOut();
      waiter.reject(new PoolError(queryWaitTimeout(key, waitedMs)));
    });
    this.backoff = new LoginBackoff(ctx.clock, () => {
      this.dispatch();
      this.topUp();
    });
  }

  get settings(): PoolSettings {
    return this.current;
  }

  /**
   * New settings from a reload. A larger pool serves its waiters at once;
   * a smaller one closes its idle links beyond the new size now and lent
   * ones as they come back. The mode is not changed: a session was set up
   * for it at login.
   */
  reconfigure(settings: PoolSettings): void {
    this.current = { ...settings, mode: this.current.mode };
    this.queue.setTimeout(settings.query_wait_timeout);
    while (this.serverCount() > settings.pool_size && this.idle.length > 0) this.discard(this.idle[0], 'resized');
    this.surplus = Math.max(0, this.serverCount() - settings.pool_size);
    this.dispatch();
    this.topUp();
  }

  /**
   * Lends a link to `take`: when one is idle and nobody waits, before this
   * returns; else in turn, as links come back or are opened. `refuse` gets
   * the PoolError of a client that will get none (the pool closing, logins
   * failing, query_wait_timeout). At most one of them runs, once, and
   * neither after the ticket is cancelled.
   *
   * Transaction pooling borrows a link per transaction: this path makes no
   * promise, and query_wait_timeout is one timer per pool (wait-queue.ts).
   */
  lendTo(client: string | null, take: (link: L) => void, refuse: (err: PoolError) => void): Ticket {
    const failing = this.closing ? poolClosing() : this.failingLogin();
    if (failing !== null) {
      refuse(new PoolError(failing));
      return SETTLED;
    }
    const { clock } = this.ctx;
    const waiter = new Waiter<Entry<L>>(
      clock.now(),
      (entry) => {
        entry.client = client;
        take(entry.link);
      },
      refuse,
    );
    this.queue.push(waiter);
    const s = this.current;
    // The reserve opens to a client that has waited reserve_pool_timeout: look again then.
    if (s.reserve_pool_size > 0) waiter.onSettle(clock.setTimer(() => this.dispatch(), s.reserve_pool_timeout));
    this.dispatch();
    return { cancel: () => this.queue.remove(waiter) && waiter.abandon() };
  }

  /**
   * Takes a link back from its borrower. A link that is not clean is closed,
   * never handed on; in session mode (or when asked to) a clean one runs
   * server_reset_query first. Returns null when the link is idle again or
   * closed already; else a promise of that, once the reset query ran.
   */
  release(link: L, options: ReleaseOptions = {}): Promise<void> | null {
    const entry = this.entries.get(link);
    if (entry === undefined || entry.state !== 'active') throw new Error('release() of a link this pool has not lent');
    const s = this.current;
    const now = this.ctx.clock.now();
    entry.lastUsedAt = now;
    entry.client = null;
    if (link.closed) return this.drop(entry, 'died');
    if (options.dirty === true || (options.status !== undefined && options.status !== 'I')) return this.drop(entry, 'dirty');
    link.reclaim();
    if (this.closing) return this.drop(entry, 'shutdown');
    // server_lifetime 0: each link serves one client only, as in PgBouncer.
    if (now - entry.createdAt >= s.server_lifetime) return this.drop(entry, 'lifetime');
    // A link opened from the reserve, or beyond a lowered size, goes once nobody waits for it.
    if (this.serverCount() > s.pool_size && this.queue.length === 0) {
      // (Links of the lowered size's surplus may have closed in other ways since.)
      this.surplus = Math.min(this.surplus, this.serverCount() - s.pool_size);
      if (this.surplus === 0) return this.drop(entry, 'reserve');
      this.surplus--;
      return this.drop(entry, 'resized');
    }
    const resetQuery = s.mode === 'session' || options.reset === true ? s.server_reset_query.trim() : '';
    // A link left with session state and no reset query to clear it is not handed on.
    if (options.reset === true && resetQuery === '') return this.drop(entry, 'dirty');
    if (resetQuery !== '') return this.reset(entry, resetQuery);
    this.handOn(entry);
    return null;
  }

  /** Runs server_reset_query on a link back from its borrower, then hands it on. */
  private async reset(entry: Entry<L>, resetQuery: string): Promise<void> {
    entry.state = 'tested';
    this.testing++;
    const ok = await runControl(entry.link, resetQuery, this.ctx.clock, this.current.server_connect_timeout);
    this.testing--;
    if (!ok) this.drop(entry, entry.link.closed ? 'died' : 'reset_failed');
    else if (this.closing) this.drop(entry, 'shutdown');
    else this.handOn(entry);
  }

  /** The periodic work: idle and old links closed, the minimum topped up, waiters served. */
  maintain(): void {
    const s = this.current;
    const now = this.ctx.clock.now();
    for (const entry of [...this.idle]) {
      if (entry.link.closed) this.discard(entry, 'died');
      else if (s.server_lifetime > 0 && now - entry.createdAt >= s.server_lifetime) this.discard(entry, 'lifetime');
      else if (s.server_idle_timeout > 0 && now - entry.lastUsedAt >= s.server_idle_timeout && this.serverCount() > s.min_pool_size) {
        this.discard(entry, 'idle_timeout');
      }
    }
    this.dispatch();
    this.topUp();
  }

  /** Opens links up to min_pool_size (capped at the pool size), as far as the limits allow. */
  topUp(): void {
    const minimum = Math.min(this.current.min_pool_size, this.current.pool_size);
    while (!this.closing && this.serverCount() < minimum && this.openLink(false));
  }

  /** Looks again whether waiters can be served: a slot shared with other pools may have come free. */
  dispatch(): void {
    if (this.inDispatch) {
      this.dispatchAgain = true;
      return;
    }
    this.inDispatch = true;
    try {
      do {
        this.dispatchAgain = false;
        this.serveWaiters();
      } while (this.dispatchAgain);
    } finally {
      this.inDispatch = false;
    }
  }

  /** When the longest idle link was last used; null when none is idle. */
  oldestIdleAt(): number | null {
    return this.idle.length === 0 ? null : this.idle[0].lastUsedAt;
  }

  /** Closes the longest idle link so another pool may open one; false when none is idle. */
  evictIdle(): boolean {
    const entry = this.idle[0];
    if (entry === undefined) return false;
    this.discard(entry, 'evicted');
    return true;
  }

  /** When the client waiting longest started waiting; null when nobody waits. */
  waitingSince(): number | null {
    return this.queue.head?.since ?? null;
  }

  /** Nothing open, nothing waiting, nothing to keep warm, no login backoff to remember: the manager may forget this pool. */
  get unused(): boolean {
    return this.entries.size === 0 && this.connecting === 0 && this.queue.length === 0 && this.current.min_pool_size === 0 && !this.backoff.pending;
  }

  /**
   * Stops lending: waiters are refused, idle links closed, and the rest as
   * they come back (at once with `force`, under their borrowers). Resolves
   * when every link is closed.
   */
  close(options: { force?: boolean } = {}): Promise<void> {
    this.closing = true;
    this.backoff.stop();
    for (const waiter of this.queue.takeAll()) waiter.reject(new PoolError(poolClosing()));
    for (const entry of [...this.entries.values()]) {
      if (entry.state === 'idle' || (options.force === true && entry.state === 'active')) this.discard(entry, 'shutdown');
      else if (options.force === true && entry.state === 'tested') entry.link.close();
    }
    return new Promise((resolve) => {
      this.drainedResolvers.push(resolve);
      this.checkDrained();
    });
  }

  snapshot(): PoolSnapshot {
    const now = this.ctx.clock.now();
    const servers = { active: 0, idle: 0, used: 0, tested: 0, login: this.connecting };
    const links: PoolSnapshot['links'] = [];
    for (const entry of this.entries.values()) {
      const state = entry.state === 'idle' && this.needsCheck(entry, now) ? 'used' : entry.state;
      if (state === 'closed') continue;
      servers[state]++;
      const [age_seconds, idle_seconds] = [(now - entry.createdAt) / 1000, (now - entry.lastUsedAt) / 1000];
      links.push({ backend_pid: entry.link.backendPid, state, client: entry.client, age_seconds, idle_seconds });
    }
    const since = this.waitingSince();
    return {
      database: this.key.database,
      user: this.key.user,
      mode: this.current.mode,
      clients: { active: servers.active, waiting: this.queue.length },
      servers,
      max_wait_seconds: since === null ? 0 : (now - since) / 1000,
      login_error: this.backoff.describe(now),
      links,
    };
  }

  /** Open links and links being opened. */
  private serverCount(): number {
    return this.entries.size + this.connecting;
  }

  private serveWaiters(): void {
    const now = this.ctx.clock.now();
    while (this.queue.length > this.connecting + this.testing) {
      const entry = this.idle.pop();
      if (entry === undefined) break;
      if (entry.link.closed) this.discard(entry, 'died');
      else if (this.needsCheck(entry, now)) this.check(entry);
      else this.lend(this.queue.shift()!, entry);
    }
    // Each turn opens one link for a waiter no link is on its way to.
    while (this.queue.length > this.connecting + this.testing && this.openLink(true));
  }

  private needsCheck(entry: Entry<L>, now: number): boolean {
    return this.current.server_check_query.trim() !== '' && now - entry.lastUsedAt >= this.current.server_check_delay;
  }

  private lend(waiter: Waiter<Entry<L>>, entry: Entry<L>): void {
    const now = this.ctx.clock.now();
    entry.state = 'active';
    entry.lastUsedAt = now;
    entry.link.lend();
    this.ctx.observer.waited(now - waiter.since);
    waiter.resolve(entry);
  }

  /** A link known good right now: straight to the client waiting longest, else idle. */
  private handOn(entry: Entry<L>): void {
    entry.lastUsedAt = this.ctx.clock.now();
    const waiter = this.queue.shift();
    if (waiter !== undefined) this.lend(waiter, entry);
    else {
      entry.state = 'idle';
      this.idle.push(entry);
      this.ctx.linkIdle(this);
    }
    this.dispatch();
  }

  /** Runs server_check_query on a link idle longer than server_check_delay; a failed check closes it unseen. */
  private check(entry: Entry<L>): void {
    entry.state = 'tested';
    this.testing++;
    void runControl(entry.link, this.current.server_check_query, this.ctx.clock, this.current.server_connect_timeout).then((ok) => {
      this.testing--;
      if (this.closing) return this.drop(entry, 'shutdown');
      if (!ok) return this.drop(entry, entry.link.closed ? 'died' : 'check_failed');
      this.handOn(entry);
    });
  }

  /** Opens one link if the pool size (and the reserve, for a long waiter) and the shared limits allow. */
  private openLink(forWaiter: boolean): boolean {
    if (this.closing) return false;
    const { clock } = this.ctx;
    const now = clock.now();
    if (this.backoff.holding(now) !== null) {
      this.backoff.armRetry(now);
      return false;
    }
    const s = this.current;
    const head = this.queue.head;
    const reserve = forWaiter && head !== undefined && now - head.since >= s.reserve_pool_timeout ? s.reserve_pool_size : 0;
    if (this.serverCount() >= s.pool_size + reserve) return false;
    if (!this.ctx.mayOpen(this)) {
      if (forWaiter) this.ctx.makeRoom(this);
      return false;
    }
    this.connecting++;
    this.ctx.linkOpening(this);
    this.ctx.connect(s.server_connect_timeout).then(
      (link) => this.onConnected(link),
      (err: Error & { fields?: ErrorFields }) => this.onConnectFailed(err),
    );
    return true;
  }

  private onConnected(link: L): void {
    this.connecting--;
    this.backoff.succeeded();
    this.ctx.observer.connected(true);
    const now = this.ctx.clock.now();
    const entry: Entry<L> = { link, state: 'active', createdAt: now, lastUsedAt: now, client: null };
    this.entries.set(link, entry);
    link.onClosed(() => this.onLinkClosed(entry));
    if (this.closing) return this.discard(entry, 'shutdown');
    this.handOn(entry);
    this.topUp();
  }

  private onConnectFailed(err: Error & { fields?: ErrorFields }): void {
    this.connecting--;
    this.ctx.linkGone(this);
    const [s, now] = [this.current, this.ctx.clock.now()];
    // A missing database may be created any moment (a test runner): no hold-off, as PostgreSQL has none.
    const holdOff = err.fields?.code !== INVALID_CATALOG_NAME;
    const report = loginFailed(this.key, err.message, err.fields, holdOff ? s.server_login_retry : null);
    this.ctx.observer.connected(false, report);
    if (this.connecting === 0 && !this.worthWaiting()) for (const waiter of this.queue.takeAll()) waiter.reject(new PoolError(report));
    if (holdOff) this.backoff.failed(report, now, s.server_login_retry);
    this.checkDrained();
  }

  /** Logins are failing and this pool has no link to wait for: refuse at once, as PgBouncer does. */
  private failingLogin(): Report | null {
    const error = this.backoff.holding(this.ctx.clock.now());
    return error === null || this.worthWaiting() ? null : error;
  }

  /** While logins fail: wait for a link to come back, or take the login error? A session-mode link comes back only when its client leaves (maybe hours later), so only a full pool is worth waiting for. */
  private worthWaiting(): boolean {
    return this.current.mode === 'session' ? this.serverCount() >= this.current.pool_size : this.serverCount() > 0;
  }

  /** A link closed on its own: an idle one is dropped and replaced; the others are dealt with when they come back. */
  private onLinkClosed(entry: Entry<L>): void {
    if (entry.state === 'idle') this.drop(entry, 'died');
  }

  /** Closes a link, then lets waiters and the minimum use its slot. Null: done (for release). */
  private drop(entry: Entry<L>, reason: CloseReason): null {
    this.discard(entry, reason);
    this.dispatch();
    this.topUp();
    return null;
  }

  private discard(entry: Entry<L>, reason: CloseReason): void {
    if (entry.state === 'closed') return;
    if (entry.state === 'idle') this.idle.splice(this.idle.indexOf(entry), 1);
    entry.state = 'closed';
    this.entries.delete(entry.link);
    entry.link.close();
    this.ctx.observer.linkClosed(reason);
    this.ctx.linkGone(this);
    this.checkDrained();
  }

  private checkDrained(): void {
    if (!this.closing || this.entries.size > 0 || this.connecting > 0) return;
    for (const resolve of this.drainedResolvers.splice(0)) resolve();
  }
}
