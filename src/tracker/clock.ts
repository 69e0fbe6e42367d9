/** Time for the tracker: wall clock for records, monotonic for durations. Tests pass their own. */
export interface Clock {
  /** Wall clock, epoch ms. */
  wall(): number;
  /** Monotonic ms. */
  mono(): number;
  /**
   * The wall clock, in whole epoch ms, at a monotonic time read just now:
   * a statement's start needs both, and one clock read is cheaper than two.
   */
  wallAt(mono: number): number;
}

/** How long the wall clock is taken as the monotonic one plus a fixed offset before that offset is read again. */
const RESYNC_MS = 1000;

/**
 * The process's clocks. `wallAt` adds an offset to the monotonic reading
 * and reads the wall clock again at most once a second, so a step of the
 * system clock (NTP, an operator) shows in records within a second, while
 * durations, on the monotonic clock alone, never jump.
 */
class SystemClock implements Clock {
  private offset = 0;
  private syncedAt = -Infinity;

  wall(): number {
    return Date.now();
  }

  mono(): number {
    return performance.now();
  }

  wallAt(mono: number): number {
    if (mono - this.syncedAt >= RESYNC_MS || mono < this.syncedAt) {
      this.syncedAt = performance.now();
      this.offset = Date.now() - this.syncedAt;
    }
    // Whole milliseconds, as Date.now() gives them (the trace writer caches a time's text by its millisecond).
    return Math.floor(this.offset + mono);
  }
}

export const systemClock: Clock = new SystemClock();
