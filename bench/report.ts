/**
 * Turns the individual runs into one row per endpoint and workload (medians
 * over the rounds) and prints them as tables with the ratios that matter.
 */
import type { EndpointName } from './endpoints.js';
import { formatTarget, meetsTarget, ratiosOf, type Ratio } from './ratios.js';
import { clientsOf, type Workload } from './workloads.js';

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
  /** How long pgbench's clients took to log in; null when pgbench does not say. */
  connectMs: number | null;
  /** CPU time the proxy process used during the run; null for direct. */
  proxyCpuUs: number | null;
  proxyCpuUsPerTx: number | null;
  /** Of that, time in the proxy's own code, not in the kernel (the rest is the kernel's, on its sockets above all). */
  proxyUserCpuUsPerTx: number | null;
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
  /** pgbench's failed transactions, all rounds together. */
  failedTotal: number;
  cpuUsPerTxMedian: number | null;
  /** The user part of the CPU time, per transaction (median of the runs). */
  userCpuUsPerTxMedian: number | null;
  cpuUsPerRoundTrip: number | null;
  traceBytesPerTx: number | null;
}

export interface WorkloadSummary {
  workload: string;
  description: string;
  clients: number;
  /** Server connections the clients share, for the transaction-pool workloads. */
  poolSize: number | null;
  rows: SummaryRow[];
  /** Endpoints that cannot run this workload, and why. */
  skipped: Skip[];
  /** Runs that ended without a pgbench summary (pgbench or the proxy gave up). */
  aborted: Abort[];
  ratios: Ratio[];
  /** For a workload that must hold its clients without errors: whether each endpoint did. */
  held: Held[];
}

export interface Skip {
  workload: string;
  endpoint: EndpointName;
  reason: string;
}

export interface Abort {
  workload: string;
  endpoint: EndpointName;
  round: number;
  reason: string;
}

