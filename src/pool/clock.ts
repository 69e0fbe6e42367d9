/**
 * Time for the pool: now, and timers that can be cancelled. The pool's
 * logic runs against this interface so tests can move time by hand instead
 * of sleeping; the system clock's timers are unref'd, so a pool never keeps
 * the process alive by itself.
 */
export interface Clock {
  /** Milliseconds, monotonic within one clock. */
  now(): number;
  /** Calls `fn` after `ms`; the returned function cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
