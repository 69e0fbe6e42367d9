/**
 * The `otel:` section of the configuration: OpenTelemetry span export
 * (docs/opentelemetry.md documents every key; keep the two in step), and
 * the standard `OTEL_*` environment variables that set its keys.
 *
 * Export is on when an endpoint is set, so `OTEL_EXPORTER_OTLP_ENDPOINT`
 * alone turns it on, as it does for any OpenTelemetry SDK.
 */
import { z } from 'zod';
import { parseDuration } from '../config/duration.js';

export const OTEL_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtelProtocol = (typeof OTEL_PROTOCOLS)[number];
export const STATEMENT_SPANS = ['all', 'slow', 'none'] as const;
export type StatementSpans = (typeof STATEMENT_SPANS)[number];
export const UNTRACED = ['off', 'sampled', 'root'] as const;
export type Untraced = (typeof UNTRACED)[number];

/**
 * `OTEL_*` variables and the key each one sets. The signal-specific
 * `…_TRACES_…` ones come after the general ones: later wins, as the
 * OpenTelemetry specification says.
 */
export const OTEL_ENV_KEYS: Record<string, string> = {
  OTEL_EXPORTER_OTLP_ENDPOINT: 'otel.endpoint',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'otel.traces_endpoint',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'otel.protocol',
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'otel.protocol',
  OTEL_EXPORTER_OTLP_HEADERS: 'otel.headers',
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'otel.headers',
  OTEL_EXPORTER_OTLP_TIMEOUT: 'otel.timeout',
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: 'otel.timeout',
  OTEL_SERVICE_NAME: 'otel.service_name',
  OTEL_RESOURCE_ATTRIBUTES: 'otel.resource_attributes',
  OTEL_BSP_MAX_QUEUE_SIZE: 'otel.max_queue_size',
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 'otel.max_export_batch_size',
  OTEL_BSP_SCHEDULE_DELAY: 'otel.schedule_delay',
  OTEL_BSP_EXPORT_TIMEOUT: 'otel.export_timeout',
};

const KEY_VALUES = "expected a mapping, or text of key=value pairs separated by commas (W3C baggage form, values percent-encoded)";

/**
 * `key1=value1,key2=value2` as OTEL_EXPORTER_OTLP_HEADERS and
 * OTEL_RESOURCE_ATTRIBUTES write them (values percent-encoded); null when
 * malformed.
 */
export function parseKeyValues(text: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    const key = part.slice(0, eq).trim();
    if (key === '') return null;
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return null;
    }
  }
  return out;
}

const keyValues = z
  .union([z.string(), z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))], { error: KEY_VALUES })
  .transform((value, ctx) => {
    if (typeof value !== 'string') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
    const parsed = parseKeyValues(value);
    if (parsed === null) {
      ctx.addIssue({ code: 'custom', message: KEY_VALUES });
      return z.NEVER;
    }
    return parsed;
  });

/** A whole number, also from the text of an environment variable. */
function count(min: number, max: number) {
  const expected = `expected a whole number from ${min} to ${max}`;
  return z.union([z.number(), z.string()], { error: expected }).transform((value, ctx) => {
    const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: expected });
      return z.NEVER;
    }
    return n;
  });
}

const DURATION = 'expected a duration such as 500ms, 30s, 5m, or a number of milliseconds';
const duration = z.union([z.number(), z.string()], { error: DURATION }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: DURATION });
    return z.NEVER;
  }
  return ms;
});

const RATIO = 'expected a fraction from 0 to 1, such as 0.01';
const ratio = z.union([z.number(), z.string()], { error: RATIO }).transform((value, ctx) => {
  const n = typeof value === 'number' ? value : /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0 && n <= 1)) {
    ctx.addIssue({ code: 'custom', message: RATIO });
    return z.NEVER;
  }
  return n;
});

const URL_EXPECTED = 'expected an http:// or https:// URL, or empty for no export';
const url = z.string({ error: URL_EXPECTED }).refine((value) => value === '' || /^https?:\/\/[^\s/]+/i.test(value), { error: URL_EXPECTED });

