/**
 * txproxy in the test process, listening on a free port, in front of a test
 * PostgreSQL; trace records and tracker events are kept in memory.
 */
import type tls from 'node:tls';
import pino, { type Logger } from 'pino';
import pg from 'pg';
import { App, type AppOptions } from '../../src/app.js';
import { buildConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { PolicyViolationCounter } from '../../src/enforcement/policy-service.js';
import { parseUpstreamUrl } from '../../src/upstream/target.js';
import { MemoryTraceSink } from '../../src/trace/trace-sink.js';
import type { StatementRecord, TrackerListener, TransactionRecord } from '../../src/tracker/types.js';
import type { TestPostgres } from './postgres.js';

export interface TestProxy {
  app: App;
  port: number;
  trace: MemoryTraceSink;
  statements: StatementRecord[];
  transactions: TransactionRecord[];
  /** Connection settings for clients going through txproxy. */
  connection(overrides?: Partial<pg.ClientConfig>): pg.ClientConfig;
  url(user?: string, password?: string, database?: string): string;
  /** A connected node-postgres client through txproxy. */
  client(overrides?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  /** Resolves when `n` transactions have ended (they are reported after the client sees ReadyForQuery). */
  waitForTransactions(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startProxy(
  postgres: TestPostgres,
  overrides: Partial<ConfigInput> = {},
  extra: {
    upstream?: string;
    listeners?: TrackerListener[];
    /** TLS for clients (what main.ts builds from tls.cert / tls.key). */
    tlsContext?: tls.SecureContext;
    /** Where txproxy logs; silent unless TXPROXY_TEST_LOG names a level. */
    log?: Logger;
    app?: Partial<AppOptions>;
    policyViolations?: PolicyViolationCounter;
  } = {},
): Promise<TestProxy> {
  const config = buildConfig({ listen: '127.0.0.1:0', http: 'off', drain_timeout: 2000, connect_timeout: 3000, ...overrides }, {}, {});
  const trace = new MemoryTraceSink();
  const statements: StatementRecord[] = [];
  const transactions: TransactionRecord[] = [];
  const recorder: TrackerListener = {
    statementFinished: (_s, st) => statements.push(st),
    transactionEnded: (_s, tx) => transactions.push(tx),
  };
  const target = parseUpstreamUrl(extra.upstream ?? `${postgres.url}?sslmode=disable`);
  const log = extra.log ?? pino({ level: process.env.TXPROXY_TEST_LOG ?? 'silent' });
  const app = await App.start({
    config,
    target,
    log,
    trace,
    tlsContext: extra.tlsContext ?? null,
    ...extra.app,
    listeners: [recorder, ...(extra.listeners ?? [])],
    policyViolations: extra.policyViolations,
  });
  const port = app.port;
  const connection = (o: Partial<pg.ClientConfig> = {}): pg.ClientConfig => ({
    host: '127.0.0.1',
    port,
    user: postgres.user,
    password: postgres.password,
    database: 'postgres',
    ...o,
  });
  return {
    app,
    port,
    trace,
    statements,
    transactions,
    connection,
    url: (user = postgres.user, password = postgres.password, database = 'postgres') =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    async client(o = {}) {
      const client = new pg.Client(connection(o));
      await client.connect();
      return client;
    },
    async waitForTransactions(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (transactions.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} transactions, saw ${transactions.length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    stop: () => app.stop(500),
  };
}

/** Polls `check` until it returns true or the time is up. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
