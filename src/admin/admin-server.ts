/**
 * The admin HTTP endpoint (docs/admin-api.md): Prometheus metrics, health
 * and readiness, the live sessions, recent transactions and the live trace
 * stream. Read-only: every route answers GET and nothing else.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { OPENMETRICS_CONTENT_TYPE, openMetricsText, wantsOpenMetrics } from '../metrics/exposition.js';
import type { Session } from '../proxy/session.js';
import { describeTarget, type UpstreamTarget } from '../proxy/upstream.js';
import type { TraceBus } from '../trace/trace-sink.js';
import type { TraceText } from '../trace/trace-text.js';
import { EventStream } from './event-stream.js';
import { probeUpstream } from './readiness.js';
import type { RecentTransactions } from './recent-transactions.js';
import { viewSession, type LockWaitOf } from './sessions-view.js';
import { showSql, type ShowSql } from './shown-sql.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** The live client sessions. */
  sessions: () => Iterable<Session>;
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
  log: Logger;
}

const DEFAULT_TRANSACTIONS_LIMIT = 20;

export class AdminServer {
  private readonly server: http.Server;
  private readonly events: EventStream;
  private readonly sql: ShowSql;

  constructor(private readonly options: AdminServerOptions) {
    this.sql = showSql(options.traceText);
    const dropped = new Counter({
      name: 'txproxy_admin_events_dropped_total',
      help: 'Trace records not sent to a /events subscriber because it read too slowly.',
      registers: [options.registry],
    });
    const events = (this.events = new EventStream(options.traceBus, dropped));
    new Gauge({
      name: 'txproxy_admin_event_subscribers',
      help: 'Clients connected to /events now.',
      registers: [options.registry],
      collect() {
        this.set(events.size);
      },
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
        return this.readyz(res);
      case '/sessions':
        json(res, 200, { sessions: [...this.options.sessions()].map((s) => viewSession(s, this.sql, this.options.lockWaitOf ?? null)) });
        return;
      case '/transactions':
        return this.transactions(url, res);
      case '/events':
        this.events.subscribe(req, res);
        return;
    }
    json(res, 404, { error: 'not found', message: `no route ${url.pathname}; try /metrics, /healthz, /readyz, /sessions, /transactions or /events` });
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

  private async readyz(res: http.ServerResponse): Promise<void> {
    const upstream = describeTarget(this.options.target);
    if (this.options.draining()) {
      json(res, 503, { status: 'unavailable', upstream, reason: 'shutting down: draining sessions' });
      return;
    }
    const result = await probeUpstream(this.options.target, this.options.readyTimeoutMs);
    if (result.ready) json(res, 200, { status: 'ready', upstream, ms: Math.round(result.ms * 1000) / 1000 });
    else json(res, 503, { status: 'unavailable', upstream, reason: result.reason });
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

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
