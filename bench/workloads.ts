/**
 * What pgbench runs. The select-only workloads are one round trip per
 * transaction, so they show the proxy's per-message cost most plainly;
 * TPC-B adds explicit transactions (BEGIN … END) with writes, which is what
 * the tracker and the trace do the most work for. `select-connect` opens a
 * connection per transaction, as a web framework does that connects per
 * request (Django's default CONN_MAX_AGE = 0): there a pool saves the
 * server a backend start per transaction. The `pool2-` workloads put more
 * clients on fewer server connections than transaction pooling needs;
 * `pool4-select-200` puts many clients on a few connections, and is there to
 * show that they are all served without a failed transaction.
 */

/**
 * Which endpoints a workload runs on: `persistent` and `connect` on every
 * endpoint that gives each client a server connection of its own for its
 * session (or none at all); `transaction-pool` only on endpoints that lend a
 * server connection per transaction, since it has more clients than their
 * pool has connections.
 */
export type WorkloadKind = 'persistent' | 'connect' | 'transaction-pool';

export interface Workload {
  name: string;
  kind: WorkloadKind;
  /** pgbench arguments selecting the script and protocol. */
  args: string[];
  /** Clients for this workload whatever `--clients` says; undefined: `--clients`. */
  clients?: number;
  /** Server connections the clients share (transaction pooling); undefined: one each. */
  poolSize?: number;
  /**
   * The database pgbench connects to, when the workload needs a pool size of
   * its own: the endpoints give this database's pool `poolSize` connections
   * (a per-database pool size, which PgBouncer has in every version; its
   * per-user one came in 1.23). The harness creates it as a copy of the
   * pgbench tables. Undefined: the server's database.
   */
  database?: string;
  /** What the workload shows is that every client is served: a failed transaction or an aborted run misses its target. */
  mustHoldWithoutErrors?: boolean;
  /** Client/server round trips per transaction, to turn CPU per transaction into CPU per round trip. */
  roundTripsPerTx: number;
  /** Writes: pgbench_history grows and branches/tellers bloat, so each run starts from a vacuumed state. */
  writes: boolean;
  description: string;
}

/** Transaction pooling's case: 16 clients sharing 2 server connections. */
export const TRANSACTION_POOL = { clients: 16, poolSize: 2 } as const;

/** Many clients on a few server connections: 200 clients sharing 4, in a database of their own to give them that pool size. */
export const CROWDED_POOL = { clients: 200, poolSize: 4, database: 'bench_pool4' } as const;

export const WORKLOADS: readonly Workload[] = [
  { name: 'select-simple', kind: 'persistent', args: ['-S', '-M', 'simple'], roundTripsPerTx: 1, writes: false, description: 'select-only, simple protocol (-S -M simple)' },
  { name: 'select-extended', kind: 'persistent', args: ['-S', '-M', 'extended'], roundTripsPerTx: 1, writes: false, description: 'select-only, extended protocol (-S -M extended)' },
  { name: 'select-prepared', kind: 'persistent', args: ['-S', '-M', 'prepared'], roundTripsPerTx: 1, writes: false, description: 'select-only, prepared statements (-S -M prepared)' },
  // BEGIN; UPDATE accounts; SELECT; UPDATE tellers; UPDATE branches; INSERT history; END.
  { name: 'tpcb', kind: 'persistent', args: ['-M', 'simple'], roundTripsPerTx: 7, writes: true, description: 'TPC-B (default script, simple protocol)' },
  // A connection per transaction: startup, authentication, one query, Terminate.
  { name: 'select-connect', kind: 'connect', args: ['-S', '-M', 'simple', '-C'], roundTripsPerTx: 1, writes: false, description: 'select-only, a new connection per transaction (-S -C -M simple)' },
  {
    name: 'pool2-select-simple',
    kind: 'transaction-pool',
    args: ['-S', '-M', 'simple'],
    ...TRANSACTION_POOL,
    roundTripsPerTx: 1,
    writes: false,
    description: 'select-only, simple protocol (-S -M simple)',
  },
  {
    name: 'pool2-select-prepared',
    kind: 'transaction-pool',
    args: ['-S', '-M', 'prepared'],
    ...TRANSACTION_POOL,
    roundTripsPerTx: 1,
    writes: false,
    description: 'select-only, prepared statements (-S -M prepared)',
  },
  {
    name: 'pool2-tpcb',
    kind: 'transaction-pool',
    args: ['-M', 'simple'],
    ...TRANSACTION_POOL,
    roundTripsPerTx: 7,
    writes: true,
    description: 'TPC-B (default script, simple protocol)',
  },
  {
    name: 'pool4-select-200',
    kind: 'transaction-pool',
    args: ['-S', '-M', 'simple'],
    ...CROWDED_POOL,
    mustHoldWithoutErrors: true,
    roundTripsPerTx: 1,
    writes: false,
    description: 'select-only, simple protocol (-S -M simple)',
  },
];

/** The databases with a pool size of their own that `workloads` connect to, for the endpoints to configure. */
export function databasePools(workloads: readonly Workload[]): DatabasePool[] {
  const pools = new Map<string, number>();
  for (const w of workloads) if (w.database !== undefined && w.poolSize !== undefined) pools.set(w.database, w.poolSize);
  return [...pools].map(([database, poolSize]) => ({ database, poolSize }));
}

export interface DatabasePool {
  database: string;
  poolSize: number;
}

/** pgbench clients for `workload` when `--clients` is `clients`. */
export function clientsOf(workload: Workload, clients: number): number {
  return workload.clients ?? clients;
}

/** Prepared statements live on one server connection: what transaction pooling must carry across connections. */
export function usesPreparedStatements(workload: Workload): boolean {
  const mode = workload.args.indexOf('-M');
  return mode >= 0 && workload.args[mode + 1] === 'prepared';
}
