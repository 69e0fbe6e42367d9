/**
 * Wires txproxy together from a validated Config: the proxy listener, the
 * tracker's consumers (trace writer, …) and their lifecycles. It touches no
 * process-wide state (env, signals, argv): main.ts does that, and tests
 * start an App directly.
 */
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { TraceBus, type TraceSink } from './trace/trace-sink.js';
import type { Config } from './config/schema.js';
import type { PoliciesConfig } from './policy/policy-config.js';
import { PolicySet } from './policy/policy-set.js';
import { PolicyService, type PolicyViolationCounter } from './proxy/policy-service.js';
import { ProxyServer } from './proxy/server.js';
import type { UpstreamTarget } from './proxy/upstream.js';
import { TraceWriter } from './trace/trace-writer.js';
import { fanOut, type TrackerListener } from './tracker/types.js';

export interface AppOptions {
  config: Config;
  target: UpstreamTarget;
  log: Logger;
  /** The configured trace output; null when tracing is off. */
  trace: TraceSink | null;
  tlsContext: tls.SecureContext | null;
  /** More consumers of tracker events (tests use this to observe). */
  listeners?: TrackerListener[];
  /** Counts policy violations (txproxy_policy_violations_total). */
  policyViolations?: PolicyViolationCounter;
}

export class App {
  readonly server: ProxyServer;
  /** Every trace record passes here; the configured output is one sink of it. */
  readonly traceBus = new TraceBus();
  /** The policies in force; reloadPolicies() replaces them. */
  readonly policies: PolicyService;

  private constructor(readonly options: AppOptions) {
    const { config } = options;
    const listeners: TrackerListener[] = [];
    if (options.trace !== null) this.traceBus.attach(options.trace);
    listeners.push(new TraceWriter(this.traceBus, config.trace.sql));
    // Always present, so a reload can turn policies on; sessions with no
    // enforcing rule get no per-message hooks.
    this.policies = new PolicyService({
      policies: PolicySet.compile(config.policies),
      trace: this.traceBus,
      sqlMode: config.trace.sql,
      violations: options.policyViolations,
      log: options.log,
    });
    listeners.push(this.policies.listener);
    listeners.push(...(options.listeners ?? []));
    const [host, port] = splitHostPort(config.listen);
    this.server = new ProxyServer({
      host,
      port,
      target: options.target,
      maxClientConn: config.max_client_conn,
      maxMessageLength: config.max_message_length,
      connectTimeoutMs: config.connect_timeout,
      tlsContext: options.tlsContext,
      listener: fanOut(listeners),
      log: options.log,
      interceptor: (session) => this.policies.attach(session),
    });
  }

  static async start(options: AppOptions): Promise<App> {
    const app = new App(options);
    await app.server.listen();
    return app;
  }

  /** The address clients connect to. */
  get port(): number {
    return this.server.address.port;
  }

  /** New policies (a validated `policies:` section); each session applies them from its next request. */
  reloadPolicies(policies: PoliciesConfig | undefined): void {
    this.policies.update(PolicySet.compile(policies));
  }

  /** Drains sessions (up to `drainMs`) and stops. */
  async stop(drainMs = this.options.config.drain_timeout): Promise<void> {
    await this.server.shutdown(drainMs);
  }
}

export function splitHostPort(value: string): [string, number] {
  const i = value.lastIndexOf(':');
  return [value.slice(0, i).replace(/^\[|\]$/g, ''), Number(value.slice(i + 1))];
}
