/**
 * Byte-free stand-ins for the pool's surroundings: a clock moved by hand,
 * links whose control statements answer as told, and a connector that
 * hands them out (or fails, or keeps the login pending).
 */
import type { Clock } from '../../src/pool/clock.js';
import { defaultPoolConfig, type PoolConfigInput } from '../../src/pool/pool-config.js';
import type { PoolKey, PoolLink } from '../../src/pool/pool-link.js';
import { PoolManager, type PoolManagerOptions } from '../../src/pool/pool-manager.js';
import type { ControlResult } from '../../src/server-link/server-link.js';
import { LinkError } from '../../src/server-link/server-link.js';

export class FakeClock implements Clock {
  private time = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time on by `ms`, firing due timers in order, letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
      await flush();
    }
    this.time = until;
    await flush();
  }
}

/** Lets pending promise callbacks and microtasks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

type Answer = ControlResult | Error | 'hang';

export class FakeLink implements PoolLink {
  closed = false;
  lent = false;
  readonly statements: string[] = [];
  /** What the next control statements answer, in order; then `{ error: null, status: 'I' }`. */
  answers: Answer[] = [];
  private listeners: ((reason: string) => void)[] = [];

  constructor(readonly backendPid: number) {}

  run(sql: string): Promise<ControlResult> {
    if (this.lent) return Promise.reject(new Error('run() on a lent link'));
    if (this.closed) return Promise.reject(new LinkError('closed'));
    this.statements.push(sql);
    const answer = this.answers.shift() ?? { tags: ['OK'], error: null, status: 'I', rows: [], notifications: [] };
    if (answer === 'hang') return new Promise(() => {});
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  }

  lend(): void {
    this.lent = true;
  }

  reclaim(): void {
    this.lent = false;
  }

  close(): void {
    this.die('closed by txproxy');
  }

  /** The server ends the connection (pg_terminate_backend, a network failure). */
  die(reason = 'the server closed the connection'): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.listeners.splice(0)) listener(reason);
  }

  onClosed(listener: (reason: string) => void): void {
    if (this.closed) queueMicrotask(() => listener('closed'));
    else this.listeners.push(listener);
  }
}

export class FakeConnector {
  readonly links: FakeLink[] = [];
  readonly attempts: PoolKey[] = [];
  /** Errors for the next attempts, in order; then success. */
  failures: Error[] = [];
  /** Logins wait until release() while set. */
  hold = false;
  private held: (() => void)[] = [];
  private nextPid = 1000;

  readonly connect = (key: PoolKey): Promise<FakeLink> => {
    this.attempts.push(key);
    const failure = this.failures.shift();
    if (failure !== undefined) return Promise.reject(failure);
    const link = new FakeLink(this.nextPid++);
    this.links.push(link);
    if (!this.hold) return Promise.resolve(link);
    return new Promise((resolve) => this.held.push(() => resolve(link)));
  };

  /** Lets the held logins finish. */
  finishLogins(): void {
    for (const finish of this.held.splice(0)) finish();
  }

  open(): FakeLink[] {
    return this.links.filter((l) => !l.closed);
  }
}

export interface FakePool {
  manager: PoolManager<FakeLink>;
  clock: FakeClock;
  connector: FakeConnector;
}

/** A manager over fakes, maintained only when a test calls maintain(). */
export function fakePool(config: PoolConfigInput, options: Partial<PoolManagerOptions<FakeLink>> = {}): FakePool {
  const clock = new FakeClock();
  const connector = new FakeConnector();
  const manager = new PoolManager<FakeLink>({ config: defaultPoolConfig(config), connect: connector.connect, clock, maintenanceIntervalMs: 0, ...options });
  return { manager, clock, connector };
}

/** Settles to 'pending' if the promise has not settled after the queued work ran. */
export async function state<T>(promise: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> {
  let result: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => (result = 'resolved'),
    () => (result = 'rejected'),
  );
  await flush();
  return result;
}
