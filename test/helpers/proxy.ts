/**
 * txproxy in the test process, listening on a free port, in front of a test
 * PostgreSQL; trace records and tracker events are kept in memory.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type tls from 'node:tls';
import pino, { type Logger } from 'pino';
import pg from 'pg';
import { App, type AppOptions } from '../../src/app.js';
import { parseSecret, type Secret } from '../../src/auth/userlist.js';
import { buildConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { PolicyViolationCounter } from '../../src/enforcement/policy-service.js';
import { parseUpstreamUrl } from '../../src/upstream/target.js';
import { MemoryTraceSink } from '../../src/trace/trace-sink.js';
import type { StatementRecord, TrackerListener, TransactionRecord } from '../../src/tracker/types.js';
import type { TestPostgres } from './postgres.js';

// Tests that start a proxy wait on it: they import eventually() from here.
export { eventually } from './deadlines.js';

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
  const pooled = pooledByEnvironment(postgres, overrides, extra.app?.userlist);
  const config = buildConfig({ listen: '127.0.0.1:0', http: 'off', drain_timeout: 2000, connect_timeout: 3000, ...pooled.overrides, ...overrides }, {}, {});
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
    ...(pooled.userlist === undefined ? {} : { userlist: pooled.userlist }),
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

/**
 * TXPROXY_TEST_POOL_MODE=session (or transaction) runs a test file's proxies pooled, unless
 * the test sets pool options of its own: txproxy logs clients in itself,
 * asking what the test server's pg_hba asks of local TCP clients (trust or
 * a password), and knows the test server's password.
 */
function pooledByEnvironment(
  postgres: TestPostgres,
  overrides: Partial<ConfigInput>,
  userlist: Map<string, Secret> | undefined,
): { overrides: Partial<ConfigInput>; userlist?: Map<string, Secret> } {
  const mode = process.env.TXPROXY_TEST_POOL_MODE;
  if (mode === undefined || mode === '' || mode === 'none' || overrides.pool !== undefined) return { overrides: {} };
  if (mode !== 'session' && mode !== 'transaction') throw new Error(`TXPROXY_TEST_POOL_MODE must be none, session or transaction, not ${mode}`);
  const users = new Map(userlist ?? []);
  if (!users.has(postgres.user)) users.set(postgres.user, parseSecret(postgres.password));
  return { overrides: { pool: { mode }, auth: { type: hbaMethodOf(postgres) } }, userlist: users };
}

/** The method of the test server's first pg_hba line for 127.0.0.1 (its clients and txproxy's alike). */
function hbaMethodOf(postgres: TestPostgres): 'trust' | 'md5' | 'scram-sha-256' {
  const hba = readFileSync(path.join(postgres.dataDir, 'pg_hba.conf'), 'utf8');
  for (const line of hba.split('\n')) {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    if (fields[0] !== 'host' || !(fields[3] === '127.0.0.1/32' || fields[3] === 'all')) continue;
    if (fields[1] !== 'all' || fields[2] !== 'all') continue;
    if (fields[4] === 'trust' || fields[4] === 'md5') return fields[4];
    return 'scram-sha-256';
  }
  return 'scram-sha-256';
}

