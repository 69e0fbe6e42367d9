/**
 * The pools' Prometheus metrics (docs/metrics.md, docs/pooling.md). Gauges
 * are read from the pools when Prometheus scrapes; counters and the wait
 * histogram are cells each pool keeps, so an update is one addition.
 */
import { Gauge, type Registry } from 'prom-client';
import { CounterFamily, HistogramFamily } from '../metrics/metric-cells.js';
import type { PoolKey } from './pool-link.js';
import type { PoolObserver } from './pool-types.js';
import type { Pool } from './pool.js';

/** Seconds: no wait at all up to query_wait_timeout's default. */
export const POOL_WAIT_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const CLIENT_STATES = ['active', 'waiting'] as const;
const SERVER_STATES = ['active', 'idle', 'used', 'tested', 'login'] as const;

export class PoolMetrics {
  private readonly wait: HistogramFamily;
  private readonly connects: CounterFamily;
  private readonly timeouts: CounterFamily;
  private readonly closes: CounterFamily;

  constructor(registry: Registry, pools: () => Iterable<Pick<Pool, 'key' | 'snapshot'>>) {
    new Gauge({
      name: 'txproxy_pool_clients',
      help: 'Clients of each pool: holding a server connection (active) or waiting for one (waiting).',
      labelNames: ['database', 'user', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of pools()) {
          const { clients } = pool.snapshot();
          for (const state of CLIENT_STATES) this.set({ ...pool.key, state }, clients[state]);
        }
      },
    });
    new Gauge({
      name: 'txproxy_pool_servers',
      help: 'Server connections of each pool: lent (active), ready (idle), due a check (used), running the reset or check query (tested), logging in (login).',
      labelNames: ['database', 'user', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of pools()) {
          const { servers } = pool.snapshot();
          for (const state of SERVER_STATES) this.set({ ...pool.key, state }, servers[state]);
        }
      },
    });
    this.wait = new HistogramFamily(registry, {
      name: 'txproxy_pool_wait_seconds',
      help: 'How long clients waited for a server connection, for those that got one.',
      labelNames: ['database', 'user'],
      buckets: POOL_WAIT_BUCKETS,
    });
    this.connects = new CounterFamily(registry, {
      name: 'txproxy_pool_server_connects_total',
      help: 'Server connections the pools opened, by outcome (ok, error: could not connect or log in).',
      labelNames: ['database', 'user', 'outcome'],
    });
    this.timeouts = new CounterFamily(registry, {
      name: 'txproxy_pool_wait_timeouts_total',
      help: 'Clients refused after waiting query_wait_timeout for a server connection.',
      labelNames: ['database', 'user'],
    });
    this.closes = new CounterFamily(registry, {
      name: 'txproxy_pool_server_closes_total',
      help: 'Server connections the pools closed, by reason (dirty, died, lifetime, idle_timeout, reset_failed, check_failed, reserve, resized, evicted, shutdown).',
      labelNames: ['database', 'user', 'reason'],
    });
  }

  /** The observer of one pool, holding its cells. */
  observer(key: PoolKey): PoolObserver {
    const { database, user } = key;
    const wait = this.wait.cell(database, user);
    const connected = this.connects.cell(database, user, 'ok');
    const failed = this.connects.cell(database, user, 'error');
    const timeouts = this.timeouts.cell(database, user);
    return {
      waited: (ms) => this.wait.observe(wait, ms / 1000),
      connected: (ok) => (ok ? connected : failed).value++,
      waitTimedOut: () => timeouts.value++,
      linkClosed: (reason) => this.closes.cell(database, user, reason).value++,
    };
  }
}
