/**
 * OpenTelemetry span export, put together from the `otel:` configuration:
 * the SDK's tracer provider with txproxy's resource, the OTLP/HTTP exporter
 * (protobuf or JSON), the bounded batch queue, its metrics, the tracker
 * listener that makes spans and the trace sink that adds events to them.
 *
 * Nothing of this exists when export is off: App asks `startOtelExport()`,
 * which then returns null and no listener is registered, so a statement
 * costs nothing more than without OpenTelemetry.
 */
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { TraceSink } from '../trace/trace-sink.js';
import type { TraceText } from '../trace/trace-text.js';
import { BoundedBatchProcessor } from './bounded-batch-processor.js';
import { OTEL_DEFAULTS, tracesUrl, type OtelConfig } from './otel-config.js';
import { recordEventSink } from './record-events.js';
import type { ServerAddress } from './span-attributes.js';
import { SPAN_LIMITS, TransactionSpans, type ExemplarSink } from './transaction-spans.js';

export interface OtelExportOptions {
  config: OtelConfig;
  server: ServerAddress;
  text: TraceText;
  registry: Registry;
  log: Logger;
  exemplars?: ExemplarSink;
  /** txproxy's version, for the instrumentation scope. */
  version?: string;
}

export interface OtelExport {
  /** Makes the spans: a tracker listener. */
  readonly spans: TransactionSpans;
  /** Adds lock waits, deadlocks and policy decisions to them: attach it to the trace bus. */
  readonly recordSink: TraceSink;
  /** Sends what is queued and stops. */
  shutdown(): Promise<void>;
}

/** Null when export is off (no endpoint configured). */
export function startOtelExport(options: OtelExportOptions): OtelExport | null {
  const { config, registry } = options;
  const url = tracesUrl(config);
  if (url === null) return null;
  const log = options.log.child({ component: 'otel' });

  const dropped = new Counter({
    name: 'txproxy_otel_spans_dropped_total',
    help: 'Spans not delivered to the OpenTelemetry receiver, by reason: queue_full (the export queue was full), export_failed (the receiver refused or did not answer in time).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const queueFull = dropped.labels('queue_full');
  const exportFailed = dropped.labels('export_failed');
  const exported = new Counter({
    name: 'txproxy_otel_spans_exported_total',
    help: 'Spans the OpenTelemetry receiver accepted.',
    registers: [registry],
  });
  let lastFailureLog = 0;
  let lastBuildErrorLog = 0;
  const processor = new BoundedBatchProcessor(
    createExporter(config, url),
    {
      maxQueueSize: config.max_queue_size,
      maxExportBatchSize: config.max_export_batch_size,
      scheduleDelayMs: config.schedule_delay,
      exportTimeoutMs: config.export_timeout,
    },
    {
      dropped(reason, spans) {
        (reason === 'queue_full' ? queueFull : exportFailed).inc(spans);
        // A receiver that is down fails every batch: say so once a minute, not per batch.
        const now = Date.now();
        if (reason === 'export_failed' && now - lastFailureLog >= 60_000) {
          lastFailureLog = now;
          log.warn({ url, spans }, 'span export failed');
        }
      },
      exported: (spans) => exported.inc(spans),
    },
  );
  new Gauge({
    name: 'txproxy_otel_queued_spans',
    help: 'Spans waiting in the export queue now.',
    registers: [registry],
    collect() {
      this.set(processor.queued);
    },
  });

  const provider = new BasicTracerProvider({
    resource: resourceOf(config),
    // txproxy decides itself which transactions get spans (the client's sampled flag, `untraced`): every span it starts is kept.
    sampler: new AlwaysOnSampler(),
    spanLimits: SPAN_LIMITS,
    spanProcessors: [processor],
  });
  const spans = new TransactionSpans({
    tracer: provider.getTracer('txproxy', options.version),
    server: options.server,
    text: options.text,
    statementSpans: config.statement_spans,
    slowStatementMs: config.slow_statement,
    maxStatementSpans: config.max_statement_spans,
    untraced: config.untraced,
    untracedRatio: config.untraced_ratio,
    exemplars: options.exemplars,
    onError: (err) => {
      const now = Date.now();
      if (now - lastBuildErrorLog < 60_000) return;
      lastBuildErrorLog = now;
      log.warn({ err: err.message }, 'transaction span not built');
    },
  });
  log.info({ url, protocol: config.protocol, statement_spans: config.statement_spans, untraced: config.untraced }, 'span export on');
  return {
    spans,
    recordSink: recordEventSink(spans),
    shutdown: () => provider.shutdown(),
  };
}

function createExporter(config: OtelConfig, url: string): SpanExporter {
  const options = { url, headers: config.headers, timeoutMillis: config.timeout };
  return config.protocol === 'http/json' ? new JsonExporter(options) : new ProtobufExporter(options);
}

/** service.name: `otel.service_name` (OTEL_SERVICE_NAME) unless only OTEL_RESOURCE_ATTRIBUTES names one. */
function resourceOf(config: OtelConfig) {
  const attributes: Record<string, string> = { ...config.resource_attributes };
  if (config.service_name !== OTEL_DEFAULTS.service_name || attributes[ATTR_SERVICE_NAME] === undefined) {
    attributes[ATTR_SERVICE_NAME] = config.service_name;
  }
  return defaultResource().merge(resourceFromAttributes(attributes));
}