const PROTOCOL_EXPECTED = `expected one of ${OTEL_PROTOCOLS.join(', ')} (txproxy exports over OTLP/HTTP; gRPC is not supported)`;

export const OTEL_DEFAULTS = {
  endpoint: '',
  traces_endpoint: '',
  protocol: 'http/protobuf' as OtelProtocol,
  headers: {} as Record<string, string>,
  timeout: 10_000,
  service_name: 'txproxy',
  resource_attributes: {} as Record<string, string>,
  statement_spans: 'all' as StatementSpans,
  slow_statement: 100,
  max_statement_spans: 1000,
  untraced: 'off' as Untraced,
  untraced_ratio: 0.01,
  max_queue_size: 2048,
  max_export_batch_size: 512,
  schedule_delay: 5000,
  export_timeout: 30_000,
};

export const otelSchema = z
  .object({
    /** Base URL of an OTLP/HTTP receiver; spans go to `<endpoint>/v1/traces`. Empty: no export. */
    endpoint: url.default(OTEL_DEFAULTS.endpoint),
    /** The full URL for spans, when it is not `<endpoint>/v1/traces`; set alone, it turns export on too. */
    traces_endpoint: url.default(OTEL_DEFAULTS.traces_endpoint),
    protocol: z.enum(OTEL_PROTOCOLS, { error: PROTOCOL_EXPECTED }).default(OTEL_DEFAULTS.protocol),
    /** HTTP headers sent with every export (authentication tokens, tenant ids). */
    headers: keyValues.default(OTEL_DEFAULTS.headers),
    /** How long one export request may take. */
    timeout: duration.default(OTEL_DEFAULTS.timeout),
    service_name: z.string({ error: 'expected a service name' }).min(1, { error: 'expected a service name' }).default(OTEL_DEFAULTS.service_name),
    /** More resource attributes (`deployment.environment.name`, `service.version`, …). */
    resource_attributes: keyValues.default(OTEL_DEFAULTS.resource_attributes),
    /** Child spans per statement: every one, only slow/failed/lock-waiting ones, or none. */
    statement_spans: z.enum(STATEMENT_SPANS, { error: `expected one of ${STATEMENT_SPANS.join(', ')}` }).default(OTEL_DEFAULTS.statement_spans),
    /** With `statement_spans: slow`, a statement gets a span from this duration on. */
    slow_statement: duration.default(OTEL_DEFAULTS.slow_statement),
    /** At most this many statement spans per transaction; the rest are counted on the transaction span. */
    max_statement_spans: count(0, 100_000).default(OTEL_DEFAULTS.max_statement_spans),
    /** Transactions without a traceparent: no span, a sampled fraction as root spans, or all as root spans. */
    untraced: z.enum(UNTRACED, { error: `expected one of ${UNTRACED.join(', ')}` }).default(OTEL_DEFAULTS.untraced),
    /** With `untraced: sampled`, the fraction of untraced transactions exported. */
    untraced_ratio: ratio.default(OTEL_DEFAULTS.untraced_ratio),
    /** Spans waiting for export; past it new spans are dropped and counted. */
    max_queue_size: count(1, 1_000_000).default(OTEL_DEFAULTS.max_queue_size),
    max_export_batch_size: count(1, 1_000_000).default(OTEL_DEFAULTS.max_export_batch_size),
    /** Longest wait before queued spans are sent. */
    schedule_delay: duration.default(OTEL_DEFAULTS.schedule_delay),
    /** How long one batch may take to export, retries included. */
    export_timeout: duration.default(OTEL_DEFAULTS.export_timeout),
  })
  .strict()
  .default(OTEL_DEFAULTS)
  .refine((o) => o.max_export_batch_size <= o.max_queue_size, {
    error: 'otel.max_export_batch_size must not exceed otel.max_queue_size',
    path: ['max_export_batch_size'],
  });

export type OtelConfig = z.output<typeof otelSchema>;

/** Where spans go; null when export is off. */
export function tracesUrl(config: OtelConfig): string | null {
  if (config.traces_endpoint !== '') return config.traces_endpoint;
  if (config.endpoint === '') return null;
  return config.endpoint.replace(/\/+$/, '') + '/v1/traces';
}
