/**
 * The benchmark's transaction-pool endpoints and workloads: what txproxy and
 * PgBouncer are configured with (checked by txproxy's own config loader),
 * which targets apply where, and how a workload that must hold 200 clients
 * without errors is reported.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { buildConfig, parseConfigFile } from '../../src/config/load.js';
import { poolSettingsFor } from '../../src/pool/pool-config.js';
import { takesPart } from '../../bench/endpoints.js';
import { openFilesNeeded, parseOpenFilesLimit } from '../../bench/open-files.js';
import { parsePgbenchOutput } from '../../bench/pgbench.js';
import { writePgbouncerConfig } from '../../bench/pgbouncer.js';
import { formatTables, summarise, type Abort, type RunResult } from '../../bench/report.js';
import { writePooledTxproxyConfig } from '../../bench/txproxy-config.js';
import { databasePools, WORKLOADS } from '../../bench/workloads.js';

const DEFAULT_CONFIG = path.resolve(import.meta.dirname, '..', '..', 'config', 'txproxy.yaml');

function run(workload: string, endpoint: RunResult['endpoint'], tps: number, cpuPerTx: number, failed = 0): RunResult {
  return {
    startedAt: '2026-01-01T00:00:00.000Z',
    loadAverage: 1,
    workload,
    endpoint,
    round: 1,
    tps,
    latencyAvgMs: 8 / tps,
    transactions: tps * 10,
    failed,
    connectMs: 100,
    proxyCpuUs: cpuPerTx * tps * 10,
    proxyCpuUsPerTx: cpuPerTx,
    proxyUserCpuUsPerTx: cpuPerTx === null ? null : cpuPerTx / 4,
    traceBytes: null,
  };
}

const pick = (...names: string[]) => WORKLOADS.filter((w) => names.includes(w.name));

t.test('pool4-select-200: 200 clients on a pool of 4, in a database of its own, on the transaction pools only', async (t) => {
  const [pool4] = pick('pool4-select-200');
  t.match(pool4, { kind: 'transaction-pool', clients: 200, poolSize: 4, database: 'bench_pool4', mustHoldWithoutErrors: true, args: ['-S', '-M', 'simple'] });
  t.ok(takesPart('transaction', pool4.kind));
  t.notOk(takesPart('session', pool4.kind));
  t.notOk(takesPart('none', pool4.kind));
  t.same(databasePools(WORKLOADS), [{ database: 'bench_pool4', poolSize: 4 }], 'only the workload with a database of its own asks for a pool size');
  t.same(databasePools(pick('pool2-select-simple', 'pool2-tpcb')), [], 'the pool2 workloads use the endpoints’ default pool of 2');
});

t.test('txproxy-tx configuration, as txproxy itself reads it', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writePooledTxproxyConfig(path.join(dir, 'txproxy-tx.yaml'), DEFAULT_CONFIG, {
    mode: 'transaction',
    poolSize: 2,
    databasePools: [{ database: 'bench_pool4', poolSize: 4 }],
    authFile: '/tmp/users.txt',
    maxClients: 200,
  });
  const config = buildConfig(parseConfigFile(readFileSync(file, 'utf8'), file), {}, {}, file);
  t.match(config, { max_client_conn: 210, pool: { mode: 'transaction', default_pool_size: 2 }, auth: { type: 'scram-sha-256', file: '/tmp/users.txt' } });
  t.equal(poolSettingsFor(config.pool, 'postgres', 'postgres', 'transaction').pool_size, 2, 'the pgbench database: a pool of 2');
  t.equal(poolSettingsFor(config.pool, 'bench_pool4', 'postgres', 'transaction').pool_size, 4, 'bench_pool4: a pool of 4');
  const defaults = buildConfig(parseConfigFile(readFileSync(DEFAULT_CONFIG, 'utf8'), DEFAULT_CONFIG), {}, {});
  t.same(config.trace, defaults.trace, 'everything else as in the default configuration');
  t.same(config.lock_monitor, defaults.lock_monitor);

  // txproxy-pooled goes through the same file, in session mode with a pool per client.
  const session = writePooledTxproxyConfig(path.join(dir, 'txproxy-pooled.yaml'), DEFAULT_CONFIG, {
    mode: 'session',
    poolSize: 10,
    databasePools: [],
    authFile: '/tmp/users.txt',
    maxClients: 8,
  });
  t.match(buildConfig(parseConfigFile(readFileSync(session, 'utf8'), session), {}, {}, session), {
    max_client_conn: 18,
    pool: { mode: 'session', default_pool_size: 10, databases: {} },
  });
});

t.test('pgbouncer-tx configuration: the same pool sizes and client limit', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-pgbouncer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ini = readFileSync(
    writePgbouncerConfig({
      dir: path.join(dir, 'pgbouncer-tx'),
      listenPort: 6500,
      upstreamHost: '127.0.0.1',
      upstreamPort: 5500,
      database: 'postgres',
      databasePools: [{ database: 'bench_pool4', poolSize: 4 }],
      user: 'postgres',
      password: 'postgres',
      poolMode: 'transaction',
      poolSize: 2,
      maxClients: 200,
      maxPreparedStatements: null,
    }),
    'utf8',
  );
  t.match(ini, /^postgres = host=127\.0\.0\.1 port=5500 dbname=postgres$/m);
  t.match(ini, /^bench_pool4 = host=127\.0\.0\.1 port=5500 dbname=bench_pool4 pool_size=4$/m);
  t.match(ini, /^pool_mode = transaction$/m);
  t.match(ini, /^default_pool_size = 2$/m);
  t.match(ini, /^max_client_conn = 210$/m);
  t.notMatch(ini, /max_prepared_statements/);
});

t.test('targets: txproxy-tx at least PgBouncer on pool2 select-simple and TPC-B; -M prepared for txproxy alone', async (t) => {
  const runs = [
    run('pool2-select-simple', 'txproxy-tx', 9000, 80),
    run('pool2-select-simple', 'pgbouncer-tx', 10000, 40),
    run('pool2-select-prepared', 'txproxy-tx', 8000, 90),
    run('pool2-tpcb', 'txproxy-tx', 1600, 500),
    run('pool2-tpcb', 'pgbouncer-tx', 1500, 250),
  ];
  const skipped = [{ workload: 'pool2-select-prepared', endpoint: 'pgbouncer-tx' as const, reason: 'PgBouncer 1.18.0 in transaction mode cannot run -M prepared' }];
  const summaries = summarise(pick('pool2-select-simple', 'pool2-select-prepared', 'pool2-tpcb'), ['txproxy-tx', 'pgbouncer-tx'], runs, skipped, 8);
  const targets = (name: string) =>
    summaries.find((s) => s.workload === name)!.ratios.filter((r) => r.target !== null).map((r) => [r.subject, r.baseline, r.metric, r.value, r.target!.value]);
  t.same(targets('pool2-select-simple'), [['txproxy-tx', 'pgbouncer-tx', 'tps', 0.9, 1]]);
  t.same(targets('pool2-tpcb'), [['txproxy-tx', 'pgbouncer-tx', 'tps', 1600 / 1500, 1]]);
  t.same(targets('pool2-select-prepared'), [], 'no PgBouncer to compare with: no target, not a target missed');

  const text = formatTables(summaries, { rounds: 1, durationS: 3 });
  t.match(text, /pool2-select-prepared: [^\n]*\n[^\n]*\n  txproxy-tx +8000 [^\n]*\n  pgbouncer-tx +skipped: PgBouncer 1\.18\.0/, 'txproxy-tx measured alone');
  t.match(text, /targets \(ratios of medians, this run\):\n  pool2-select-simple +txproxy-tx \/ pgbouncer-tx +TPS +0\.90 +target ≥ 1\.00 +not met\n  pool2-tpcb +txproxy-tx \/ pgbouncer-tx +TPS +1\.07 +target ≥ 1\.00 +met\n$/);
});

t.test('pool4-select-200: held without errors, or not', async (t) => {
  const [pool4] = pick('pool4-select-200');
  const endpoints = ['txproxy-tx', 'pgbouncer-tx'] as const;

  const clean = summarise([pool4], [...endpoints], [run('pool4-select-200', 'txproxy-tx', 3000, 200), run('pool4-select-200', 'pgbouncer-tx', 8000, 60)], [], 8);
  t.same(
    clean[0].held.map((h) => [h.endpoint, h.runs, h.failedTransactions, h.abortedRuns, h.met]),
    [
      ['txproxy-tx', 1, 0, 0, true],
      ['pgbouncer-tx', 1, 0, 0, true],
    ],
  );
  t.same(clean[0].ratios.filter((r) => r.target !== null), [], 'held to no errors, not to a TPS ratio');
  const text = formatTables(clean, { rounds: 1, durationS: 10 });
  t.match(text, /pool4-select-200: select-only, simple protocol \(-S -M simple\), 200 clients on a pool of 4, 1 × 10 s\n  endpoint +TPS \(median\) +TPS min–max +latency ms +failed tx +proxy CPU µs\/tx +of it user +µs\/round trip\n  txproxy-tx +3000 +3000–3000 +0\.003 +0 +200\.0 +50\.0 +200\.0\n/);
  t.match(text, /  txproxy-tx held 200 clients: 0 failed transactions, 0 aborted runs in 1 runs \(target 0: met\)\n/);
  t.match(text, /  pool4-select-200 +txproxy-tx +errors +0 +target 0 +met\n  pool4-select-200 +pgbouncer-tx +errors +0 +target 0 +met\n/);

  // Failed transactions in a finished run, and a run that ended without a summary.
  const aborted: Abort[] = [{ workload: 'pool4-select-200', endpoint: 'pgbouncer-tx', round: 2, reason: 'pgbench … failed (2):\nclient 17 aborted' }];
  const broken = summarise(
    [pool4],
    [...endpoints],
    [run('pool4-select-200', 'txproxy-tx', 3000, 200, 12), run('pool4-select-200', 'pgbouncer-tx', 8000, 60)],
    [],
    8,
    aborted,
  );
  t.same(
    broken[0].held.map((h) => [h.endpoint, h.failedTransactions, h.abortedRuns, h.met]),
    [
      ['txproxy-tx', 12, 0, false],
      ['pgbouncer-tx', 0, 1, false],
    ],
  );
  const brokenText = formatTables(broken, { rounds: 2, durationS: 10 });
  t.match(brokenText, /  txproxy-tx +3000 +3000–3000 +0\.003 +12 /, 'failed transactions in their column');
  t.match(brokenText, /  pgbouncer-tx +round 2 aborted: pgbench … failed \(2\):\n/, 'an aborted run has its line, its first line of output');
  t.match(brokenText, /  pgbouncer-tx held 200 clients: 0 failed transactions, 1 aborted runs in 2 runs \(target 0: not met\)\n/);
  t.match(brokenText, /  pool4-select-200 +txproxy-tx +errors +12 +target 0 +not met\n  pool4-select-200 +pgbouncer-tx +errors +1 +target 0 +not met\n/);

  const onlyAborted = summarise([pool4], [...endpoints], [], [], 8, [{ ...aborted[0], round: 1 }]);
  t.same(onlyAborted[0].held.map((h) => [h.endpoint, h.runs, h.met]), [['pgbouncer-tx', 0, false]], 'an endpoint whose every run aborted did not hold');
});

t.test('a pgbench run that processed no transaction is an error that says why', async (t) => {
  // pgbench 15 with 200 clients through PgBouncer and -T 2: logging them in took the whole run.
  const output = `pgbench (15.18 (Debian 15.18-0+deb12u1), server 18.4)
transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 200
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 0
number of failed transactions: 0 (NaN%)
`;
  t.throws(() => parsePgbenchOutput(output), /pgbench processed no transaction in its run \(if it has many clients, logging them in may take longer than a short --duration\)/);
});

t.test('open-file limit', async (t) => {
  const limits = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;
  t.equal(parseOpenFilesLimit(limits), 1024, 'the soft limit, which is what a process gets');
  t.equal(parseOpenFilesLimit(limits.replace('1024    ', 'unlimited')), null);
  t.equal(parseOpenFilesLimit('Max cpu time unlimited unlimited seconds\n'), null);
  t.ok(openFilesNeeded(200) > 2 * 200, 'a socket per client in the proxy, a server connection each in the worst case, and its own files');
  t.ok(openFilesNeeded(200) <= 1024, 'a common default soft limit is enough for 200 clients');
});
