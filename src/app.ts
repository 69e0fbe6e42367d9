/**
 * Wires txproxy together from a validated Config: the proxy listener, the
 * tracker's consumers (trace writer, metrics, …), the admin HTTP endpoint
 * and their lifecycles. It touches no process-wide state (env, signals,
 * argv): main.ts does that, and tests start an App directly.
 */
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AdminServer } from './admin/admin-server.js';
import { RecentTransactions } from './admin/recent-transactions.js';
import type { LockWaitOf } from './admin/sessions-view.js';
import type { SessionDirectory } from './locks/attribution.js';
import { DeadlockRecorder } from './locks/deadlock-recorder.js';
import { deadlockCounter } from './locks/lock-metrics.js';
import { LockMonitor } from './locks/lock-monitor.js';
import { ProxyMetrics } from './metrics/proxy-metrics.js';
import { createRegistry } from './metrics/registry.js';
import { startOtelExport, type OtelExport } from './otel/otel-export.js';
import { registerSessionGauges } from './metrics/session-gauges.js';
import { TraceBus, type TraceSink } from './trace/trace-sink.js';
import type { Config } from './config/schema.js';
import type { PoliciesConfig } from './policy/policy-config.js';
import { PolicySet } from './policy/policy-set.js';
import { PolicyService, type PolicyViolationCounter } from './enforcement/policy-service.js';
import { ProxyServer, type PooledServers } from './proxy/server.js';
import type { Secret } from './auth/userlist.js';
import { secretLookup } from './auth/secret-lookup.js';
import { databaseStatementListener } from './pool/database-statements.js';
import { poolMode, restartOnlyChanges, type PoolConfig } from './pool/pool-config.js';
import { PinReport } from './pool/pin-report.js';
import { PoolLender } from './pool/pool-lender.js';
import type { UpstreamTarget } from './upstream/target.js';
import { keepRules } from './trace/keep-rules.js';
import { registerSamplingMetrics, registerTraceMetrics } from './trace/trace-metrics.js';
import { TraceText } from './trace/trace-text.js';
import { TraceWriter } from './trace/trace-writer.js';
import { fanOut } from './tracker/fan-out.js';
import type { TrackerListener } from './tracker/types.js';

export interface AppOptions {
  config: Config;
  target: UpstreamTarget;
  log: Logger;
  /** The configured trace output; null when tracing is off. */
  trace: TraceSink | null;
  tlsContext: tls.SecureContext | null;
  /** More consumers of tracker events (tests use this to observe). */
  listeners?: TrackerListener[];
  /** Lock wait of a session for the admin API's `/sessions`; by default the App's lock monitor's. */
  lockWaitOf?: LockWaitOf;
  /** Counts policy violations (txproxy_policy_violations_total). */
  policyViolations?: PolicyViolationCounter;
  /**
   * The auth file's users and secrets (main.ts reads `auth.file`); for the
   * embedded PostgreSQL, its own user and password.
   */
  userlist?: Map<string, Secret>;
  /** The upstream is the embedded PostgreSQL: `pool.mode: auto` pools. */
  embedded?: boolean;
}

/** PostgreSQL's authentication_timeout: how long a client may take to log in to txproxy. */
const AUTHENTICATION_TIMEOUT_MS = 60_000;

/** How long the admin endpoint's `/readyz` waits for the upstream to answer. */
const READY_TIMEOUT_MS = 2000;

export class App {
  readonly server: ProxyServer;
  /** Every trace record passes here; the configured output is one sink of it. */
  readonly traceBus = new TraceBus();
  /** Every Prometheus metric of this App; served by the admin endpoint's `/metrics`. */
  readonly registry: Registry;
  /**
   * Statement, transaction and policy metrics; null when the admin endpoint
   * is off (nothing could read them, so nothing is counted).
   */
  readonly metrics: ProxyMetrics | null = null;
  /** OpenTelemetry span export; null when it is off (no endpoint), and then nothing listens for it. */
  readonly otel: OtelExport | null;
  /** The lock-wait sampler; null when `lock_monitor.enabled` is false. */
  readonly lockMonitor: LockMonitor | null;
  private readonly admin: AdminServer | null = null;
  /** The server connection pools; null unless `pool.mode` pools. */
  readonly pools: PoolLender | null = null;
  /** The `pool:` settings in force: the configuration's, until reloadPools() replaces them. */
  private poolConfig: PoolConfig;
  private draining = false;
  /** The policies in force; reloadPolicies() replaces them. */
  readonly policies: PolicyService;
  /** Every consumer of the trackers' events, as one (bench/tracker-cost.ts measures what they cost). */
  readonly trackerListener: TrackerListener;

