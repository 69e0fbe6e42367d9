/**
 * Runs pgbench against one endpoint and reads its summary.
 */
import { accessSync, constants, readdirSync } from 'node:fs';
import path from 'node:path';
import type { ChildRegistry } from './children.js';

export interface PgbenchSummary {
  /** Transactions per second, without the initial connection time. */
  tps: number;
  latencyAvgMs: number;
  /** "number of transactions actually processed". */
  transactions: number;
  /** "number of failed transactions" (pgbench 15+; 0 when not reported). */
  failed: number;
  /** "initial connection time": how long its clients took to log in (pgbench 14+; null when not reported). */
  connectMs: number | null;
}

/**
 * Parses the summary pgbench prints at the end of a run. Understands the
 * wording of pgbench 14+ ("without initial connection time") and of older
 * versions ("excluding connections establishing").
 */
export function parsePgbenchOutput(text: string): PgbenchSummary {
  const number = (pattern: RegExp): number | null => {
    const match = text.match(pattern);
    return match ? Number(match[1]) : null;
  };
  const tps = number(/^tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/m) ?? number(/^tps = ([\d.]+)/m);
  const latencyAvgMs = number(/^latency average = ([\d.]+) ms/m);
  const transactions = number(/^number of transactions actually processed: (\d+)/m);
  if (transactions === 0) {
    // Seen with 200 clients and a run of 2 s: logging them all in (a SCRAM exchange each) took the whole run.
    throw new Error(`pgbench processed no transaction in its run (if it has many clients, logging them in may take longer than a short --duration):\n${text.trim().split('\n').slice(-15).join('\n')}`);
  }
  if (tps === null || latencyAvgMs === null || transactions === null) {
    throw new Error(`pgbench printed no summary (tps, latency average, transactions processed):\n${text.trim().split('\n').slice(-15).join('\n')}`);
  }
  return {
    tps,
    latencyAvgMs,
    transactions,
    failed: number(/^number of failed transactions: (\d+)/m) ?? 0,
    connectMs: number(/^initial connection time = ([\d.]+) ms/m),
  };
}

export interface PgbenchTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface PgbenchRun {
  clients: number;
  jobs: number;
  durationS: number;
  /** Script and protocol flags (see workloads.ts). */
  args: string[];
}

/** Environment for pgbench and psql: the password, no TLS (none of the endpoints offers it), nothing inherited that would change the run. */
export function libpqEnv(target: PgbenchTarget): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  return { ...env, PGPASSWORD: target.password, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' };
}

function connectionArgs(target: PgbenchTarget): string[] {
  return ['-h', target.host, '-p', String(target.port), '-U', target.user];
}

/**
 * pgbench on PATH, else the newest one Debian's postgresql-N packages put
 * under /usr/lib/postgresql (which are not on PATH without
 * postgresql-client-common); null when there is none.
 */
export function findPgbench(): string | null {
  const onPath = (process.env.PATH ?? '').split(':').filter((dir) => dir !== '').map((dir) => path.join(dir, 'pgbench'));
  let versions: string[] = [];
  try {
    versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  } catch {
    // No Debian PostgreSQL packages.
  }
  for (const candidate of [...onPath, ...versions.map((v) => `/usr/lib/postgresql/${v}/bin/pgbench`)]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next place.
    }
  }
  return null;
}

export class Pgbench {
  constructor(
    private readonly children: ChildRegistry,
    readonly binary: string,
  ) {}

  /** `pgbench -i -s N`: creates and fills the pgbench tables. */
  async initialise(target: PgbenchTarget, scale: number): Promise<void> {
    const child = this.children.spawn('pgbench -i', this.binary, ['-i', '-q', '-s', String(scale), ...connectionArgs(target), target.database], {
      env: libpqEnv(target),
    });
    const status = await child.exited;
    if (status !== 0) throw new Error(`pgbench -i -s ${scale} failed (${status}):\n${child.tail()}`);
  }

  /**
   * One timed pgbench run. `-n` skips pgbench's own VACUUM: it would run
   * through the endpoint under test and count against it; the caller vacuums
   * directly instead where the workload writes.
   */
  async run(target: PgbenchTarget, run: PgbenchRun): Promise<{ summary: PgbenchSummary; output: string }> {
    const args = ['-n', '-c', String(run.clients), '-j', String(run.jobs), '-T', String(run.durationS), ...run.args, ...connectionArgs(target), target.database];
    const child = this.children.spawn('pgbench', this.binary, args, { env: libpqEnv(target) });
    let output = '';
    child.process.stdout!.on('data', (text: string) => (output += text));
    child.process.stderr!.on('data', (text: string) => (output += text));
    const status = await child.exited;
    if (status !== 0) throw new Error(`pgbench ${args.join(' ')} failed (${status}):\n${output.trim().split('\n').slice(-15).join('\n')}`);
    return { summary: parsePgbenchOutput(output), output };
  }
}
