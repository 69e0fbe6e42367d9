/**
 * The lock monitor's metrics: lock waits and what sampling them costs the
 * server, and deadlocks. Registered on the App's registry; the labels are
 * bounded (database, lock type, role, the sampler's query name).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class LockWaitMetrics {
  readonly waits: Counter<'database' | 'lock_type'>;
  readonly waitSeconds: Histogram<'database'>;
  readonly queries: Counter<'query'>;
  readonly querySeconds: Histogram<'query'>;

  constructor(registry: Registry, waitingSessions: () => number) {
    this.waits = new Counter({
      name: 'txproxy_lock_waits_total',
      help: 'Lock waits of proxied statements seen by the lock monitor, counted when they end.',
      labelNames: ['database', 'lock_type'],
      registers: [registry],
    });
    this.waitSeconds = new Histogram({
      name: 'txproxy_lock_wait_seconds',
      help: 'How long proxied statements waited for a lock.',
      labelNames: ['database'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    new Gauge({
      name: 'txproxy_lock_waiting_sessions',
      help: 'Client sessions whose statement waits for a lock now.',
      registers: [registry],
      collect() {
        this.set(waitingSessions());
      },
    });
    this.queries = new Counter({
      name: 'txproxy_lock_monitor_queries_total',
      help: "Queries the lock monitor ran on the server: 'activity' reads pg_stat_activity, 'waits' pg_locks and pg_blocking_pids.",
      labelNames: ['query'],
      registers: [registry],
    });
    this.querySeconds = new Histogram({
      name: 'txproxy_lock_monitor_query_seconds',
      help: "Time the lock monitor's own queries took, round trip included.",
      labelNames: ['query'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
  }

  /** One query of the sampler, failed or not: it cost the server either way. */
  query(name: string, seconds: number): void {
    this.queries.inc({ query: name });
    this.querySeconds.observe({ query: name }, seconds);
  }
}

export type DeadlockRole = 'victim' | 'participant';

export function deadlockCounter(registry: Registry): Counter<'database' | 'role'> {
  return new Counter({
    name: 'txproxy_deadlocks_total',
    help: 'Proxied sessions in a deadlock: the one PostgreSQL aborted (victim) and the others of the cycle (participant).',
    labelNames: ['database', 'role'],
    registers: [registry],
  });
}
