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

/**
 * The tracker's clock while it reads a chunk of messages from a socket:
 * they all arrived at one instant, so the monotonic clock is read once per
 * chunk. A statement's end and its transaction's (CommandComplete and
 * ReadyForQuery, most often in one chunk) then cost one read, not two.
 * Outside a chunk (a timer, a message txproxy makes up) every read is fresh.
 */
export class ChunkClock implements Clock {
  /** Chunks being read: one, or more when relaying one leads to relaying another. */
  private depth = 0;
  private chunkMono = 0;
  private read = false;

  constructor(private readonly clock: Clock) {}

  chunkStarted(): void {
    this.depth++;
  }

  chunkEnded(): void {
    if (this.depth > 0 && --this.depth === 0) this.read = false;
  }

  wall(): number {
    return this.clock.wall();
  }

  mono(): number {
    if (this.depth === 0) return this.clock.mono();
    if (!this.read) {
      this.chunkMono = this.clock.mono();
      this.read = true;
    }
    return this.chunkMono;
  }

  wallAt(mono: number): number {
    return this.clock.wallAt(mono);
  }
}
