/** Time for the tracker: wall clock for records, monotonic for durations. Tests pass their own. */
export interface Clock {
  /** Wall clock, epoch ms. */
  wall(): number;
  /** Monotonic ms. */
  mono(): number;
}

export const systemClock: Clock = { wall: () => Date.now(), mono: () => performance.now() };

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

}
