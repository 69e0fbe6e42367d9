/**
 * The ways pgbench reaches PostgreSQL: directly, through a bare Node.js pipe
 * proxy, through txproxy (relaying, session-pooling, transaction-pooling;
 * tracing everything, or configured as in production) and through PgBouncer (session and transaction pooling). Each proxy runs
 * as its own process so its CPU time can be read from /proc. ENDPOINTS is
 * the list: one line per endpoint, in table order.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../src/embedded/embedded-postgres.js';
import type { Child, ChildRegistry } from './children.js';
import type { ReceiverStats } from './otlp-receiver.js';
import { findPgbouncer, pgbouncerVersion, preparesAcrossConnections, unprivilegedUser, writePgbouncerConfig } from './pgbouncer.js';
import { writePooledTxproxyConfig } from './txproxy-config.js';
import { TRANSACTION_POOL, usesPreparedStatements, type DatabasePool, type Workload, type WorkloadKind } from './workloads.js';

/** How an endpoint gives clients server connections: one each (`none`), lent per session, or lent per transaction. */
export type Pooling = 'none' | 'session' | 'transaction';

export interface EndpointContext {
  children: ChildRegistry;
  server: { host: string; port: number; user: string; password: string; database: string };
  /** The compiled output directory (dist/). */
  distDir: string;
  /** Scratch space: trace files, configuration files. */
  tempDir: string;
  /** `--clients`: the session pools hold one server connection per client, and some to spare. */
  clients: number;
  /** The most clients any workload connects at once. */
  maxClients: number;
  /** Databases whose pools have a size of their own (the pooling endpoints configure them). */
  databasePools: DatabasePool[];
}

/** A running endpoint, as its start function returns it. */
export interface Started {
  host: string;
  port: number;
  /** The proxy process, whose CPU time is measured; null for direct. */
  child: Child | null;
  /** What runs there, for the results file. */
  description: string;
  /** The file txproxy traces to, emptied before each run; null when not tracing. */
  traceFile: string | null;
  /** Why this endpoint cannot run `workload` (reported in the table), or null when it can. */
  cannotRun?: (workload: Workload) => string | null;
  /** What the OTLP receiver this endpoint exports to has had so far; absent when it does not export. */
  otlpReceived?: () => Promise<ReceiverStats>;
}

/** An endpoint that is not there to measure, and why: PgBouncer not installed. */
export interface Unavailable {
  unavailable: string;
}

interface EndpointSpec {
  name: string;
  pooling: Pooling;
  start: (ctx: EndpointContext) => Promise<Started | Unavailable>;
}

export const ENDPOINTS = [
  { name: 'direct', pooling: 'none', start: async (ctx) => direct(ctx) },
  { name: 'pipe', pooling: 'none', start: (ctx) => startPipeProxy(ctx) },
  { name: 'txproxy', pooling: 'none', start: (ctx) => startTxproxy(ctx, 'txproxy', { mode: 'none' }) },
  { name: 'txproxy-prod', pooling: 'none', start: (ctx) => startTxproxyProduction(ctx, 'txproxy-prod', { mode: 'none' }) },
  { name: 'txproxy-pooled', pooling: 'session', start: (ctx) => startTxproxy(ctx, 'txproxy-pooled', { mode: 'session', poolSize: sessionPoolSize(ctx) }) },
  { name: 'txproxy-tx', pooling: 'transaction', start: (ctx) => startTxproxy(ctx, 'txproxy-tx', { mode: 'transaction', poolSize: TRANSACTION_POOL.poolSize }) },
  {
    name: 'txproxy-tx-prod',
    pooling: 'transaction',
    start: (ctx) => startTxproxyProduction(ctx, 'txproxy-tx-prod', { mode: 'transaction', poolSize: TRANSACTION_POOL.poolSize }),
  },
  { name: 'pgbouncer', pooling: 'session', start: (ctx) => startPgbouncer(ctx, 'pgbouncer', { mode: 'session', poolSize: sessionPoolSize(ctx) }) },
  { name: 'pgbouncer-tx', pooling: 'transaction', start: (ctx) => startPgbouncer(ctx, 'pgbouncer-tx', { mode: 'transaction', poolSize: TRANSACTION_POOL.poolSize }) },
] as const satisfies readonly EndpointSpec[];

