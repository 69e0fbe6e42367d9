/**
 * The configuration: every key, its type and its default, in one place.
 * docs/configuration.md documents each key; keep the two in step.
 */
import { z } from 'zod';
import { policiesSchema } from '../policy/policy-config.js';
import { parseDuration } from './duration.js';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, { message: 'expected HOST:PORT, e.g. 127.0.0.1:6432' })
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, { message: 'port must be at most 65535' });

/** A duration: a number of milliseconds or a string such as `500ms`, `30s`, `5m`. */
const duration = z.union([z.number().nonnegative(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 500ms, 30s, 5m or a number of milliseconds' });
    return z.NEVER;
  }
  return ms;
});

const upstreamUrl = z
  .string()
  .refine((v) => v === '' || /^postgres(ql)?:\/\//.test(v), { message: 'expected postgres://[user[:password]@]host[:port][/database][?sslmode=…]' });

export const configSchema = z
  .object({
    /** Where clients connect. */
    listen: hostPort.default('127.0.0.1:6432'),
    /** The PostgreSQL server to proxy to; empty starts an embedded one. */
    upstream: upstreamUrl.default(''),
    /** Admin HTTP endpoint (metrics, health, sessions); `off` disables it. */
    http: z.union([z.literal('off'), hostPort]).default('127.0.0.1:9930'),
    max_client_conn: z.number().int().positive().default(1000),
    /** Largest message accepted from either side, in bytes (PostgreSQL's own limit by default). */
    max_message_length: z.number().int().min(1024).max(0x3ffffffe).default(0x3ffffffe),
    connect_timeout: duration.default(10_000),
    /** On SIGTERM/SIGINT, how long open transactions may run on before their connections are closed. */
    drain_timeout: duration.default(30_000),
    tls: z
      .object({
        /** PEM certificate and key files; both set enables TLS for clients. */
        cert: z.string().nullable().default(null),
        key: z.string().nullable().default(null),
      })
      .strict()
      .default({ cert: null, key: null })
      .refine((t) => (t.cert === null) === (t.key === null), { message: 'tls.cert and tls.key must be set together' }),
    embedded: z
      .object({
        /** Data directory; empty: a fresh directory under the OS temp dir, removed at exit. */
        data_dir: z.string().nullable().default(null),
        /** 0 picks a free port. */
        port: z.number().int().min(0).max(65535).default(0),
        user: z.string().min(1).default('postgres'),
        password: z.string().min(1).default('postgres'),
      })
      .strict()
      .default({ data_dir: null, port: 0, user: 'postgres', password: 'postgres' }),
    trace: z
      .object({
        /** `-` for stdout, a file path, or `off`. */
        output: z.string().min(1).default('-'),
        /** SQL text in traces: `full`, `redacted` (literals replaced by ?) or `off`. */
        sql: z.enum(['full', 'redacted', 'off']).default('full'),
      })
      .strict()
      .default({ output: '-', sql: 'full' }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
