/**
 * The configuration: every key, its type and its default, in one place.
 * docs/configuration.md documents each key; keep the two in step.
 */
import { z } from 'zod';
import { otelSchema } from '../otel/otel-config.js';
import { policiesSchema } from '../policy/policy-config.js';
import { parseUpstreamUrl, UpstreamUrlError } from '../proxy/upstream.js';
import { parseDuration } from './duration.js';

// Every error message says what is allowed; load.ts adds the key, where the
// value came from and the value itself.

const HOST_PORT = 'expected HOST:PORT such as 127.0.0.1:6432 (port 0 to 65535)';

/** `HOST:PORT`, `[IPv6]:PORT`; one message whatever is wrong with it. */
function isHostPort(value: string): boolean {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(value);
  return match !== null && Number(match[2]) <= 65535;
}

const hostPort = z.string({ error: HOST_PORT }).refine(isHostPort, { error: HOST_PORT });

function wholeNumber(min: number, max?: number) {
  const expected = max === undefined ? `expected a whole number of at least ${min}` : `expected a whole number from ${min} to ${max}`;
  const schema = z.number({ error: expected }).int({ error: expected }).min(min, { error: expected });
  return max === undefined ? schema : schema.max(max, { error: expected });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `expected one of ${values.join(', ')}` });
}

const DURATION = 'expected a duration such as 500ms, 30s, 5m, or a number of milliseconds';

/** A duration: a number of milliseconds or a string such as `500ms`, `30s`, `5m`. */
const duration = z.union([z.number(), z.string()], { error: DURATION }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: DURATION });
    return z.NEVER;
  }
  return ms;
});

const UPSTREAM_URL = 'postgres://[user[:password]@]host[:port][/database][?sslmode=disable|allow|prefer|require|verify-ca|verify-full]';

/** Checked here with the proxy's own parser, so a bad URL is a configuration error that names its source. */
const upstreamUrl = z.string({ error: `expected ${UPSTREAM_URL}` }).superRefine((value, ctx) => {
  if (value === '') return;
  try {
    parseUpstreamUrl(value);
  } catch (err) {
    if (!(err instanceof UpstreamUrlError)) throw err;
    // A message that already lists what is allowed needs no URL template.
    ctx.addIssue({ code: 'custom', message: err.message.includes('must be one of') ? err.message : `${err.message}; expected ${UPSTREAM_URL}` });
  }
});

const filePath = z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' }).nullable().default(null);

export const configSchema = z
  .object({
    /** Where clients connect. */
    listen: hostPort.default('127.0.0.1:6432'),
    /** The PostgreSQL server to proxy to; empty starts an embedded one. */
    upstream: upstreamUrl.default(''),
    /** Admin HTTP endpoint (metrics, health, sessions); `off` disables it. */
    http: z
      .string({ error: `${HOST_PORT}, or off` })
      .refine((v) => v === 'off' || isHostPort(v), { error: `${HOST_PORT}, or off` })
      .default('127.0.0.1:9930'),
    max_client_conn: wholeNumber(1).default(1000),
    /** Largest message accepted from either side, in bytes (PostgreSQL's own limit by default). */
    max_message_length: wholeNumber(1024, 0x3ffffffe).default(0x3ffffffe),
    connect_timeout: duration.default(10_000),
    /**
     * How sockets are read: `reused` reads into one buffer per connection
     * (fewer allocations; relies on undocumented Node.js socket internals),
     * `per_read` a fresh Buffer per read through Node's public stream API.
     */
    read_buffer: oneOf(['reused', 'per_read']).default('reused'),
    /** On SIGTERM/SIGINT, how long open transactions may run on before their connections are closed. */
    drain_timeout: duration.default(30_000),
    tls: z
      .object({
        /** PEM certificate and key files; both set enables TLS for clients. */
        cert: filePath,
        key: filePath,
      })
      .strict()
      .default({ cert: null, key: null })
      .refine((t) => (t.cert === null) === (t.key === null), { error: 'tls.cert and tls.key must be set together' }),
    embedded: z
      .object({
        /** Data directory; empty: a fresh directory under the OS temp dir, removed at exit. */
        data_dir: filePath,
        /** 0 picks a free port. */
        port: wholeNumber(0, 65535).default(0),
        user: z.string({ error: 'expected a user name' }).min(1, { error: 'expected a user name' }).default('postgres'),
        password: z.string({ error: 'expected a password' }).min(1, { error: 'expected a password' }).default('postgres'),
      })
      .strict()
      .default({ data_dir: null, port: 0, user: 'postgres', password: 'postgres' }),
    trace: z
      .object({
        /** `-` for stdout, a file path, or `off`. */
        output: z
          .string({ error: 'expected a file path, - (stdout) or off' })
          .min(1, { error: 'expected a file path, - (stdout) or off' })
          .default('-'),
        /** SQL text in traces: `full`, `redacted` (literals replaced by ?) or `off`. */
        sql: oneOf(['full', 'redacted', 'off']).default('full'),
        /** Longest SQL text (and error message) a trace record keeps, in characters; the rest is cut with a marker. */
        max_sql_length: wholeNumber(64).default(16384),
        /** Longest sqlcommenter tag key or value a trace record keeps, in characters. */
        max_tag_length: wholeNumber(64).default(512),
      })
      .strict()
      .default({ output: '-', sql: 'full', max_sql_length: 16384, max_tag_length: 512 }),
    log: z
      .object({
        level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({ level: 'info' }),
    /** Policies (docs/policies.md); absent or empty: no policies. */
    policies: policiesSchema.nullish().transform((v) => v ?? undefined),
    /** Prometheus metrics on the admin endpoint (docs/metrics.md). */
    metrics: z
      .object({
        /**
         * sqlcommenter `route` values that get their own `route` label;
         * every other route is counted as `other`, untagged requests as `none`.
         */
        routes: z.array(z.string().min(1)).default([]),
        /** Node.js process metrics (CPU, memory, event loop, GC) beside txproxy's own. */
        process: z.boolean().default(true),
      })
      .strict()
      .default({ routes: [], process: true }),
    /** The lock-wait sampler (docs/lock-monitor.md). */
    lock_monitor: z
      .object({
        enabled: z.boolean().default(true),
        /** A statement is looked at once it has run this long. */
        threshold: duration.default(200),
        /** Time between two samples while any statement runs past the threshold. */
        interval: duration.refine((ms) => ms >= 10, { message: 'must be at least 10ms' }).default(100),
      })
      .strict()
      .default({ enabled: true, threshold: 200, interval: 100 }),
    /** OpenTelemetry span export (docs/opentelemetry.md); on when an endpoint is set. */
    otel: otelSchema,
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