export type EndpointName = (typeof ENDPOINTS)[number]['name'];
export const ENDPOINT_NAMES: readonly EndpointName[] = ENDPOINTS.map((e) => e.name);

export interface Endpoint extends Started {
  name: EndpointName;
  pooling: Pooling;
}

/**
 * Whether an endpoint of `pooling` takes part in workloads of `kind`. A
 * transaction pool has fewer server connections than the other workloads
 * have clients, and the transaction-pool workloads have more clients than a
 * session pool sized for `--clients` would hold.
 */
export function takesPart(pooling: Pooling, kind: WorkloadKind): boolean {
  return (pooling === 'transaction') === (kind === 'transaction-pool');
}

/** A session pool: a server connection per client, and two to spare for links still being reset when the next client comes. */
function sessionPoolSize(ctx: EndpointContext): number {
  return ctx.clients + 2;
}

const START_TIMEOUT_MS = 15_000;

function direct(ctx: EndpointContext): Started {
  return { host: ctx.server.host, port: ctx.server.port, child: null, description: 'PostgreSQL itself', traceFile: null };
}

async function startPipeProxy(ctx: EndpointContext): Promise<Started> {
  const script = path.join(ctx.distDir, 'bench', 'pipe-proxy.js');
  const child = ctx.children.spawn('pipe proxy', process.execPath, [script, ctx.server.host, String(ctx.server.port)]);
  const [, port] = await child.waitForLine(/^listening (\d+)$/, START_TIMEOUT_MS);
  return { host: '127.0.0.1', port: Number(port), child, description: `Node.js ${process.version} socket.pipe() proxy`, traceFile: null };
}

type TxproxyPooling = { mode: 'none' } | { mode: 'session' | 'transaction'; poolSize: number };

/** Settings on top of the default configuration, for the production-like endpoint. */
interface TxproxyExtras {
  env: Record<string, string>;
  description: string;
  otlpReceived: () => Promise<ReceiverStats>;
}

/**
 * txproxy as a team would run it in production: metrics and the admin
 * endpoint on, the trace tail-sampled (failures, lock waits, deadlocks, slow
 * and policy-touched transactions kept by the default `trace.keep` rules,
 * and 1 % of the rest), and OpenTelemetry export on to a local OTLP/HTTP
 * receiver. `otel.untraced` stays at its default (`off`): pgbench's
 * statements carry no traceparent, so txproxy looks for one in each and
 * makes no span; the receiver's counts show what was exported all the same.
 */
async function startTxproxyProduction(ctx: EndpointContext, name: string, pooling: TxproxyPooling): Promise<Started> {
  const script = path.join(ctx.distDir, 'bench', 'otlp-receiver.js');
  const receiver = ctx.children.spawn('OTLP receiver', process.execPath, [script]);
  const [, port] = await receiver.waitForLine(/^listening (\d+)$/, START_TIMEOUT_MS);
  const endpoint = `http://127.0.0.1:${port}`;
  return startTxproxy(ctx, name, pooling, {
    env: { TXPROXY_TRACE_KEEP_SAMPLE: '0.01', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint },
    description: `trace tail-sampled (trace.keep.sample 0.01), OpenTelemetry export to ${endpoint} (otel.untraced off)`,
    otlpReceived: async () => (await fetch(`${endpoint}/stats`)).json() as Promise<ReceiverStats>,
  });
}

/**
 * txproxy as deployed by default (config/txproxy.yaml): tracing every
 * statement and transaction to a file, metrics and the admin endpoint on
 * (on a free port). When it pools, it runs with that configuration and the
 * pool on top (bench/txproxy-config.ts): it logs clients in with SCRAM from
 * an auth file holding the server's password, and takes as many clients as
 * the largest workload has, as PgBouncer here does.
 */
