// The module's own binding: the global `performance` is a lazy accessor in Node.js, called on every read.
import { performance } from 'node:perf_hooks';

/** Time for the tracker: wall clock for records, monotonic for durations. Tests pass their own. */
export interface Clock {
  /** Wall clock, epoch ms. */
  wall(): number;
  /** Monotonic ms. */
  mono(): number;
  /** The wall clock at a monotonic time read just now, where the clock can tell it without a read of its own. */
  wallAt?(mono: number): number;
}

/** A step of the system clock larger than this moves the derived wall clock. */
const STEP_MS = 50;
/** How often the derived wall clock is compared with the system clock. */
const CHECK_MS = 1000;

/**
 * The wall clock as txproxy's records tell it: the monotonic clock plus an
 * offset, in whole ms. Two reasons:
 * - a statement's start needs both clocks, and one read costs less than two;
 * - times taken on it are consistent with durations taken on the monotonic
 *   clock, so a lock wait (the lock monitor reads this clock too) fits in
 *   its statement. Date.now() drops its fraction of a millisecond, and an
 *   offset taken from it once was up to a millisecond early.
 * The offset is taken again when the system clock has stepped (NTP, an
 * operator) by more than STEP_MS, which is checked at most once a second.
 */
export class DerivedWallClock {
  private offset: number;
  private checkedAt: number;

  constructor() {
    this.checkedAt = performance.now();
    // Date.now() is the true time less a fraction of a millisecond: on average, half of one.
    this.offset = Date.now() + 0.5 - this.checkedAt;
  }

  now(): number {
    return this.at(performance.now());
  }

  /** The wall clock at monotonic time `mono`, read just now. */
  at(mono: number): number {
    if (mono - this.checkedAt >= CHECK_MS || mono < this.checkedAt) this.check();
    return Math.floor(mono + this.offset);
  }

  private check(): void {
    const mono = performance.now();
    this.checkedAt = mono;
    const drift = Date.now() - (mono + this.offset);
    if (Math.abs(drift) > STEP_MS) this.offset += drift;
  }
}

/** The one wall clock of the tracker and the lock monitor (see DerivedWallClock). */
export const wallClock = new DerivedWallClock();

export const systemClock: Clock = { wall: () => wallClock.now(), mono: () => performance.now(), wallAt: (mono) => wallClock.at(mono) };

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

  /** Within a chunk, the wall clock at the chunk's instant, where the clock can tell it from that. */
  wall(): number {
    if (this.depth === 0 || this.clock.wallAt === undefined) return this.clock.wall();
    return this.clock.wallAt(this.mono());
  }

  mono(): number {
    if (this.depth === 0) return this.clock.mono();
    if (!this.read) {
      this.chunkMono = this.clock.mono();
      this.read = true;
    }
    return this.chunkMono;
  }
}
