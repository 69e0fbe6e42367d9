/**
 * The timed limits of one session: idle inside a transaction, and
 * transaction duration. Each timer fires at most once per period; the
 * enforcer arms and clears them from what crosses the session.
 */

export class TransactionTimers {
  private idle: NodeJS.Timeout | null = null;
  private duration: NodeJS.Timeout | null = null;

  get durationArmed(): boolean {
    return this.duration !== null;
  }

  /** The session went idle inside a transaction. */
  armIdle(ms: number, expired: () => void): void {
    this.clearIdle();
    this.idle = setTimeout(() => {
      this.idle = null;
      expired();
    }, ms);
    this.idle.unref();
  }

  clearIdle(): void {
    if (this.idle === null) return;
    clearTimeout(this.idle);
    this.idle = null;
  }

  /**
   * A transaction began. The timer stays armed after it fires, until
   * clearDuration at the transaction's end, so a warning is given once.
   */
  armDuration(ms: number, expired: () => void): void {
    this.duration = setTimeout(expired, ms);
    this.duration.unref();
  }

  clearDuration(): void {
    if (this.duration === null) return;
    clearTimeout(this.duration);
    this.duration = null;
  }

  clear(): void {
    this.clearIdle();
    this.clearDuration();
  }
}
