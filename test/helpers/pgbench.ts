/**
 * pgbench (from Debian's postgresql packages) against an endpoint, and the
 * figures of its report that the oracle tests compare with txproxy's count.
 */
import { findProgram, libpqEnv, run, type CliResult, type Endpoint } from './cli.js';

export interface PgbenchReport {
  /** "number of transactions actually processed: N" (N of the `N/M` form with -t). */
  processed: number;
  /** "number of failed transactions: N" (PostgreSQL 15+), 0 when absent. */
  failed: number;
  /** "number of clients: N". */
  clients: number;
  output: CliResult;
}

export function pgbenchProgram(): string | null {
  return findProgram('pgbench');
}

/** `pgbench -i -q -s scale` (drop, create, generate with COPY, vacuum, primary keys). */
export async function pgbenchInit(endpoint: Endpoint, scale = 1): Promise<CliResult> {
  const result = await run(pgbenchProgram()!, ['-i', '-q', '-s', String(scale)], { env: libpqEnv(endpoint), timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`pgbench -i failed (${result.code}): ${result.stderr}`);
  return result;
}

/** Runs pgbench with `args` and parses its report; throws with its output when it fails. */
export async function pgbench(endpoint: Endpoint, args: string[], options: { cwd?: string } = {}): Promise<PgbenchReport> {
  const output = await run(pgbenchProgram()!, args, { env: libpqEnv(endpoint), cwd: options.cwd, timeoutMs: 120_000 });
  if (output.code !== 0) throw new Error(`pgbench ${args.join(' ')} failed (${output.code}):\n${output.stdout}\n${output.stderr}`);
  return parsePgbenchReport(output);
}

export function parsePgbenchReport(output: CliResult): PgbenchReport {
  const number = (pattern: RegExp, fallback?: number): number => {
    const match = pattern.exec(output.stdout);
    if (match === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`pgbench report without ${pattern}:\n${output.stdout}\n${output.stderr}`);
    }
    return Number(match[1]);
  };
  return {
    processed: number(/^number of transactions actually processed: (\d+)/m),
    failed: number(/^number of failed transactions: (\d+)/m, 0),
    clients: number(/^number of clients: (\d+)/m),
    output,
  };
}
