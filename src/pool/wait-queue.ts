/**
 * Clients waiting for a server connection, first come first served. A
 * waiter is settled exactly once: given a link, refused, timed out or
 * abandoned; whatever it armed (timers, abort listeners) is undone then.
 */

import type { Clock } from './clock.js';
import type { PoolError } from './pool-errors.js';

/** A client's place in line. */
export interface Ticket {
  /** Gives the place up: nothing is handed to the client after this. False when it was no longer in line. */
  cancel(): boolean;
}

/** The ticket of a client answered at once. */
export const SETTLED: Ticket = { cancel: () => false };

export class Waiter<T> {
  private settled = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    /** When it started waiting, on the pool's clock. */
    readonly since: number,
    private readonly onResolve: (value: T) => void,
    private readonly onReject: (err: PoolError) => void,
  ) {}

  get done(): boolean {
    return this.settled;
  }

  /** Something to undo when the waiter is settled (a timer, a listener). */
  onSettle(cleanup: () => void): void {
    if (this.settled) cleanup();
    else this.cleanups.push(cleanup);
  }

  resolve(value: T): void {
    if (this.finish()) this.onResolve(value);
  }

  reject(err: PoolError): void {
    if (this.finish()) this.onReject(err);
  }

  /** The client gave up: settled without a word to it. True when it was still waiting. */
  abandon(): boolean {
    return this.finish();
  }

  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    return true;
  }
}

/**
 * The line, and query_wait_timeout: with one timer, not one per waiter.
 * The line is first come first served and every waiter in it has the
 * same timeout, so the head's deadline comes first. The timer is left to
 * fire when the head is served early; it then looks again, and is set for
 * the new head.
 */
export class WaitQueue<T> {
  private waiters: Waiter<T>[] = [];
  /** Cancels the timer, while one is set. */
  private cancelTimer: (() => void) | null = null;

  /** `timeoutMs` 0: waiters wait as long as it takes. */
  constructor(
    private readonly clock: Clock,
    private timeoutMs: number,
    private readonly onTimeout: (waiter: Waiter<T>, waitedMs: number) => void,
  ) {}

  get length(): number {
    return this.waiters.length;
  }

  /** The one waiting longest, if any. */
  get head(): Waiter<T> | undefined {
    return this.waiters[0];
  }

  push(waiter: Waiter<T>): void {
    this.waiters.push(waiter);
    this.armTimer();
  }

  shift(): Waiter<T> | undefined {
    return this.waiters.shift();
  }

  /** Takes a waiter out of line (it timed out or gave up); false if it was not in line. */
  remove(waiter: Waiter<T>): boolean {
    const i = this.waiters.indexOf(waiter);
    if (i === -1) return false;
    this.waiters.splice(i, 1);
    return true;
  }

  /** A new query_wait_timeout (a reload): it applies to the waiters in line too. */
  setTimeout(timeoutMs: number): void {
    if (timeoutMs === this.timeoutMs) return;
    this.timeoutMs = timeoutMs;
    this.cancelTimer?.();
    this.cancelTimer = null;
    if (timeoutMs > 0) this.timeOutWaiters();
  }

  /** Empties the line, handing back everyone who was in it, in order. */
  takeAll(): Waiter<T>[] {
    const all = this.waiters;
    this.waiters = [];
    this.cancelTimer?.();
    this.cancelTimer = null;
    return all;
  }

  private armTimer(): void {
    const head = this.waiters[0];
    if (this.timeoutMs <= 0 || this.cancelTimer !== null || head === undefined) return;
    this.cancelTimer = this.clock.setTimer(() => {
      this.cancelTimer = null;
      this.timeOutWaiters();
    }, Math.max(0, head.since + this.timeoutMs - this.clock.now()));
  }

  private timeOutWaiters(): void {
    const now = this.clock.now();
    while (this.waiters.length > 0 && now - this.waiters[0].since >= this.timeoutMs) {
      const waiter = this.waiters.shift()!;
      this.onTimeout(waiter, now - waiter.since);
    }
    this.armTimer();
  }
}
