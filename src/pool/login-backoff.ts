/**
 * A pool's hold-off after a failed server login (server_login_retry, as in
 * PgBouncer): until the retry time, clients with no link to wait for are
 * refused with the login's error instead of each trying a login that will
 * fail the same way; at the retry time, a timer lets the pool try again.
 */
import type { Report } from '../protocol/encode.js';
import type { Clock } from './clock.js';

export class LoginBackoff {
  /** The last login's error; null once a login succeeds. */
  private error: Report | null = null;
  private retryAt = 0;
  private cancelTimer: (() => void) | null = null;
  private stopped = false;

  /** `retry` runs when the hold-off ends, for the waiters still in line and for min_pool_size. */
  constructor(
    private readonly clock: Clock,
    private readonly retry: () => void,
  ) {}

  /** The error to refuse clients with while the hold-off lasts; null when a login may be tried. */
  holding(now: number): Report | null {
    return this.error !== null && now < this.retryAt ? this.error : null;
  }

  /** A login failed with `report`: hold off for `holdMs` and try again then. */
  failed(report: Report, now: number, holdMs: number): void {
    this.error = report;
    this.retryAt = now + holdMs;
    this.armRetry(now);
  }

  succeeded(): void {
    this.error = null;
  }

  /** Makes sure the retry timer runs; one timer at most, none once stopped. */
  armRetry(now: number): void {
    if (this.cancelTimer !== null || this.stopped) return;
    this.cancelTimer = this.clock.setTimer(
      () => {
        this.cancelTimer = null;
        this.retry();
      },
      Math.max(0, this.retryAt - now),
    );
  }

  /** A retry still to come: the pool has something to remember. */
  get pending(): boolean {
    return this.cancelTimer !== null;
  }

  /** The pool closes: no retry from now on. */
  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  /** The last login's error and the seconds until the next try, for the pool's snapshot. */
  describe(now: number): { code: string; message: string; retry_in_seconds: number } | null {
    if (this.error === null) return null;
    return { code: this.error.code, message: this.error.message, retry_in_seconds: Math.max(0, (this.retryAt - now) / 1000) };
  }
}
