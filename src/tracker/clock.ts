/** Time for the tracker: wall clock for records, monotonic for durations. Tests pass their own. */
export interface Clock {
  /** Wall clock, epoch ms. */
  wall(): number;
  /** Monotonic ms. */
  mono(): number;
}

export const systemClock: Clock = { wall: () => Date.now(), mono: () => performance.now() };
