/**
 * The lock monitor's one connection of its own to the upstream server,
 * separate from every client session: autocommit, so each query sees the
 * current pg_stat_activity (inside a transaction it would stay frozen at the
 * first read).
 *
 * It connects on first use, never before: a txproxy whose statements all
 * finish under the threshold never opens it. Credentials are the upstream
 * URL's (txproxy relays client authentication and never learns those
 * passwords); without a user in the URL node-postgres' defaults apply.
 * After a failure it waits RETRY_MS before trying again, so an unreachable
 * server costs one attempt per RETRY_MS, not one per sample.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Logger } from 'pino';
import type { ConnectionOptions } from 'node:tls';
import { encryptionAttempts } from '../proxy/upstream.js';
import type { UpstreamTarget } from '../upstream/target.js';

const RETRY_MS = 5000;

export interface SideConnectionOptions {
  target: UpstreamTarget;
  applicationName: string;
  connectTimeoutMs: number;
  log: Logger;
  /** Each query's name and duration in seconds, failed or not. */
  onQuery(name: string, seconds: number): void;
}

export class SideConnection {
  private client: pg.Client | null = null;
  private retryAt = 0;
  private failing = false;
  private closed = false;

  constructor(private readonly options: SideConnectionOptions) {}

  /**
   * Runs a named (prepared once per connection) query. Resolves null when
   * there is no connection to run it on (closed, or waiting to retry).
   */
  async query<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[] | null> {
    const client = await this.connected();
    if (client === null) return null;
    const started = performance.now();
    try {
      const result = await client.query<R>({ name: `txproxy_lock_monitor_${name}`, text, values });
      this.recovered();
      return result.rows;
    } catch (err) {
      this.failed(err as Error, client);
      return null;
    } finally {
      this.options.onQuery(name, (performance.now() - started) / 1000);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connected(): Promise<pg.Client | null> {
    if (this.client !== null) return this.client;
    if (this.closed || Date.now() < this.retryAt) return null;
    let client: pg.Client | null = null;
    const failures: string[] = [];
    // As libpq: prefer tries TLS, then plain text; allow the other way round.
    for (const useTls of encryptionAttempts(this.options.target)) {
      const attempt = this.newClient(useTls);
      try {
        await attempt.connect();
        client = attempt;
        break;
      } catch (err) {
        failures.push(`${useTls ? 'with TLS' : 'without TLS'}: ${(err as Error).message}`);
        attempt.end().catch(() => undefined);
      }
    }
    if (client === null) {
      this.fail(new Error(failures.join('; ')));
      return null;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return null;
    }
    client.on('error', (err) => this.failed(err, client));
    client.on('end', () => {
      if (this.client === client) this.client = null;
    });
    this.client = client;
    return client;
  }

  private newClient(useTls: boolean): pg.Client {
    const { target, applicationName, connectTimeoutMs } = this.options;
    return new pg.Client({
      host: target.host,
      port: target.port,
      user: target.user ?? undefined,
      password: target.password ?? undefined,
      database: target.database ?? undefined,
      application_name: applicationName,
      ssl: useTls ? sslOptions(target) : false,
      connectionTimeoutMillis: connectTimeoutMs,
      // Sampling must never hang on, nor queue behind, what it observes.
      statement_timeout: 5000,
      lock_timeout: 1000,
      query_timeout: 10_000,
    });
  }

  private failed(err: Error, client: pg.Client): void {
    if (this.client === client) this.client = null;
    client.end().catch(() => undefined);
    this.fail(err);
  }

  private fail(err: Error): void {
    this.retryAt = Date.now() + RETRY_MS;
    if (this.closed || this.failing) return;
    this.failing = true;
    this.options.log.warn({ err: err.message, retryMs: RETRY_MS }, 'lock monitor cannot query the server');
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.options.log.info('lock monitor queries the server again');
  }
}


/** node-postgres TLS options for libpq's sslmode (prefer and require do not verify, as in libpq). */
function sslOptions(target: UpstreamTarget): ConnectionOptions {
  const ca = target.sslrootcert !== null ? readFileSync(target.sslrootcert) : undefined;
  switch (target.sslmode) {
    case 'verify-full':
      return { rejectUnauthorized: true, ca };
    case 'verify-ca':
      return { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
    default:
      return { rejectUnauthorized: false };
  }
}
