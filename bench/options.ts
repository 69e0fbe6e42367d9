/**
 * The benchmark's command line: how long, how often, which endpoints and
 * workloads. Pure: takes argv, returns options or throws a UsageError.
 */
import { parseArgs } from 'node:util';
import { ENDPOINT_NAMES, type EndpointName } from './endpoints.js';
import { WORKLOADS, type Workload } from './workloads.js';

export interface BenchOptions {
  /** Seconds per measured pgbench run (`-T`). */
  durationS: number;
  /** How many times each endpoint runs each workload. */
  rounds: number;
  clients: number;
  /** pgbench worker threads (`-j`), at most `clients`. */
  jobs: number;
  /** pgbench scale factor for `pgbench -i -s`. */
  scale: number;
  /** Seconds of unrecorded select-only load per endpoint before measuring (0: none). */
  warmupS: number;
  endpoints: EndpointName[];
  workloads: Workload[];
  /** Write bench/results/<timestamp>.json. */
  writeJson: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage: npm run bench -- [options]

  --duration S      seconds per measured run (default 10)
  --rounds N        runs of each workload on each endpoint, interleaved (default 3)
  --clients N       pgbench clients, -c (default 8)
  --jobs N          pgbench threads, -j (default 2)
  --scale N         pgbench scale factor for -i -s (default 10)
  --warmup S        seconds of unrecorded load per endpoint first (default 2)
  --only LIST       endpoints, comma-separated: ${ENDPOINT_NAMES.join(',')}
  --workloads LIST  workloads, comma-separated: ${WORKLOADS.map((w) => w.name).join(',')}
  --quick           smoke run: --duration 3 --rounds 1 --scale 1 --warmup 1
  --no-json         do not write bench/results/<timestamp>.json
  -h, --help`;

const DEFAULTS = { durationS: 10, rounds: 3, clients: 8, jobs: 2, scale: 10, warmupS: 2 };
const QUICK = { durationS: 3, rounds: 1, scale: 1, warmupS: 1 };

/** Returns null when help was asked for. */
export function parseBenchOptions(argv: string[]): BenchOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        rounds: { type: 'string' },
        clients: { type: 'string' },
        jobs: { type: 'string' },
        scale: { type: 'string' },
        warmup: { type: 'string' },
        only: { type: 'string' },
        workloads: { type: 'string' },
        quick: { type: 'boolean' },
        'no-json': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return null;
  const base = values.quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const clients = integer('--clients', values.clients, base.clients, 1);
  const jobs = integer('--jobs', values.jobs, Math.min(base.jobs, clients), 1);
  if (jobs > clients) throw new UsageError(`--jobs ${jobs} is more than --clients ${clients}: pgbench needs at least one client per thread`);
  return {
    durationS: integer('--duration', values.duration, base.durationS, 1),
    rounds: integer('--rounds', values.rounds, base.rounds, 1),
    clients,
    jobs,
    scale: integer('--scale', values.scale, base.scale, 1),
    warmupS: integer('--warmup', values.warmup, base.warmupS, 0),
    endpoints: pickList('--only', values.only, ENDPOINT_NAMES, (name) => name),
    workloads: pickList('--workloads', values.workloads, WORKLOADS, (w) => w.name),
    writeJson: !values['no-json'],
  };
}

function integer(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`${flag} expects a whole number of at least ${min}, got '${text}'`);
  return Number(text);
}

/** Picks items by name from `all`, keeping the order of `all` (the table order). */
function pickList<T>(flag: string, text: string | undefined, all: readonly T[], nameOf: (item: T) => string): T[] {
  if (text === undefined) return [...all];
  const wanted = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const known = new Set(all.map(nameOf));
  const unknown = wanted.filter((name) => !known.has(name));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new UsageError(`${flag} expects a comma-separated list of ${[...known].join(', ')}; got '${text}'`);
  }
  return all.filter((item) => wanted.includes(nameOf(item)));
}
