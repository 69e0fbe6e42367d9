/**
 * Clients waiting for a server connection, first come first served. A
 * waiter is settled exactly once: given a link, refused, timed out or
 * abandoned; whatever it armed (timers, abort listeners) is undone then.
 */
export class Waiter<T> {
  private settled = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    /** When it started waiting, on the pool's clock. */
    readonly since: number,
    private readonly onResolve: (value: T) => void,
    private readonly onReject: (err: unknown) => void,
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

  reject(err: unknown): void {
    if (this.finish()) this.onReject(err);
  }

  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    return true;
  }
}

export class WaitQueue<T> {
  private waiters: Waiter<T>[] = [];

  get length(): number {
    return this.waiters.length;
  }

  /** The one waiting longest, if any. */
  get head(): Waiter<T> | undefined {
    return this.waiters[0];
  }

  push(waiter: Waiter<T>): void {
    this.waiters.push(waiter);
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

  /** Empties the line, handing back everyone who was in it, in order. */
  takeAll(): Waiter<T>[] {
    const all = this.waiters;
    this.waiters = [];
    return all;
  }
}
