/**
 * The admin HTTP endpoint (docs/admin-api.md): Prometheus metrics, health
 * and readiness, the live sessions, the server connection pools, recent
 * transactions and the live trace stream. Read-only: every route answers GET and nothing else.
 *
 * With a token set, every route requires it except the probes `/healthz`
 * and `/readyz`, which orchestrators call without headers; those then tell
 * an unauthenticated caller the status and nothing else.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { OPENMETRICS_CONTENT_TYPE, openMetricsText, wantsOpenMetrics } from '../metrics/exposition.js';
import { describeTarget, type UpstreamTarget } from '../upstream/target.js';
import type { SessionView } from '../sessions/session-view.js';
import type { TraceBus } from '../trace/trace-sink.js';
import type { TraceText } from '../trace/trace-text.js';
import { BearerToken, refuse, type Credentials } from './bearer-token.js';
import { EventStream } from './event-stream.js';
import { json } from './json-answer.js';
import { viewPools, type PoolSource } from './pools-view.js';
import { probeUpstream } from './readiness.js';
import type { RecentTransactions } from './recent-transactions.js';
import { viewSession, type LockWaitOf } from './sessions-view.js';
import { showSql, type ShowSql } from './shown-sql.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** The live client sessions. */
  sessions: () => Iterable<SessionView>;
  /** The server connection pools (an empty list with mode `none` when txproxy does not pool). */
  pools: PoolSource;
  recentTransactions: RecentTransactions;
  traceBus: TraceBus;
  traceText: TraceText;
  target: UpstreamTarget;
  /** How long `/readyz` waits for the upstream's answer. */
  readyTimeoutMs: number;
  /** The lock monitor's view of a session's lock wait; absent: no lock information. */
  lockWaitOf?: LockWaitOf;
  /** True once the proxy drains for shutdown: `/readyz` then says so. */
  draining: () => boolean;
  /** The bearer token the routes require (admin.token); null: no authentication. */
  token: string | null;
  /** Clients allowed on /events at once (admin.max_event_subscribers). */
  maxEventSubscribers: number;
  log: Logger;
}

/** Routes open without a token: liveness and readiness probes. */
const PROBES = new Set(['/healthz', '/readyz']);

const DEFAULT_TRANSACTIONS_LIMIT = 20;

export class AdminServer {
  private readonly server: http.Server;
  private readonly events: EventStream;
  private readonly sql: ShowSql;
  private readonly token: BearerToken | null;

  constructor(private readonly options: AdminServerOptions) {
    this.sql = showSql(options.traceText);
    this.token = options.token === null ? null : new BearerToken(options.token);
    this.events = new EventStream({
      bus: options.traceBus,
      registry: options.registry,
      maxSubscribers: options.maxEventSubscribers,
      log: options.log,
    });
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        options.log.error({ err: err.message, path: req.url }, 'admin request failed');
        if (!res.headersSent) json(res, 500, { error: 'internal error', message: err.message });
        else res.destroy();
      });
    });
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        if (this.token === null && !isLoopback(this.options.host)) {
          this.options.log.warn(
            { address: this.options.host },
            'admin endpoint open without admin.token on a non-loopback address: whoever reaches it sees sessions and SQL text',
          );
        }
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  get address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.events.closeAll();
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const credentials: Credentials = this.token === null ? 'valid' : this.token.check(req.headers.authorization);
    if (credentials !== 'valid' && !PROBES.has(url.pathname)) {
      refuse(res, credentials);
      return;
    }
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET');
      json(res, 405, { error: 'method not allowed', message: `${req.method} is not supported; the admin API is read-only (GET)` });
      return;
    }
    switch (url.pathname) {
      case '/metrics':
        return this.metrics(res, wantsOpenMetrics(req.headers.accept));
      case '/healthz':
        json(res, 200, { status: 'ok' });
        return;
      case '/readyz':
        return this.readyz(res, credentials === 'valid');
      case '/sessions':
        json(res, 200, { sessions: [...this.options.sessions()].map((s) => viewSession(s, this.sql, this.options.lockWaitOf ?? null)) });
        return;
      case '/pools':
        json(res, 200, viewPools(this.options.pools));
        return;
      case '/transactions':
        return this.transactions(url, res);
      case '/events':
        this.events.subscribe(req, res);
        return;
    }
    json(res, 404, { error: 'not found', message: `no route ${url.pathname}; try /metrics, /healthz, /readyz, /sessions, /pools, /transactions or /events` });
  }

  /** OpenMetrics (with exemplars) when the scraper's Accept header asks for it. */
  private async metrics(res: http.ServerResponse, openMetrics: boolean): Promise<void> {
    const registry = this.options.registry;
    if (openMetrics) {
      const text = await openMetricsText(registry);
      res.writeHead(200, { 'Content-Type': OPENMETRICS_CONTENT_TYPE });
      res.end(text);
      return;
    }
    const body = await registry.metrics();
    res.writeHead(200, { 'Content-Type': registry.contentType });
    res.end(body);
  }

  /** `detailed`: the caller may learn the upstream's address and what failed. */
  private async readyz(res: http.ServerResponse, detailed: boolean): Promise<void> {
    const upstream = describeTarget(this.options.target);
    const answer = (status: number, body: { status: string; [field: string]: unknown }) =>
      json(res, status, detailed ? body : { status: body.status });
    if (this.options.draining()) {
      answer(503, { status: 'unavailable', upstream, reason: 'shutting down: draining sessions' });
      return;
    }
    const result = await probeUpstream(this.options.target, this.options.readyTimeoutMs);
    if (result.ready) answer(200, { status: 'ready', upstream, ms: Math.round(result.ms * 1000) / 1000 });
    else answer(503, { status: 'unavailable', upstream, reason: result.reason });
  }

  private transactions(url: URL, res: http.ServerResponse): void {
    const recent = this.options.recentTransactions;
    const raw = url.searchParams.get('limit');
    const limit = raw === null ? DEFAULT_TRANSACTIONS_LIMIT : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > recent.capacity) {
      json(res, 400, { error: 'bad request', message: `limit must be an integer from 1 to ${recent.capacity}` });
      return;
    }
    json(res, 200, { transactions: recent.list(limit, this.sql, (message) => this.options.traceText.errorMessage(message)) });
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}
