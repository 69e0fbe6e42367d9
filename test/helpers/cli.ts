/**
 * Runs PostgreSQL's own client programs (psql, pgbench, pg_recvlogical)
 * against txproxy. Always asynchronously: txproxy runs in the test process,
 * so a synchronous child would stall the very proxy it talks to.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Endpoint {
  host?: string;
  port: number;
  user: string;
  password: string;
  database?: string;
}

/** A PostgreSQL client program: on PATH, else the newest /usr/lib/postgresql/<v>/bin. */
export function findProgram(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const candidate = path.join(root, v, 'bin', name);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/** libpq's connection environment for `endpoint` (no ~/.pgpass, no psqlrc). */
export function libpqEnv(endpoint: Endpoint, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    PGHOST: endpoint.host ?? '127.0.0.1',
    PGPORT: String(endpoint.port),
    PGUSER: endpoint.user,
    PGPASSWORD: endpoint.password,
    PGDATABASE: endpoint.database ?? 'postgres',
    PGSSLMODE: 'disable',
    PGCONNECT_TIMEOUT: '10',
    PGPASSFILE: '/dev/null',
    PSQLRC: '/dev/null',
    ...extra,
  };
}

/** Runs `program args…`; never rejects: the exit code is in the result. */
export function run(program: string, args: string[], options: { env: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string }): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      program,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : 1;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
    else child.stdin?.end();
  });
}

/** psql without psqlrc, quiet, unaligned tuples-only output, stopping at the first error unless told otherwise. */
export function psql(endpoint: Endpoint, args: string[], options: { input?: string; onErrorStop?: boolean; cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const program = findProgram('psql');
  if (program === null) throw new Error('psql is not installed (Debian: postgresql-client)');
  const stop = options.onErrorStop ?? true;
  return run(program, ['-X', '-q', '-A', '-t', '-v', `ON_ERROR_STOP=${stop ? 1 : 0}`, ...args], {
    env: libpqEnv(endpoint, options.env),
    input: options.input,
    cwd: options.cwd,
  });
}