  private constructor(readonly options: AppOptions) {
    const { config } = options;
    this.poolConfig = config.pool;
    const listeners: TrackerListener[] = [];
    const traceText = new TraceText({ sql: config.trace.sql, maxSqlLength: config.trace.max_sql_length, maxTagLength: config.trace.max_tag_length });
    if (options.trace !== null) this.traceBus.attach(options.trace);
    const keep = keepRules(config.trace.keep);
    this.traceBus.keep(keep);
    // Process metrics watch the event loop and GC all the time: only when someone can scrape them.
    this.registry = createRegistry({ processMetrics: config.http !== 'off' && config.metrics.process });
    if (options.trace !== null) registerTraceMetrics(this.registry, options.trace);
    if (keep !== null) registerSamplingMetrics(this.registry, () => this.traceBus.sampled);
    const pooling = poolMode(config.pool.mode, options.embedded === true);
    const sessions: SessionDirectory = {
      sessions: () => this.server.sessions,
      byBackendPid: (pid) => this.server.backendKeys.get(pid),
    };
    this.lockMonitor = config.lock_monitor.enabled
      ? new LockMonitor({
          thresholdMs: config.lock_monitor.threshold,
          intervalMs: config.lock_monitor.interval,
          target: options.target,
          connectTimeoutMs: config.connect_timeout,
          sessions,
          trace: this.traceBus,
          traceText,
          registry: this.registry,
          log: options.log,
        })
      : null;
    // Before the trace writer and the metrics: a finished statement's lock wait is added to it first.
    if (this.lockMonitor !== null) listeners.push(this.lockMonitor);
    listeners.push(new DeadlockRecorder({ sessions, trace: this.traceBus, traceText, deadlocks: deadlockCounter(this.registry) }));
    listeners.push(new TraceWriter(this.traceBus, traceText));
    if (config.http !== 'off') {
      this.metrics = new ProxyMetrics(this.registry, { routes: config.metrics.routes });
      registerSessionGauges(this.registry, () => this.server.sessions);
      const recentTransactions = new RecentTransactions();
      listeners.push(this.metrics, recentTransactions);
      const [adminHost, adminPort] = splitHostPort(config.http);
      this.admin = new AdminServer({
        host: adminHost,
        port: adminPort,
        registry: this.registry,
        sessions: () => this.server.sessions,
        pools: { mode: pooling, snapshot: () => this.pools?.manager.snapshot() ?? [] },
        recentTransactions,
        traceBus: this.traceBus,
        traceText,
        target: options.target,
        readyTimeoutMs: Math.min(READY_TIMEOUT_MS, config.connect_timeout),
        lockWaitOf: options.lockWaitOf ?? this.lockMonitor?.lockWaitOf,
        draining: () => this.draining,
        token: adminTokenOf(config),
        maxEventSubscribers: config.admin.max_event_subscribers,
        log: options.log,
      });
    }
    // After the lock monitor (a statement's lock wait is added to it first) and the metrics (exemplars go into their cells).
    this.otel = startOtelExport({ config: config.otel, server: options.target, text: traceText, registry: this.registry, log: options.log, exemplars: this.metrics ?? undefined });
    if (this.otel !== null) {
      listeners.push(this.otel.spans);
      this.traceBus.attach(this.otel.recordSink);
    }
    if (pooling !== 'none') {
      this.pools = new PoolLender({
        config: config.pool,
        mode: pooling,
        target: options.target,
        registry: this.registry,
        log: options.log,
        reuseReadBuffer: config.read_buffer === 'reused',
      });
      listeners.push(databaseStatementListener(this.pools));
    }
    // Always present, so a reload can turn policies on; sessions with no
    // enforcing rule get no per-message hooks.
    this.policies = new PolicyService({
      policies: PolicySet.compile(config.policies),
      trace: this.traceBus,
      traceText,
      violations: options.policyViolations ?? this.violationCounter(),
      log: options.log,
    });
    // First: a request transaction's policy record comes before that transaction's own record.
    listeners.unshift(this.policies.listener);
    listeners.push(...(options.listeners ?? []));
    this.trackerListener = fanOut(listeners);
    const [host, port] = splitHostPort(config.listen);
    this.server = new ProxyServer({
      host,
      port,
      target: options.target,
      maxClientConn: config.max_client_conn,
      maxPendingHandshakes: config.max_pending_handshakes,
      handshakeTimeoutMs: config.handshake_timeout,
      maxMessageLength: config.max_message_length,
      reuseReadBuffer: config.read_buffer === 'reused',
      connectTimeoutMs: config.connect_timeout,
      settleTimeoutMs: config.settle_timeout,
      tlsContext: options.tlsContext,
      listener: this.trackerListener,
      log: options.log,
      interceptor: (session) => this.policies.attach(session),
      pooled: this.pools === null ? undefined : this.pooledLogin(this.pools),
      pins: this.pools === null ? undefined : new PinReport(this.registry, this.traceBus),
    });
  }