async function startTxproxy(ctx: EndpointContext, name: string, pooling: TxproxyPooling, extras?: TxproxyExtras): Promise<Started> {
  const main = path.join(ctx.distDir, 'src', 'main.js');
  const upstream = `postgres://${ctx.server.host}:${ctx.server.port}/${ctx.server.database}?sslmode=disable`;
  const traceFile = path.join(ctx.tempDir, `${name}-trace.ndjson`);
  // TXPROXY_* and OTEL_* variables from the caller's shell would change what is measured.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TXPROXY_') && !key.startsWith('OTEL_')));
  Object.assign(env, extras?.env);
  const args = [main, '--listen', '127.0.0.1:0', '--upstream', upstream, '--http', '127.0.0.1:0', '--trace', traceFile, '--log-level', 'warn'];
  if (pooling.mode === 'none') {
    env.TXPROXY_POOL_MODE = 'none';
  } else {
    const authFile = path.join(ctx.tempDir, `${name}-users.txt`);
    const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
    writeFileSync(authFile, `${quote(ctx.server.user)} ${quote(ctx.server.password)}\n`, { mode: 0o600 });
    const config = writePooledTxproxyConfig(path.join(ctx.tempDir, `${name}.yaml`), path.join(ctx.distDir, '..', 'config', 'txproxy.yaml'), {
      mode: pooling.mode,
      poolSize: pooling.poolSize,
      databasePools: ctx.databasePools,
      authFile,
      maxClients: ctx.maxClients,
    });
    args.push('--config', config);
  }
  const child = ctx.children.spawn(name, process.execPath, args, { env });
  const [, port] = await child.waitForLine(/^txproxy listening on \S+?:(\d+),/, START_TIMEOUT_MS);
  const mode =
    pooling.mode === 'none'
      ? 'pool.mode none'
      : `pool.mode ${pooling.mode}, default_pool_size ${pooling.poolSize}${databasePoolsText(ctx.databasePools)}, max_client_conn ${ctx.maxClients + 10}, SCRAM auth file`;
  return {
    host: '127.0.0.1',
    port: Number(port),
    child,
    description: `txproxy (${path.relative(process.cwd(), main)}), ${mode}, ${extras?.description ?? 'every statement traced to a file'}, metrics on`,
    traceFile,
    ...(extras && { otlpReceived: extras.otlpReceived }),
  };
}

async function startPgbouncer(ctx: EndpointContext, name: string, pooling: { mode: 'session' | 'transaction'; poolSize: number }): Promise<Started | Unavailable> {
  const binary = findPgbouncer();
  if (binary === null) return { unavailable: 'PgBouncer is not installed (no pgbouncer on PATH or in /usr/sbin). Install it with: apt-get install -y pgbouncer' };
  const version = pgbouncerVersion(binary);
  const prepares = pooling.mode === 'session' || preparesAcrossConnections(version);
  const port = await freePort();
  const ini = writePgbouncerConfig({
    dir: path.join(ctx.tempDir, name),
    listenPort: port,
    upstreamHost: ctx.server.host,
    upstreamPort: ctx.server.port,
    database: ctx.server.database,
    databasePools: ctx.databasePools,
    user: ctx.server.user,
    password: ctx.server.password,
    poolMode: pooling.mode,
    poolSize: pooling.poolSize,
    maxClients: ctx.maxClients,
    maxPreparedStatements: pooling.mode === 'transaction' && prepares ? 200 : null,
  });
  const child = ctx.children.spawn(name, binary, [ini], { ...unprivilegedUser() });
  await waitForPort(child, '127.0.0.1', port);
  return {
    host: '127.0.0.1',
    port,
    child,
    description: `${version}, pool_mode=${pooling.mode}, default_pool_size=${pooling.poolSize}${databasePoolsText(ctx.databasePools)}, max_client_conn=${ctx.maxClients + 10}`,
    traceFile: null,
    cannotRun: (workload) =>
      !prepares && usesPreparedStatements(workload)
        ? `${version} in transaction mode cannot run -M prepared: a statement prepared on one server connection is missing on the next (max_prepared_statements came in 1.21)`
        : null,
  };
}

/** `, pool_size 4 for bench_pool4`, or nothing. */
function databasePoolsText(pools: readonly DatabasePool[]): string {
  return pools.map((p) => `, pool_size ${p.poolSize} for ${p.database}`).join('');
}

/** Polls until something accepts connections on host:port, failing early if `child` exits. */
async function waitForPort(child: Child, host: string, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (!child.running) throw new Error(`${child.name} exited before listening on ${host}:${port}:\n${child.tail()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${child.name} is not listening on ${host}:${port} after ${START_TIMEOUT_MS} ms:\n${child.tail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
