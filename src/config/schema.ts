/**
 * The configuration: every key, its type and its default, in one place.
 * docs/configuration.md documents each key; keep the two in step.
 */
import { z } from 'zod';
import { authSchema } from '../auth/auth-config.js';
import { poolSchema } from '../pool/pool-config.js';
import { otelSchema } from '../otel/otel-config.js';
import { policiesSchema } from '../policy/policy-config.js';
import { parseUpstreamUrl, UpstreamUrlError } from '../upstream/target.js';
import { DURATION, durationSchema } from './duration.js';

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


const duration = durationSchema;

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

const SAMPLE = 'expected a fraction from 0 to 1 (such as 0.01) or a percentage (such as 1%)';

/** A fraction from 0 to 1, or a percentage string such as `1%`. */
const fraction = z.union([z.number(), z.string()], { error: SAMPLE }).transform((value, ctx) => {
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(value) : null;
  const n = typeof value === 'number' ? value : match === null ? NaN : Number(match[1]) / (match[2] === '%' ? 100 : 1);
  if (!(n >= 0 && n <= 1)) {
    ctx.addIssue({ code: 'custom', message: SAMPLE });
    return z.NEVER;
  }
  return n;
});

const flag = z.boolean({ error: 'expected true or false' });

/** Tail sampling of the trace (docs/traces.md#tail-sampling-tracekeep). */
const traceKeep = z
  .object({
    /** Fraction of the transactions that no rule below keeps that is written anyway; 1 writes every transaction. */
    sample: fraction.default(1),
    /** Transactions lasting this long or longer are kept; null or `off`: none for being slow. */
    slower_than: z
      .union([z.literal('off'), z.null(), duration], { error: `${DURATION}, or off` })
      .transform((v) => (v === 'off' ? null : v))
      .default(500),
    /** Transactions with an error, that failed, or whose client went away. */
    errors: flag.default(true),
    /** Transactions in a deadlock, the victim's and the other processes'. */
    deadlocks: flag.default(true),
    /** Transactions that waited for a lock (the lock monitor found the wait). */
    lock_waits: flag.default(true),
    /** Transactions a policy refused, warned about, rewrote or limited. */
    policies: flag.default(true),
    /** A request's autocommit transactions with writes, from the second on (and the first). */
    not_atomic: flag.default(true),
    /** Records held per transaction before it is decided early. */
    max_held: wholeNumber(16).default(1000),
  })
  .strict();

const TRACE_KEEP_DEFAULTS = {
  sample: 1,
  slower_than: 500,
  errors: true,
  deadlocks: true,
  lock_waits: true,
  policies: true,
  not_atomic: true,
  max_held: 1000,
};

const filePath = z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' }).nullable().default(null);

export const ADMIN_TOKEN = 'expected at least 16 visible ASCII characters without spaces, such as the output of `openssl rand -hex 32`';

/** An admin bearer token: long enough not to be guessed, and sendable as it is in an HTTP header. */
export const adminToken = z
  .string({ error: ADMIN_TOKEN })
  .refine((v) => /^[\x21-\x7e]{16,}$/.test(v), { error: ADMIN_TOKEN });

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
    /** Connections still in their startup handshake at once; more are refused with 53300 (they hold a descriptor each). */
    max_pending_handshakes: wholeNumber(1).default(100),
    /** How long a client may take to send its startup packet (PostgreSQL's authentication_timeout). */
    handshake_timeout: duration.default(60_000),
    /** Largest message accepted from either side, in bytes (PostgreSQL's own limit by default). */
    max_message_length: wholeNumber(1024, 0x3ffffffe).default(0x3ffffffe),
    connect_timeout: duration.default(10_000),
    /**
     * After a client stopped sending (Terminate, half-close, vanished) while
     * the server still runs what it sent outside a transaction block: how
     * long txproxy lets the server finish, relaying and tracing its answers.
     */
    settle_timeout: duration.default(60_000),
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
        /** `ndjson` records, a `transcript` for people, or `auto`: the transcript when the output is stdout on a terminal. */
        format: oneOf(['auto', 'ndjson', 'transcript']).default('auto'),
        keep: traceKeep.default(TRACE_KEEP_DEFAULTS),
      })
      .strict()
      .default({ output: '-', sql: 'full', max_sql_length: 16384, max_tag_length: 512, format: 'auto', keep: TRACE_KEEP_DEFAULTS }),
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
    /** Who may use the admin endpoint and how much it may cost (docs/admin-api.md). */
    admin: z
      .object({
        /** Bearer token every route but /healthz and /readyz requires; null: no authentication. */
        token: adminToken.nullable().default(null),
        /** A file holding the token (read at start), so the secret stays out of configs. */
        token_file: filePath,
        /** Clients allowed on /events at once; more get 503. */
        max_event_subscribers: wholeNumber(1).default(16),
      })
      .strict()
      .default({ token: null, token_file: null, max_event_subscribers: 16 })
      .refine((a) => a.token === null || a.token_file === null, { error: 'set admin.token or admin.token_file, not both', path: ['token'] }),
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
    /** Server connection pooling (docs/pooling.md); `mode: none` (the default) relays each client to its own connection. */
    pool: poolSchema.prefault({}),
    /** How clients log in to txproxy when it pools (docs/pooling.md). */
    auth: authSchema.prefault({}),
    /** OpenTelemetry span export (docs/opentelemetry.md); on when an endpoint is set. */
    otel: otelSchema,
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
