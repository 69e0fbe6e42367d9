/**
 * The lock-wait sampler (DESIGN §8).
 *
 * Every `interval` it looks, in memory, for proxied statements that have
 * run longer than `threshold`. Only if there are any does it ask the server
 * (one side connection, see side-connection.ts): which of their backends
 * wait for a lock, and for those, on what and behind whom. No statement past
 * the threshold: no query at all.
 *
 * A wait is identified by session, statement and the server's `waitstart`;
 * it ends when the statement finishes (the exact moment), or when a sample
 * no longer sees it (then at the midpoint between the last sample that saw
 * it and the first that did not). Its start is the server's `waitstart`
 * moved onto txproxy's clock by the offset measured with each sample, so a
 * server whose clock differs from ours still gives true durations.
 *
 * When a wait ends its time is added to the statement and its transaction
 * (`pg.lock_wait_ms`, `lock_wait_ms`), counted, and written as a `lock_wait`
 * trace record. This listener must run before the trace writer sees
 * `statementFinished`, so the statement's record already carries the wait.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { UpstreamTarget } from '../upstream/target.js';
import type { TraceBus } from '../trace/trace-sink.js';
import type { TraceText } from '../trace/trace-text.js';
import type { SessionInfo, StatementRecord, TrackerListener } from '../tracker/types.js';
import { wallClock } from '../tracker/clock.js';
import { attribute, type SessionDirectory, type TrackedSession } from './attribution.js';
import { ACTIVITY_SQL, VERSION_SQL, waitsSql, type ActivityRow, type WaitRow } from './lock-queries.js';
import { LockWaitMetrics } from './lock-metrics.js';
import type { LockWaitView } from '../admin/sessions-view.js';
import { lockWaitRecord, lockWaitView, type Blocker, type LockWait } from './lock-wait.js';
import { SideConnection } from './side-connection.js';

export type { LockWaitView } from '../admin/sessions-view.js';

export interface LockMonitorOptions {
  /** A statement is sampled once it has run this long, ms. */
  thresholdMs: number;
  /** Pause between two samples, ms. */
  intervalMs: number;
  target: UpstreamTarget;
  connectTimeoutMs: number;
  sessions: SessionDirectory;
  trace: TraceBus;
  traceText: TraceText;
  registry: Registry;
  log: Logger;
}

/** A statement past the threshold, as found when a sample began. */
interface Candidate {
  session: TrackedSession;
  statement: StatementRecord;
}

export const LOCK_MONITOR_APPLICATION_NAME = 'txproxy lock monitor';

