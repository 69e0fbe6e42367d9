/**
 * The comparisons the tables print under each workload, and the targets
 * txproxy is measured against. A ratio is the subject's median over the
 * baseline's: for TPS below 1 the subject is slower, for CPU per
 * transaction above 1 it works harder.
 */
import type { EndpointName } from './endpoints.js';
import type { SummaryRow } from './report.js';
import type { Workload, WorkloadKind } from './workloads.js';

interface RatioSpec {
  subject: EndpointName;
  baseline: EndpointName;
  metric: 'tps' | 'cpu';
  /** The least TPS ratio wanted, on workloads of the given kinds. */
  target?: { atLeast: number; on: WorkloadKind[] };
}

export interface Ratio {
  subject: EndpointName;
  baseline: EndpointName;
  metric: 'tps' | 'cpu';
  /** Null when the baseline did not run. */
  value: number | null;
  /** The least TPS ratio wanted for this workload; null when there is none. */
  target: number | null;
}

/** In print order: grouped by subject, TPS before CPU. */
export const RATIO_SPECS: readonly RatioSpec[] = [
  { subject: 'txproxy', baseline: 'direct', metric: 'tps' },
  { subject: 'txproxy', baseline: 'pgbouncer', metric: 'tps' },
  { subject: 'txproxy', baseline: 'pipe', metric: 'tps' },
  { subject: 'txproxy', baseline: 'pipe', metric: 'cpu' },
  { subject: 'txproxy', baseline: 'pgbouncer', metric: 'cpu' },
  // Session pooling: as fast as PgBouncer where pooling pays (a connection per transaction), and costing nothing where it does not.
  { subject: 'txproxy-pooled', baseline: 'pgbouncer', metric: 'tps', target: { atLeast: 0.9, on: ['connect'] } },
  { subject: 'txproxy-pooled', baseline: 'txproxy', metric: 'tps', target: { atLeast: 1.0, on: ['persistent'] } },
  { subject: 'txproxy-pooled', baseline: 'pgbouncer', metric: 'cpu' },
  { subject: 'txproxy-pooled', baseline: 'txproxy', metric: 'cpu' },
  { subject: 'txproxy-tx', baseline: 'pgbouncer-tx', metric: 'tps', target: { atLeast: 1.0, on: ['transaction-pool'] } },
  { subject: 'txproxy-tx', baseline: 'pgbouncer-tx', metric: 'cpu' },
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
    const target = spec.target?.on.includes(workload.kind) ? spec.target.atLeast : null;
    ratios.push({ subject: spec.subject, baseline: spec.baseline, metric: spec.metric, value, target });
  }
  return ratios;
}
