/**
 * The comparisons the tables print under each workload, and the targets
 * txproxy is measured against (a least TPS ratio, a most CPU ratio). A ratio is the subject's median over the
 * baseline's: for TPS below 1 the subject is slower, for CPU per
 * transaction above 1 it works harder.
 */
import type { EndpointName } from './endpoints.js';
import type { SummaryRow } from './report.js';
import type { Workload, WorkloadKind } from './workloads.js';

/** A bound on a ratio: at least this much TPS, at most this much CPU. */
export interface Target {
  bound: 'at least' | 'at most';
  value: number;
}

interface RatioSpec {
  subject: EndpointName;
  baseline: EndpointName;
  metric: 'tps' | 'cpu';
  /** The bound wanted, on workloads of the given kinds or names. */
  target?: Target & { on: (WorkloadKind | string)[] };
}

export interface Ratio {
  subject: EndpointName;
  baseline: EndpointName;
  metric: 'tps' | 'cpu';
  /** Null when the baseline did not run. */
  value: number | null;
  /** The bound wanted for this workload; null when there is none. */
  target: Target | null;
}

/** The workloads the production configuration is held to the pipe on. */
const PRODUCTION_BAR = ['select-simple', 'tpcb'];

/** In print order: grouped by subject, TPS before CPU. */
export const RATIO_SPECS: readonly RatioSpec[] = [
  { subject: 'txproxy', baseline: 'direct', metric: 'tps' },
  { subject: 'txproxy', baseline: 'pgbouncer', metric: 'tps' },
  { subject: 'txproxy', baseline: 'pipe', metric: 'tps' },
  // Every statement traced: the trace's cost on top of Node's socket I/O stays within a quarter.
  { subject: 'txproxy', baseline: 'pipe', metric: 'cpu', target: { bound: 'at most', value: 1.25, on: PRODUCTION_BAR } },
  { subject: 'txproxy', baseline: 'pgbouncer', metric: 'cpu' },
  // As run in production (tail-sampled trace, metrics, OpenTelemetry export): close to the bare pipe.
  { subject: 'txproxy-prod', baseline: 'pipe', metric: 'tps', target: { bound: 'at least', value: 0.95, on: PRODUCTION_BAR } },
  { subject: 'txproxy-prod', baseline: 'pgbouncer', metric: 'tps' },
  { subject: 'txproxy-prod', baseline: 'pipe', metric: 'cpu', target: { bound: 'at most', value: 1.1, on: PRODUCTION_BAR } },
  { subject: 'txproxy-prod', baseline: 'txproxy', metric: 'cpu' },
  // Session pooling: as fast as PgBouncer where pooling pays (a connection per transaction), and costing nothing where it does not.
  { subject: 'txproxy-pooled', baseline: 'pgbouncer', metric: 'tps', target: { bound: 'at least', value: 0.9, on: ['connect'] } },
  { subject: 'txproxy-pooled', baseline: 'txproxy', metric: 'tps', target: { bound: 'at least', value: 1.0, on: ['persistent'] } },
  { subject: 'txproxy-pooled', baseline: 'pgbouncer', metric: 'cpu' },
  { subject: 'txproxy-pooled', baseline: 'txproxy', metric: 'cpu' },
  // Transaction pooling: at least PgBouncer's transaction mode, 16 clients on a pool of 2. With -M prepared txproxy stands alone
  // (PgBouncer before 1.21 cannot run it), and pool4-select-200 is held to no errors rather than to a ratio (report.ts).
  { subject: 'txproxy-tx', baseline: 'pgbouncer-tx', metric: 'tps', target: { bound: 'at least', value: 1.0, on: ['pool2-select-simple', 'pool2-tpcb'] } },
  { subject: 'txproxy-tx', baseline: 'pgbouncer-tx', metric: 'cpu' },
  // The same pool as run in production (tail-sampled trace, metrics, OpenTelemetry export).
  { subject: 'txproxy-tx-prod', baseline: 'pgbouncer-tx', metric: 'tps', target: { bound: 'at least', value: 1.0, on: ['pool2-select-simple', 'pool2-tpcb'] } },
  { subject: 'txproxy-tx-prod', baseline: 'pgbouncer-tx', metric: 'cpu' },
  { subject: 'txproxy-tx-prod', baseline: 'txproxy-tx', metric: 'cpu' },
];

/** The ratios of every spec whose subject ran `workload`. */
export function ratiosOf(workload: Workload, rows: SummaryRow[]): Ratio[] {
  const row = (name: EndpointName) => rows.find((r) => r.endpoint === name);
  const ratios: Ratio[] = [];
  for (const spec of RATIO_SPECS) {
    const subject = row(spec.subject);
    if (!subject) continue;
    const baseline = row(spec.baseline);
    let value: number | null = null;
    if (spec.metric === 'tps' && baseline && baseline.tpsMedian > 0) value = subject.tpsMedian / baseline.tpsMedian;
    if (spec.metric === 'cpu' && baseline?.cpuUsPerTxMedian && subject.cpuUsPerTxMedian !== null) value = subject.cpuUsPerTxMedian / baseline.cpuUsPerTxMedian;
    // A CPU ratio against an endpoint without a proxy process (direct) means nothing: leave it out rather than print '—'.
    if (spec.metric === 'cpu' && baseline && baseline.cpuUsPerTxMedian === null) continue;
    const applies = spec.target && (spec.target.on.includes(workload.kind) || spec.target.on.includes(workload.name));
    const target = applies ? { bound: spec.target!.bound, value: spec.target!.value } : null;
    ratios.push({ subject: spec.subject, baseline: spec.baseline, metric: spec.metric, value, target });
  }
  return ratios;
}

/** Whether `ratio` keeps within its target; null when it has none or was not measured. */
export function meetsTarget(ratio: Ratio): boolean | null {
  if (ratio.value === null || ratio.target === null) return null;
  return ratio.target.bound === 'at least' ? ratio.value >= ratio.target.value : ratio.value <= ratio.target.value;
}

/** `≥ 0.95`, `≤ 1.10`. */
export function formatTarget(target: Target): string {
  return `${target.bound === 'at least' ? '≥' : '≤'} ${target.value.toFixed(2)}`;
}