/** Whether an endpoint served every client of a workload: no failed transaction, no aborted run, at least one run. */
export interface Held {
  endpoint: EndpointName;
  runs: number;
  failedTransactions: number;
  abortedRuns: number;
  met: boolean;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function summarise(
  workloads: Workload[],
  endpoints: EndpointName[],
  runs: RunResult[],
  skipped: Skip[] = [],
  clients = 8,
  aborted: Abort[] = [],
): WorkloadSummary[] {
  return workloads.map((workload) => {
    const rows: SummaryRow[] = [];
    for (const endpoint of endpoints) {
      const mine = runs.filter((r) => r.workload === workload.name && r.endpoint === endpoint);
      if (mine.length === 0) continue;
      const tps = mine.map((r) => r.tps);
      const cpu = mine.map((r) => r.proxyCpuUsPerTx).filter((v): v is number => v !== null);
      const cpuPerTx = cpu.length > 0 ? median(cpu) : null;
      const user = mine.map((r) => r.proxyUserCpuUsPerTx).filter((v): v is number => v !== null);
      const traced = mine.filter((r) => r.traceBytes !== null && r.transactions > 0);
      rows.push({
        endpoint,
        runs: mine.length,
        tpsMedian: median(tps),
        tpsMin: Math.min(...tps),
        tpsMax: Math.max(...tps),
        latencyMsMedian: median(mine.map((r) => r.latencyAvgMs)),
        failedTotal: mine.reduce((sum, r) => sum + r.failed, 0),
        cpuUsPerTxMedian: cpuPerTx,
        userCpuUsPerTxMedian: user.length > 0 ? median(user) : null,
        cpuUsPerRoundTrip: cpuPerTx === null ? null : cpuPerTx / workload.roundTripsPerTx,
        traceBytesPerTx: traced.length > 0 ? median(traced.map((r) => r.traceBytes! / r.transactions)) : null,
      });
    }
    return {
      workload: workload.name,
      description: workload.description,
      clients: clientsOf(workload, clients),
      poolSize: workload.poolSize ?? null,
      rows,
      skipped: skipped.filter((s) => s.workload === workload.name),
      aborted: aborted.filter((a) => a.workload === workload.name),
      ratios: ratiosOf(workload, rows),
      held: workload.mustHoldWithoutErrors ? heldBy(workload, endpoints, rows, aborted) : [],
    };
  });
}

/** Every endpoint that ran `workload`, or tried to: what it failed, and whether that is nothing. */
function heldBy(workload: Workload, endpoints: EndpointName[], rows: SummaryRow[], aborted: Abort[]): Held[] {
  return endpoints.flatMap((endpoint) => {
    const row = rows.find((r) => r.endpoint === endpoint);
    const abortedRuns = aborted.filter((a) => a.workload === workload.name && a.endpoint === endpoint).length;
    if (!row && abortedRuns === 0) return [];
    const runs = row?.runs ?? 0;
    const failedTransactions = row?.failedTotal ?? 0;
    return [{ endpoint, runs, failedTransactions, abortedRuns, met: runs > 0 && failedTransactions === 0 && abortedRuns === 0 }];
  });
}

export function formatTables(summaries: WorkloadSummary[], header: { rounds: number; durationS: number }): string {
  const out: string[] = [];
  for (const s of summaries) {
    if (s.rows.length === 0 && s.skipped.length === 0) continue;
    const clients = s.poolSize === null ? `${s.clients} clients` : `${s.clients} clients on a pool of ${s.poolSize}`;
    out.push(`${s.workload}: ${s.description}, ${clients}, ${header.rounds} × ${header.durationS} s`);
    const table = [
      ['endpoint', 'TPS (median)', 'TPS min–max', 'latency ms', 'failed tx', 'proxy CPU µs/tx', 'of it user', 'µs/round trip'],
      ...s.rows.map((r) => [
        r.endpoint,
        r.tpsMedian.toFixed(0),
        `${r.tpsMin.toFixed(0)}–${r.tpsMax.toFixed(0)}`,
        r.latencyMsMedian.toFixed(3),
        String(r.failedTotal),
        r.cpuUsPerTxMedian === null ? '—' : r.cpuUsPerTxMedian.toFixed(1),
        r.userCpuUsPerTxMedian === null ? '—' : r.userCpuUsPerTxMedian.toFixed(1),
        r.cpuUsPerRoundTrip === null ? '—' : r.cpuUsPerRoundTrip.toFixed(1),
      ]),
    ];
    const width = Math.max(...[...table, ...s.skipped.map((skip) => [skip.endpoint])].map((row) => [...row[0]].length));
    out.push(...alignColumns(table, width).map((line) => '  ' + line));
    for (const skip of s.skipped) out.push(`  ${skip.endpoint.padEnd(width)}  skipped: ${skip.reason}`);
    for (const abort of s.aborted) out.push(`  ${abort.endpoint.padEnd(width)}  round ${abort.round} aborted: ${abort.reason.split('\n')[0]}`);
    for (const h of s.held) out.push(`  ${h.endpoint} held ${s.clients} clients: ${heldText(h)}`);
    out.push(...formatRatios(s.ratios).map((line) => '  ' + line));
    for (const r of s.rows) {
      if (r.traceBytesPerTx !== null) out.push(`  ${r.endpoint} trace written: ${r.traceBytesPerTx.toFixed(0)} bytes/tx`);
    }
    out.push('');
  }
  const targets = formatTargets(summaries);
  if (targets.length > 0) out.push('targets (ratios of medians, this run):', ...targets.map((line) => '  ' + line), '');
  return out.join('\n');
}

/** One line per subject: `txproxy TPS ratio: /direct 0.43  /pgbouncer 0.72 (target ≥ 0.90: met)   CPU/tx ratio: /pipe 2.29`. */
function formatRatios(ratios: Ratio[]): string[] {
  const subjects = [...new Set(ratios.map((r) => r.subject))];
  return subjects.map((subject) => {
    const part = (metric: Ratio['metric']) =>
      ratios
        .filter((r) => r.subject === subject && r.metric === metric)
        .map((r) => `/${r.baseline} ${r.value === null ? '—' : r.value.toFixed(2)}${r.target === null ? '' : ` (target ${formatTarget(r.target)}${verdict(r) && `: ${verdict(r)}`})`}`)
        .join('  ');
    const cpu = part('cpu');
    return `${subject} TPS ratio: ${part('tps')}${cpu === '' ? '' : `   CPU/tx ratio: ${cpu}`}`;
  });
}

function formatTargets(summaries: WorkloadSummary[]): string[] {
  const targeted = summaries.flatMap((s) => s.ratios.filter((r) => r.target !== null).map((r) => ({ workload: s.workload, ...r })));
  const rows = targeted.map((r) => [
    r.workload,
    `${r.subject} / ${r.baseline}`,
    r.metric === 'tps' ? 'TPS' : 'CPU/tx',
    r.value === null ? '—' : r.value.toFixed(2),
    `target ${formatTarget(r.target!)}`,
    verdict(r) || 'not measured',
  ]);
  // A workload that must hold its clients: the errors, whose target is none.
  const held = summaries.flatMap((s) =>
    s.held.map((h) => [s.workload, h.endpoint, 'errors', String(h.failedTransactions + h.abortedRuns), 'target 0', h.met ? 'met' : 'not met']),
  );
  return rows.length + held.length === 0 ? [] : alignColumns([...rows, ...held], 0, 3);
}

/** `0 failed transactions, 0 aborted runs in 3 runs: met`. */
function heldText(h: Held): string {
  return `${h.failedTransactions} failed transactions, ${h.abortedRuns} aborted runs in ${h.runs + h.abortedRuns} runs (target 0: ${h.met ? 'met' : 'not met'})`;
}

/** `met`, `not met`, or '' when there is no target or no value. */
function verdict(r: Ratio): string {
  const met = meetsTarget(r);
  return met === null ? '' : met ? 'met' : 'not met';
}

/** Left-aligns the first `leftColumns` columns (the first at least `firstWidth` wide), right-aligns the others. */
function alignColumns(rows: string[][], firstWidth = 0, leftColumns = 1): string[] {
  const widths = rows[0].map((_, i) => Math.max(i === 0 ? firstWidth : 0, ...rows.map((row) => [...row[i]].length)));
  return rows.map((row) => row.map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd());
}
