#!/usr/bin/env node
/**
 * `npm run bench`: one PostgreSQL, pgbench through each endpoint (direct,
 * a bare Node.js pipe proxy, txproxy relaying and pooling, PgBouncer in
 * session and transaction mode when installed), the workloads interleaved
 * round-robin so that a change in machine load hits every endpoint alike. Prints a table per workload and writes the runs to
 * bench/results/<timestamp>.json. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedServer } from '../src/embedded/embedded-postgres.js';
import { ChildRegistry } from './children.js';
import { ENDPOINTS, takesPart, type Endpoint, type EndpointContext } from './endpoints.js';
import type { ReceiverStats } from './otlp-receiver.js';
import { parseBenchOptions, UsageError, USAGE, type BenchOptions } from './options.js';
import { findPgbench, Pgbench, type PgbenchTarget } from './pgbench.js';
import { clockTicksPerSecond, readCpuTimes } from './process-cpu.js';
import { openFilesNeeded, openFilesLimit } from './open-files.js';
import { formatTables, summarise, type Abort, type RunResult, type Skip } from './report.js';
import { clientsOf, databasePools, WORKLOADS, type Workload } from './workloads.js';

const DIST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE_ROOT = path.resolve(DIST_DIR, '..');
const RESULTS_DIR = path.join(PACKAGE_ROOT, 'bench', 'results');

const USER = 'postgres';
const PASSWORD = 'postgres';
const DATABASE = 'postgres';
/** Pause after each run before reading CPU time, so work the proxy does as sessions close is counted. */
const SETTLE_MS = 100;

/**
 * Server settings for a benchmark, not for keeping data: durability is off
 * (fsync, synchronous_commit, full_page_writes) so TPC-B measures round
 * trips rather than this machine's disk; no checkpoint or autovacuum starts
 * in the middle of a run (the harness vacuums between write runs instead).
 */
function postgresSettings(options: BenchOptions): Record<string, string> {
  return {
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    // Direct, txproxy's upstream connections and the pools (which keep their connections open between runs), with room for lingering sessions.
    max_connections: String(Math.max(100, options.clients * 5 + 20)),
    shared_buffers: '512MB',
    max_wal_size: '4GB',
    checkpoint_timeout: '1h',
    autovacuum: 'off',
  };
}

function progress(line: string): void {
  process.stderr.write(line + '\n');
}

interface State {
  children: ChildRegistry;
  server: EmbeddedServer | null;
  /** Set while the server starts, so that Ctrl-C in that moment still stops it. */
  serverStarting: Promise<EmbeddedServer> | null;
  tempDir: string | null;
  runs: RunResult[];
  /** Workloads an endpoint cannot run, reported in the tables. */
  skipped: Skip[];
  /** Runs that ended without a pgbench summary, reported in the tables. */
  aborted: Abort[];
  interrupted: boolean;
}