export class LockMonitor implements TrackerListener {
  private readonly connection: SideConnection;
  private readonly metrics: LockWaitMetrics;
  private readonly log: Logger;
  /** Open waits by session id: a session's backend waits for one lock at a time. */
  private readonly waits = new Map<string, LockWait>();
  /** The backend_start of each session's backend, once sampled: a pid alone may name a later backend. */
  private readonly backendStarts = new WeakMap<SessionInfo, string>();
  /** The last sample that saw a statement running but not waiting (start estimate without waitstart). */
  private readonly clearSince = new WeakMap<StatementRecord, number>();
  /** Server clock minus txproxy's clock, ms, as of the last sample. */
  private clockOffset = 0;
  private waitsText: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly options: LockMonitorOptions) {
    this.log = options.log.child({ component: 'lock-monitor' });
    this.metrics = new LockWaitMetrics(options.registry, () => this.waits.size);
    this.connection = new SideConnection({
      target: options.target,
      applicationName: LOCK_MONITOR_APPLICATION_NAME,
      connectTimeoutMs: options.connectTimeoutMs,
      log: this.log,
      onQuery: (name, seconds) => this.metrics.query(name, seconds),
    });
  }

  start(): void {
    if (this.timer !== null || this.stopped) return;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.sampling;
    await this.connection.close();
  }

  /** The wait of a session now, for the admin API; null when it waits for nothing. */
  readonly lockWaitOf = (sessionId: string): LockWaitView | null => {
    const wait = this.waits.get(sessionId);
    return wait === undefined ? null : lockWaitView(wait, wallClock.now());
  };

  // ------------------------------------------------------ tracker events

  statementFinished(session: SessionInfo, statement: StatementRecord): void {
    if (this.waits.size === 0) return;
    const wait = this.waits.get(session.id);
    // It ended when its statement did, on the statement's own clock: the wait fits in the statement.
    if (wait !== undefined && wait.statement === statement) this.end(wait, statement.startedAt + statement.durationMs);
  }

  sessionEnded(session: SessionInfo): void {
    if (this.waits.size === 0) return;
    const wait = this.waits.get(session.id);
    if (wait !== undefined) this.end(wait, wallClock.now());
  }

  // ------------------------------------------------------------ sampling

  private schedule(): void {
    this.timer = setTimeout(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.sampling = this.sample().catch((err: Error) => this.log.warn({ err: err.message }, 'lock monitor sample failed'));
    await this.sampling;
    this.sampling = null;
    if (!this.stopped) this.schedule();
  }

  private longRunning(): Candidate[] {
    const now = performance.now();
    const candidates: Candidate[] = [];
    for (const session of this.options.sessions.sessions()) {
      if (session.state !== 'ready' || session.info.backendPid === 0) continue;
      const statement = session.tracker.activeStatement;
      if (statement !== null && statement.seq > 0 && now - statement.startMono >= this.options.thresholdMs) {
        candidates.push({ session, statement });
      }
    }
    return candidates;
  }

  private async sample(): Promise<void> {
    const candidates = this.longRunning();
    if (candidates.length === 0) return;
    const sent = wallClock.now();
    const activity = await this.connection.query<ActivityRow>('activity', ACTIVITY_SQL, [candidates.map(pidOf)]);
    if (activity === null) return;
    const at = (sent + wallClock.now()) / 2;
    if (activity.length > 0) this.clockOffset = activity[0].server_ms - at;
    const rows = new Map(activity.map((row) => [row.pid, row]));
    const waiting: Candidate[] = [];
    for (const candidate of candidates) {
      if (!stillRunning(candidate)) continue;
      const row = rows.get(pidOf(candidate));
      if (row !== undefined) this.backendStarts.set(candidate.session.info, row.backend_start);
      if (row?.lock_wait === true) waiting.push(candidate);
      else this.notWaiting(candidate, at);
    }
    if (waiting.length > 0) await this.sampleWaits(waiting);
  }

  private async sampleWaits(waiting: Candidate[]): Promise<void> {
    if (this.waitsText === null) {
      const version = await this.connection.query<{ version: number }>('version', VERSION_SQL, []);
      if (version === null) return;
      this.waitsText = waitsSql(version[0].version);
    }
    const sent = wallClock.now();
    const rows = await this.connection.query<WaitRow>('waits', this.waitsText, [waiting.map(pidOf)]);
    if (rows === null) return;
    const at = (sent + wallClock.now()) / 2;
    const byPid = new Map<number, WaitRow>();
    for (const row of rows) if (!byPid.has(row.pid)) byPid.set(row.pid, row);
    for (const candidate of waiting) {
      if (!stillRunning(candidate)) continue;
      const row = byPid.get(pidOf(candidate));
      // No ungranted lock left: granted between the two queries.
      if (row === undefined) this.notWaiting(candidate, at);
      else this.seenWaiting(candidate, row, at);
    }
  }

  private notWaiting(candidate: Candidate, at: number): void {
    this.clearSince.set(candidate.statement, at);
    const wait = this.waits.get(candidate.session.info.id);
    if (wait !== undefined) this.end(wait, (wait.lastSeen + at) / 2);
  }

  private seenWaiting({ session, statement }: Candidate, row: WaitRow, at: number): void {
    const serverStart = row.waitstart_ms;
    const estimate = serverStart !== null ? serverStart - this.clockOffset : (this.clearSince.get(statement) ?? statement.startedAt);
    // The server began waiting after the statement was sent and before this sample.
    const start = Math.min(Math.max(estimate, statement.startedAt), at);
    let wait = this.waits.get(session.info.id);
    if (wait !== undefined && !isSameWait(wait, statement, row)) {
      // The statement got that lock and now waits for another one.
      this.end(wait, Math.max(wait.lastSeen, Math.min((wait.lastSeen + at) / 2, start)));
      wait = undefined;
    }
    if (wait === undefined) {
      wait = { session, statement, serverStart, start, lastSeen: at, lockType: row.locktype, mode: row.mode, relation: row.relation, blockers: new Map() };
      this.waits.set(session.info.id, wait);
    } else if (wait.serverStart === null && serverStart !== null) {
      wait.serverStart = serverStart;
      wait.start = start;
    }
    wait.lastSeen = at;
    wait.relation ??= row.relation;
    this.noteBlockers(wait, row);
  }

  private noteBlockers(wait: LockWait, row: WaitRow): void {
    for (const pid of row.blocking) {
      const activity = row.blockers.find((b) => b.pid === pid) ?? null;
      const backendStart = activity?.backend_start ?? null;
      let owner = this.options.sessions.byBackendPid(pid);
      const known = owner !== undefined ? this.backendStarts.get(owner.info) : undefined;
      // A pid we once sampled for a session but now with another backend_start is not that session's backend.
      if (owner !== undefined && known !== undefined && backendStart !== null && known !== backendStart) owner = undefined;
      const blocker: Blocker = {
        pid,
        backendStart,
        session: owner !== undefined ? attribute(owner) : null,
        applicationName: activity?.application_name ?? null,
        state: activity?.state ?? null,
        query: activity?.query ?? null,
      };
      // The latest snapshot of a blocker replaces the earlier one: its transaction ran on.
      wait.blockers.set(`${pid}@${backendStart}`, blocker);
    }
  }

  private end(wait: LockWait, end: number): void {
    this.waits.delete(wait.session.info.id);
    const durationMs = Math.max(0, end - wait.start);
    const { session, statement } = wait;
    session.tracker.addLockWait(durationMs, statement);
    this.metrics.waits.inc({ database: session.info.database, lock_type: wait.lockType });
    this.metrics.waitSeconds.observe({ database: session.info.database }, durationMs / 1000);
    if (this.options.trace.active) this.options.trace.write(lockWaitRecord(wait, end, durationMs, this.options.traceText));
  }
}

function pidOf(candidate: Candidate): number {
  return candidate.session.info.backendPid;
}

/** The statement is still the one its session runs (a sample's answer may arrive after it finished). */
function stillRunning({ session, statement }: Candidate): boolean {
  return session.state === 'ready' && session.tracker.activeStatement === statement;
}

function isSameWait(wait: LockWait, statement: StatementRecord, row: WaitRow): boolean {
  if (wait.statement !== statement || wait.lockType !== row.locktype || wait.mode !== row.mode) return false;
  return wait.serverStart === null || row.waitstart_ms === null || wait.serverStart === row.waitstart_ms;
}
