/**
 * The trace output's own metric: records it could not write. Read from the
 * writer's counts when Prometheus scrapes, so writing a record costs nothing
 * more.
 */
import { Counter, type Registry } from 'prom-client';
import { TRACE_DROP_REASONS } from './buffered-writer.js';
import type { TraceSink } from './trace-sink.js';

export function registerTraceMetrics(registry: Registry, sink: TraceSink): void {
  const dropped = sink.droppedRecords;
  if (dropped === undefined) return;
  new Counter({
    name: 'txproxy_trace_records_dropped_total',
    help: "Trace records not written: 'backlog' when the output fell too far behind, 'write_error' when a write failed (a full disk).",
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const counts = dropped.call(sink);
      this.reset();
      for (const reason of TRACE_DROP_REASONS) this.inc({ reason }, counts[reason]);
    },
  });
}

/**
 * Tail sampling's decisions (`trace.keep`): transactions whose records the
 * trace kept and dropped. Only registered when sampling is on; the
 * transaction metrics count every transaction either way.
 */
export function registerSamplingMetrics(registry: Registry, counts: () => Readonly<{ kept: number; dropped: number }> | null): void {
  new Counter({
    name: 'txproxy_trace_transactions_total',
    help: "Transactions tail sampling (trace.keep) decided on: 'kept' were written to the trace, 'dropped' were left out.",
    labelNames: ['decision'],
    registers: [registry],
    collect() {
      const now = counts();
      this.reset();
      this.inc({ decision: 'kept' }, now?.kept ?? 0);
      this.inc({ decision: 'dropped' }, now?.dropped ?? 0);
    },
  });
}