  /** Rejects with a ListenError when the proxy or the admin endpoint cannot listen. */
  static async start(options: AppOptions): Promise<App> {
    const app = new App(options);
    try {
      await app.server.listen();
    } catch (err) {
      throw new ListenError(options.config.listen, err as Error);
    }
    if (app.admin !== null) {
      try {
        await app.admin.listen();
      } catch (err) {
        await app.server.shutdown(0);
        throw new ListenError(options.config.http, err as Error);
      }
    }
    app.lockMonitor?.start();
    return app;
  }

  /** The address clients connect to. */
  get port(): number {
    return this.server.address.port;
  }

  /** The admin HTTP endpoint's port; null when `http` is off. */
  get adminPort(): number | null {
    return this.admin?.address.port ?? null;
  }

  /** How pooled clients log in: `auth:` with the auth file's secrets. */
  private pooledLogin(pools: PoolLender): PooledServers {
    const { config } = this.options;
    return {
      method: config.auth.type,
      lookupSecret: secretLookup(config.auth, this.options.userlist ?? new Map(), this.options.target, config.connect_timeout),
      lender: pools,
      loginTimeoutMs: AUTHENTICATION_TIMEOUT_MS,
      maxPreparedStatements: config.pool.max_prepared_statements,
      sessionState: config.pool.session_state,
    };
  }

  /** Policy decisions go to txproxy_policy_violations_total when metrics are on. */
  private violationCounter(): PolicyViolationCounter | undefined {
    const metrics = this.metrics;
    return metrics === null ? undefined : { inc: (rule, action) => metrics.policyViolation(rule, action) };
  }

  /** New policies (a validated `policies:` section); each session applies them from its next request. */
  reloadPolicies(policies: PoliciesConfig | undefined): void {
    this.policies.update(PolicySet.compile(policies));
  }

  /**
   * The `pool:` section of a reloaded configuration, applied to the pools;
   * unless it changes what only a restart can: then nothing is applied,
   * and those keys are returned.
   */
  reloadPools(next: PoolConfig): string[] {
    if (this.pools === null) return [];
    const fixed = restartOnlyChanges(this.poolConfig, next);
    if (fixed.length > 0) return fixed;
    this.poolConfig = next;
    this.pools.manager.reconfigure(next);
    return [];
  }

  /** Drains sessions (up to `drainMs`) and stops; `/readyz` answers 503 meanwhile. */
  async stop(drainMs = this.options.config.drain_timeout): Promise<void> {
    this.draining = true;
    await this.server.shutdown(drainMs);
    await this.pools?.close();
    await this.lockMonitor?.stop();
    await this.otel?.shutdown();
    await this.admin?.close();
  }
}

/** main.ts reads admin.token_file into admin.token; an unread file must not leave the endpoint open. */
function adminTokenOf(config: Config): string | null {
  if (config.admin.token === null && config.admin.token_file !== null) {
    throw new Error(`admin.token_file ${config.admin.token_file} was not read: pass its token as admin.token`);
  }
  return config.admin.token;
}

/** An address (the proxy's or the admin endpoint's) could not be bound. */
export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    readonly address: string,
    readonly reason: Error,
  ) {
    super(`cannot listen on ${address}: ${reason.message}`);
  }
}

export function splitHostPort(value: string): [string, number] {
  const i = value.lastIndexOf(':');
  return [value.slice(0, i).replace(/^\[|\]$/g, ''), Number(value.slice(i + 1))];
}