async function main(): Promise<number> {
  let options: BenchOptions | null;
  try {
    options = parseBenchOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }

  const state: State = { children: new ChildRegistry(), server: null, serverStarting: null, tempDir: null, runs: [], skipped: [], aborted: [], interrupted: false };
  const cleanup = once(() => cleanUp(state));
  const onSignal = (signal: NodeJS.Signals) => {
    if (state.interrupted) {
      state.children.killAllNow();
      process.exit(130);
    }
    state.interrupted = true;
    progress(`\n${signal}: stopping every process the benchmark started`);
    void cleanup().finally(() => {
      if (state.runs.length > 0) {
        process.stdout.write('\nInterrupted; the runs finished so far (no results file written):\n\n');
        process.stdout.write(formatTables(summarise(options.workloads, options.endpoints, state.runs, state.skipped, options.clients, state.aborted), options));
      }
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => state.children.killAllNow());

  try {
    return await benchmark(options, state);
  } catch (err) {
    if (state.interrupted) return 130;
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await cleanup();
  }
}

async function benchmark(options: BenchOptions, state: State): Promise<number> {
  const pgbenchBinary = findPgbench();
  if (pgbenchBinary === null) throw new Error('pgbench not found on PATH or under /usr/lib/postgresql: install it (Debian: apt-get install postgresql-15)');
  const pgbench = new Pgbench(state.children, pgbenchBinary);
  const pgbenchVersion = commandOutput(pgbenchBinary, ['--version']);
  const clockTicks = clockTicksPerSecond();
  const maxClients = Math.max(...options.workloads.map((w) => clientsOf(w, options.clients)));
  // pgbench and the proxy each hold a descriptor per client: with too few, runs of many clients abort halfway.
  const openFiles = openFilesLimit();
  if (openFiles !== null && openFiles < openFilesNeeded(maxClients)) {
    throw new Error(`the open-file limit is ${openFiles}, and ${maxClients} clients need ${openFilesNeeded(maxClients)}: raise it (ulimit -n ${openFilesNeeded(maxClients)}) or leave out the workloads with many clients`);
  }
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  if (loadBefore[0] > os.cpus().length / 2) {
    progress(`note: load average ${loadBefore[0].toFixed(1)} on ${os.cpus().length} cores before starting: other work is running, expect noisy numbers`);
  }

  state.tempDir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-bench-'));
  // PgBouncer runs as another user when we are root and must reach its own subdirectory.
  chmodSync(state.tempDir, 0o711);
  const settings = postgresSettings(options);
  progress(`starting PostgreSQL (${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(', ')})`);
  state.serverStarting = startEmbeddedPostgres({
    dataDir: null,
    port: 0,
    user: USER,
    password: PASSWORD,
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  });
  state.server = await state.serverStarting;
  const server = { host: state.server.host, port: state.server.port, user: USER, password: PASSWORD, database: DATABASE };
  const serverVersion = await directQuery(server, 'SHOW server_version').then((r) => String(r.rows[0].server_version));

  let t = Date.now();
  progress(`pgbench -i -s ${options.scale}`);
  await pgbench.initialise(server, options.scale);
  progress(`  done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const pools = databasePools(options.workloads);
  for (const { database } of pools) {
    // A copy of the pgbench tables under another name, for a pool size of its own; nothing is connected to the template yet.
    progress(`CREATE DATABASE ${database} TEMPLATE ${DATABASE}`);
    await directQuery(server, `CREATE DATABASE ${database} TEMPLATE ${DATABASE}`);
  }

  const ctx: EndpointContext = {
    children: state.children,
    server,
    distDir: DIST_DIR,
    tempDir: state.tempDir,
    clients: options.clients,
    maxClients,
    databasePools: pools,
  };
  const endpoints: Endpoint[] = [];
  const notes = new Set<string>();
  for (const spec of ENDPOINTS) {
    if (!options.endpoints.includes(spec.name)) continue;
    if (!options.workloads.some((w) => takesPart(spec.pooling, w.kind))) continue;
    const started = await spec.start(ctx);
    if ('unavailable' in started) notes.add(`${spec.name} skipped: ${started.unavailable}`);
    else endpoints.push({ name: spec.name, pooling: spec.pooling, ...started });
  }
  for (const note of notes) progress(`note: ${note}`);
  const nameWidth = Math.max(...endpoints.map((e) => e.name.length));
  for (const e of endpoints) progress(`${e.name.padEnd(nameWidth)} 127.0.0.1:${e.port}  ${e.description}${e.child ? ` (pid ${e.child.pid})` : ''}`);

  // Which endpoints run each workload; those that cannot say why, once, in the table.
  const plan = options.workloads.map((workload) => {
    const runners: Endpoint[] = [];
    for (const endpoint of endpoints.filter((e) => takesPart(e.pooling, workload.kind))) {
      const reason = endpoint.cannotRun?.(workload) ?? null;
      if (reason === null) runners.push(endpoint);
      else state.skipped.push({ workload: workload.name, endpoint: endpoint.name, reason });
    }
    if (!endpoints.some((e) => takesPart(e.pooling, workload.kind))) notes.add(`${workload.name}: none of the endpoints measured runs ${workload.kind} workloads`);
    return { workload, endpoints: runners };
  });

  const perRunS = options.durationS + 1;
  const total = options.rounds * plan.reduce((sum, p) => sum + p.endpoints.length, 0);
  progress(`${total} runs of ${options.durationS} s, about ${Math.ceil((total * perRunS + endpoints.length * options.warmupS) / 60)} min`);

  if (options.warmupS > 0) {
    for (const endpoint of endpoints) {
      progress(`warm-up ${endpoint.name} (${options.warmupS} s select-only)`);
      await pgbench.run(target(endpoint), { clients: options.clients, jobs: options.jobs, durationS: options.warmupS, args: WORKLOADS[0].args });
    }
  }

  const failures: string[] = [];
  const dead = new Set<string>();
  let n = 0;
  for (let round = 1; round <= options.rounds; round++) {
    for (const { workload, endpoints: runners } of plan) {
      // Each round starts with a different endpoint, so none is always first after a workload change.
      const shift = runners.length === 0 ? 0 : (round - 1) % runners.length;
      for (const endpoint of [...runners.slice(shift), ...runners.slice(0, shift)]) {
        n++;
        const label = `[${String(n).padStart(String(total).length)}/${total}] round ${round} ${workload.name} ${endpoint.name}`;
        if (dead.has(endpoint.name)) continue;
        if (endpoint.child && !endpoint.child.running) {
          dead.add(endpoint.name);
          failures.push(`${endpoint.name} exited (${endpoint.child.status}); its remaining runs were skipped. Its last output:\n${endpoint.child.tail()}`);
          progress(`${label}: skipped, ${endpoint.name} has exited`);
          continue;
        }
        try {
          if (workload.writes) await resetWrites({ ...server, database: workload.database ?? DATABASE });
          const result = await measure(pgbench, options, workload, endpoint, round, clockTicks);
          state.runs.push(result);
          progress(
            `${label}: ${result.tps.toFixed(0)} tps, ${result.latencyAvgMs.toFixed(3)} ms` +
              (result.proxyCpuUsPerTx === null ? '' : `, ${result.proxyCpuUsPerTx.toFixed(1)} µs CPU/tx`) +
              (result.failed > 0 ? `, ${result.failed} failed` : '') +
              (result.connectMs === null ? '' : `, clients connected in ${result.connectMs.toFixed(0)} ms`),
          );
        } catch (err) {
          if (state.interrupted) throw err;
          state.aborted.push({ workload: workload.name, endpoint: endpoint.name, round, reason: (err as Error).message });
          failures.push(`${label}: ${(err as Error).message}`);
          progress(`${label}: FAILED ${(err as Error).message}`);
        }
      }
    }
  }

  const summaries = summarise(options.workloads, endpoints.map((e) => e.name), state.runs, state.skipped, options.clients, state.aborted);
  const exported = await otlpExports(endpoints);
  const loadAfter = os.loadavg();
  process.stdout.write('\n' + formatTables(summaries, options));
  process.stdout.write(
    `load average ${loadBefore[0].toFixed(1)} before, ${loadAfter[0].toFixed(1)} after, on ${os.cpus().length} cores` +
      ` shared by pgbench, PostgreSQL and the proxy; fsync off. Ratios are the first endpoint's over the other's: TPS > 1 faster, CPU > 1 costlier.\n`,
  );
  for (const { endpoint, received } of exported) {
    process.stdout.write(`${endpoint} OpenTelemetry export, warm-up and all runs: ${received.requests} requests, ${received.bytes} bytes received\n`);
  }
  for (const note of notes) process.stdout.write(`note: ${note}\n`);
  for (const failure of failures) process.stdout.write(`FAILED ${failure}\n`);

  if (options.writeJson) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    const results = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options: { ...options, workloads: options.workloads.map((w) => w.name) },
      environment: {
        node: process.version,
        pgbench: pgbenchVersion,
        postgres: serverVersion,
        postgresSettings: settings,
        cpu: os.cpus()[0]?.model ?? null,
        cores: os.cpus().length,
        clockTicksPerSecond: clockTicks,
        loadAverageBefore: loadBefore,
        loadAverageAfter: loadAfter,
        git: gitState(),
      },
      endpoints: endpoints.map((e) => ({ name: e.name, pooling: e.pooling, description: e.description })),
      notes: [...notes],
      skipped: state.skipped,
      failures,
      summaries,
      otlpExports: exported,
      runs: state.runs,
    };
    writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
    process.stdout.write(`results: ${path.relative(process.cwd(), file)}\n`);
  }
  return failures.length > 0 ? 1 : 0;
}

/** What each exporting endpoint's OTLP receiver has had, asked before the receivers stop. */
async function otlpExports(endpoints: Endpoint[]): Promise<{ endpoint: string; received: ReceiverStats }[]> {
  const exported = [];
  for (const e of endpoints) if (e.otlpReceived) exported.push({ endpoint: e.name, received: await e.otlpReceived() });
  return exported;
}

/** One pgbench run through `endpoint`, with the proxy's CPU time around it. */
async function measure(
  pgbench: Pgbench,
  options: BenchOptions,
  workload: Workload,
  endpoint: Endpoint,
  round: number,
  clockTicks: number,
): Promise<RunResult> {
  const traceFile = endpoint.traceFile;
  const clients = clientsOf(workload, options.clients);
  const pid = endpoint.child?.pid ?? null;
  const startedAt = new Date().toISOString();
  const loadAverage = os.loadavg()[0];
  if (traceFile !== null && existsSync(traceFile)) truncateSync(traceFile);
  const before = pid === null ? null : readCpuTimes(pid);
  const { summary } = await pgbench.run(target(endpoint, workload.database), { clients, jobs: Math.min(options.jobs, clients), durationS: options.durationS, args: workload.args });
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const after = pid === null ? null : readCpuTimes(pid);
  const spentUs = (ticks: (t: { user: number; system: number }) => number) => (before === null || after === null ? null : ((ticks(after) - ticks(before)) * 1e6) / clockTicks);
  const proxyCpuUs = spentUs((t) => t.user + t.system);
  const proxyUserCpuUs = spentUs((t) => t.user);
  const perTx = (us: number | null) => (us === null || summary.transactions === 0 ? null : us / summary.transactions);
  return {
    startedAt,
    loadAverage,
    workload: workload.name,
    endpoint: endpoint.name,
    round,
    ...summary,
    proxyCpuUs,
    proxyCpuUsPerTx: perTx(proxyCpuUs),
    proxyUserCpuUsPerTx: perTx(proxyUserCpuUs),
    // The trace is emptied before each run, so its size is what this run wrote (less the last few KiB still buffered).
    traceBytes: traceFile === null ? null : existsSync(traceFile) ? statSync(traceFile).size : 0,
  };
}

function target(endpoint: Endpoint, database = DATABASE): PgbenchTarget {
  return { host: endpoint.host, port: endpoint.port, user: USER, password: PASSWORD, database };
}

/** What pgbench itself does before a TPC-B run (we pass -n so it is not done through the endpoint under test). */
async function resetWrites(server: PgbenchTarget): Promise<void> {
  await directQuery(server, 'VACUUM pgbench_branches', 'VACUUM pgbench_tellers', 'TRUNCATE pgbench_history');
}

async function directQuery(server: PgbenchTarget, ...statements: string[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: server.database });
  await client.connect();
  try {
    let result!: pg.QueryResult;
    for (const sql of statements) result = await client.query(sql);
    return result;
  } finally {
    await client.end();
  }
}

async function cleanUp(state: State): Promise<void> {
  await state.children.stopAll();
  const server = state.server ?? (await state.serverStarting?.catch(() => null)) ?? null;
  state.server = state.serverStarting = null;
  if (server !== null) {
    // After Ctrl-C the server has had the terminal's SIGINT too and may be gone already, and then stop() never settles.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([server.stop(), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    rmSync(path.dirname(server.dataDir), { recursive: true, force: true });
  }
  if (state.tempDir !== null) rmSync(state.tempDir, { recursive: true, force: true });
}

function commandOutput(command: string, args: string[]): string | null {
  try {
    return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return null;
  }
}

function gitState(): { commit: string | null; dirty: boolean | null } {
  const commit = commandOutput('git', ['-C', PACKAGE_ROOT, 'rev-parse', 'HEAD']);
  const status = commandOutput('git', ['-C', PACKAGE_ROOT, 'status', '--porcelain', '--untracked-files=no']);
  return { commit, dirty: status === null ? null : status !== '' };
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | null = null;
  return () => (promise ??= fn());
}

main().then(
  (code) => {
    // 130: interrupted; the signal handler exits once everything is stopped.
    if (code !== 130) process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
