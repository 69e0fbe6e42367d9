/**
 * Turns the individual runs into one row per endpoint and workload (medians
 * over the rounds) and prints them as tables with the ratios that matter.
 */
import type { EndpointName } from './endpoints.js';
import type { Workload } from './workloads.js';

export interface RunResult {
  /** When the run started (ISO 8601) and the 1-minute load average then: for spotting runs disturbed by other work. */
  startedAt: string;
  loadAverage: number;
  workload: string;
  endpoint: EndpointName;
  round: number;
  tps: number;
  latencyAvgMs: number;
  transactions: number;
  failed: number;
  /** CPU time the proxy process used during the run; null for direct. */
  proxyCpuUs: number | null;
  proxyCpuUsPerTx: number | null;
  /** Bytes of trace txproxy wrote during the run (txproxy only). */
  traceBytes: number | null;
}

export interface SummaryRow {
  endpoint: EndpointName;
  runs: number;
  tpsMedian: number;
  tpsMin: number;
  tpsMax: number;
  latencyMsMedian: number;
  cpuUsPerTxMedian: number | null;
  cpuUsPerRoundTrip: number | null;
  traceBytesPerTx: number | null;
}

export interface WorkloadSummary {
  workload: string;
  description: string;
  rows: SummaryRow[];
  /** TPS of txproxy divided by that of the other endpoint; CPU per transaction likewise. */
  ratios: {
    tps: Partial<Record<'direct' | 'pipe' | 'pgbouncer', number>>;
    cpu: Partial<Record<'pipe' | 'pgbouncer', number>>;
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function summarise(workloads: Workload[], endpoints: EndpointName[], runs: RunResult[]): WorkloadSummary[] {
  return workloads.map((workload) => {
    const rows: SummaryRow[] = [];
    for (const endpoint of endpoints) {
      const mine = runs.filter((r) => r.workload === workload.name && r.endpoint === endpoint);
      if (mine.length === 0) continue;
      const tps = mine.map((r) => r.tps);
      const cpu = mine.map((r) => r.proxyCpuUsPerTx).filter((v): v is number => v !== null);
      const cpuPerTx = cpu.length > 0 ? median(cpu) : null;
      const traced = mine.filter((r) => r.traceBytes !== null && r.transactions > 0);
      rows.push({
        endpoint,
        runs: mine.length,
        tpsMedian: median(tps),
        tpsMin: Math.min(...tps),
        tpsMax: Math.max(...tps),
        latencyMsMedian: median(mine.map((r) => r.latencyAvgMs)),
        cpuUsPerTxMedian: cpuPerTx,
        cpuUsPerRoundTrip: cpuPerTx === null ? null : cpuPerTx / workload.roundTripsPerTx,
        traceBytesPerTx: traced.length > 0 ? median(traced.map((r) => r.traceBytes! / r.transactions)) : null,
      });
    }
    const row = (name: EndpointName) => rows.find((r) => r.endpoint === name);
    const txproxy = row('txproxy');
    const ratios: WorkloadSummary['ratios'] = { tps: {}, cpu: {} };
    if (txproxy) {
      for (const other of ['direct', 'pipe', 'pgbouncer'] as const) {
        const o = row(other);
        if (o && o.tpsMedian > 0) ratios.tps[other] = txproxy.tpsMedian / o.tpsMedian;
      }
      for (const other of ['pipe', 'pgbouncer'] as const) {
        const o = row(other);
        if (o?.cpuUsPerTxMedian && txproxy.cpuUsPerTxMedian !== null) ratios.cpu[other] = txproxy.cpuUsPerTxMedian / o.cpuUsPerTxMedian;
      }
    }
    return { workload: workload.name, description: workload.description, rows, ratios };
  });
}

export function formatTables(summaries: WorkloadSummary[], header: { clients: number; rounds: number; durationS: number }): string {
  const out: string[] = [];
  for (const s of summaries) {
    if (s.rows.length === 0) continue;
    out.push(`${s.workload}: ${s.description}, ${header.clients} clients, ${header.rounds} × ${header.durationS} s`);
    const table = [
      ['endpoint', 'TPS (median)', 'TPS min–max', 'latency ms', 'proxy CPU µs/tx', 'µs/round trip'],
      ...s.rows.map((r) => [
        r.endpoint,
        r.tpsMedian.toFixed(0),
        `${r.tpsMin.toFixed(0)}–${r.tpsMax.toFixed(0)}`,
        r.latencyMsMedian.toFixed(3),
        r.cpuUsPerTxMedian === null ? '—' : r.cpuUsPerTxMedian.toFixed(1),
        r.cpuUsPerRoundTrip === null ? '—' : r.cpuUsPerRoundTrip.toFixed(1),
      ]),
    ];
    out.push(...alignColumns(table).map((line) => '  ' + line));
    const ratio = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(2));
    if (s.rows.some((r) => r.endpoint === 'txproxy')) {
      out.push(
        `  txproxy TPS ratio: /direct ${ratio(s.ratios.tps.direct)}  /pgbouncer ${ratio(s.ratios.tps.pgbouncer)}  /pipe ${ratio(s.ratios.tps.pipe)}` +
          `   CPU/tx ratio: /pipe ${ratio(s.ratios.cpu.pipe)}  /pgbouncer ${ratio(s.ratios.cpu.pgbouncer)}`,
      );
      const trace = s.rows.find((r) => r.endpoint === 'txproxy')?.traceBytesPerTx;
      if (trace != null) out.push(`  txproxy trace written: ${trace.toFixed(0)} bytes/tx`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** Left-aligns the first column, right-aligns the others. */
function alignColumns(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => [...row[i]].length)));
  return rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
}
