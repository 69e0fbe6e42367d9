/**
 * What pgbench runs. The select-only workloads are one round trip per
 * transaction, so they show the proxy's per-message cost most plainly;
 * TPC-B adds explicit transactions (BEGIN … END) with writes, which is what
 * the tracker and the trace do the most work for.
 */
export interface Workload {
  name: string;
  /** pgbench arguments selecting the script and protocol. */
  args: string[];
  /** Client/server round trips per transaction, to turn CPU per transaction into CPU per round trip. */
  roundTripsPerTx: number;
  /** Writes: pgbench_history grows and branches/tellers bloat, so each run starts from a vacuumed state. */
  writes: boolean;
  description: string;
}

export const WORKLOADS: readonly Workload[] = [
  { name: 'select-simple', args: ['-S', '-M', 'simple'], roundTripsPerTx: 1, writes: false, description: 'select-only, simple protocol (-S -M simple)' },
  { name: 'select-extended', args: ['-S', '-M', 'extended'], roundTripsPerTx: 1, writes: false, description: 'select-only, extended protocol (-S -M extended)' },
  { name: 'select-prepared', args: ['-S', '-M', 'prepared'], roundTripsPerTx: 1, writes: false, description: 'select-only, prepared statements (-S -M prepared)' },
  // BEGIN; UPDATE accounts; SELECT; UPDATE tellers; UPDATE branches; INSERT history; END.
  { name: 'tpcb', args: ['-M', 'simple'], roundTripsPerTx: 7, writes: true, description: 'TPC-B (default script, simple protocol)' },
];
