/** The pool's contracts with its manager, its observers and its borrowers. */
import type { TxStatus } from '../protocol/codes.js';
import type { Report } from '../protocol/encode.js';
import type { Clock } from './clock.js';
import type { PoolLink } from './pool-link.js';
import type { Pool } from './pool.js';

/** Why the pool closed a link, as counted in txproxy_pool_server_closes_total. */
export type CloseReason = 'dirty' | 'died' | 'lifetime' | 'idle_timeout' | 'reset_failed' | 'check_failed' | 'reserve' | 'resized' | 'evicted' | 'shutdown';

/** What the pool reports as it works: metrics and the log listen. */
export interface PoolObserver {
  waited(ms: number): void;
  connected(ok: boolean, error?: Report): void;
  waitTimedOut(): void;
  linkClosed(reason: CloseReason): void;
}

/** What a pool shares with the other pools of its manager. */
export interface PoolContext<L extends PoolLink = PoolLink> {
  clock: Clock;
  /** Opens and logs in a new link for this pool. */
  connect(timeoutMs: number): Promise<L>;
  /** Whether max_db_connections and max_user_connections allow one more link. */
  mayOpen(pool: Pool<L>): boolean;
  /** Closes an idle link of another pool whose slot this one could use. */
  makeRoom(pool: Pool<L>): void;
  /** A link is being opened (counts against the limits from now on). */
  linkOpening(pool: Pool<L>): void;
  /** A link (or an attempt) is gone; its slot is free. */
  linkGone(pool: Pool<L>): void;
  /** A link went idle with nobody waiting here: a pool held back by a shared limit may have it closed for room. */
  linkIdle(pool: Pool<L>): void;
  observer: PoolObserver;
}

export interface AcquireOptions {
  /** Who borrows (a session id), shown in the snapshot while it holds the link. */
  client?: string;
  /** Gives up waiting (the client went away); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ReleaseOptions {
  /** The borrower left the link unfit to hand on: unread results, COPY in progress, a broken exchange. */
  dirty?: boolean;
  /** The status of the last ReadyForQuery the borrower read; anything but 'I' (idle) is dirty. */
  status?: TxStatus;
  /**
   * The borrower left session state on the link (transaction mode: LISTEN,
   * a temporary table, SET ROLE…): server_reset_query runs whatever the
   * mode, and without one the link is closed.
   */
  reset?: boolean;
}
