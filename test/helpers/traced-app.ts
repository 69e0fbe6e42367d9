/**
 * An application instrumented the way teams instrument theirs: the
 * OpenTelemetry Node SDK, and @opentelemetry/instrumentation-pg with
 * `addSqlCommenterCommentToQueries`, so every query node-postgres sends in a
 * span carries a sqlcommenter `traceparent` naming that query's span. It
 * exports to an OTLP receiver as service `shop`.
 */
import { createRequire } from 'node:module';
import { context, trace, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type pgTypes from 'pg';

export interface TracedApp {
  /** node-postgres, patched by the instrumentation. */
  pg: typeof pgTypes;
  /** Runs `fn` inside a new active span named `name`; resolves with its result and the span's ids. */
  inSpan<T>(name: string, fn: () => Promise<T>): Promise<{ result: T; traceId: string; spanId: string }>;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function startTracedApp(receiverUrl: string): TracedApp {
  const instrumentation = new PgInstrumentation({ addSqlCommenterCommentToQueries: true, requireParentSpan: true });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'shop' }),
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${receiverUrl}/v1/traces` }))],
  });
  provider.register();
  instrumentation.setTracerProvider(provider);
  instrumentation.enable();
  // Through require, which the instrumentation hooks: it patches pg's Client for every importer.
  const pg = createRequire(import.meta.url)('pg') as typeof pgTypes;
  const tracer = provider.getTracer('shop');
  return {
    pg,
    inSpan: (name, fn) =>
      tracer.startActiveSpan(name, async (span: Span) => {
        try {
          const result = await context.with(trace.setSpan(context.active(), span), fn);
          const { traceId, spanId } = span.spanContext();
          return { result, traceId, spanId };
        } finally {
          span.end();
        }
      }),
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      instrumentation.disable();
      await provider.shutdown();
    },
  };
}
