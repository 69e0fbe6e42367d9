/**
 * The benchmark's parsers: if pgbench's summary or /proc's stat line were
 * misread, every number in the tables would be wrong without any error.
 */
import t from 'tap';
import { parseBenchOptions, UsageError } from '../../bench/options.js';
import { parsePgbenchOutput } from '../../bench/pgbench.js';
import { parseCpuTicks, parseCpuTimes } from '../../bench/process-cpu.js';
import { formatTables, median, summarise, type RunResult } from '../../bench/report.js';
import { WORKLOADS } from '../../bench/workloads.js';

// pgbench 15 against PostgreSQL 18, as printed on this project's machines.
const PGBENCH_15 = `pgbench (15.18 (Debian 15.18-0+deb12u1), server 18.4)
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 1
number of threads: 1
maximum number of tries: 1
duration: 1 s
number of transactions actually processed: 11950
number of failed transactions: 0 (0.000%)
latency average = 0.083 ms
initial connection time = 9.296 ms
tps = 12059.500262 (without initial connection time)
`;

// pgbench 13 and older print two tps lines; the one without connection time is the comparable one.
const PGBENCH_13 = `transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
duration: 10 s
number of transactions actually processed: 9876
latency average = 8.101 ms
tps = 980.100000 (including connections establishing)
tps = 987.654321 (excluding connections establishing)
`;

t.test('pgbench summary', async (t) => {
  t.same(parsePgbenchOutput(PGBENCH_15), { tps: 12059.500262, latencyAvgMs: 0.083, transactions: 11950, failed: 0, connectMs: 9.296 });
  t.same(parsePgbenchOutput(PGBENCH_13), { tps: 987.654321, latencyAvgMs: 8.101, transactions: 9876, failed: 0, connectMs: null });
  t.equal(parsePgbenchOutput(PGBENCH_15.replace('failed transactions: 0 (0.000%)', 'failed transactions: 12 (0.100%)')).failed, 12);
  const aborted = 'pgbench: error: connection to server at "127.0.0.1", port 1 failed: Connection refused\n';
  t.throws(() => parsePgbenchOutput(aborted), /pgbench printed no summary[\s\S]*Connection refused/);
});

t.test('CPU ticks from /proc/<pid>/stat', async (t) => {
  // Fields 14 and 15 (utime 1200, stime 345); the command name holds spaces and a ')'.
  const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1200 345 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
  t.equal(parseCpuTicks(stat), 1545);
  t.same(parseCpuTimes(stat), { user: 1200, system: 345 }, "the proxy's own code and the kernel apart");
  t.equal(parseCpuTicks('7 (pgbouncer) S 1 7 7 0 -1 4194560 10 0 0 0 3 4 0 0 20 0 1 0 5 1 1'), 7);
  t.throws(() => parseCpuTicks('garbage'), /unexpected \/proc stat line/);
});

t.test('command line', async (t) => {
  const defaults = parseBenchOptions([])!;
  t.match(defaults, { durationS: 10, rounds: 3, clients: 8, jobs: 2, scale: 10, warmupS: 2, writeJson: true });
  t.same(defaults.endpoints, ['direct', 'pipe', 'txproxy', 'txproxy-prod', 'txproxy-pooled', 'txproxy-tx', 'txproxy-tx-prod', 'pgbouncer', 'pgbouncer-tx']);
  t.same(defaults.workloads.map((w) => w.name), [
    'select-simple',
    'select-extended',
    'select-prepared',
    'tpcb',
    'select-connect',
    'pool2-select-simple',
    'pool2-select-prepared',
    'pool2-tpcb',
    'pool4-select-200',
  ]);
  const quick = parseBenchOptions(['--quick', '--rounds', '2', '--only', 'pgbouncer,txproxy', '--workloads', 'tpcb'])!;
  t.match(quick, { durationS: 3, rounds: 2, scale: 1, endpoints: ['txproxy', 'pgbouncer'] }, 'flags override --quick; table order kept');
  t.same(quick.workloads.map((w) => w.name), ['tpcb']);
  t.equal(parseBenchOptions(['--clients', '1'])!.jobs, 1, 'one client gets one thread');
  t.equal(parseBenchOptions(['--help']), null);
  t.throws(() => parseBenchOptions(['--only', 'txproxy,pgpool']), new UsageError("--only expects a comma-separated list of direct, pipe, txproxy, txproxy-prod, txproxy-pooled, txproxy-tx, txproxy-tx-prod, pgbouncer, pgbouncer-tx; got 'txproxy,pgpool'"));
  t.throws(() => parseBenchOptions(['--duration', '0']), /--duration expects a whole number of at least 1/);
  t.throws(() => parseBenchOptions(['--clients', '2', '--jobs', '4']), /--jobs 4 is more than --clients 2/);
  t.throws(() => parseBenchOptions(['--fast']), UsageError);
});

t.test('summary: medians over rounds and txproxy ratios', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  const run = (endpoint: RunResult['endpoint'], round: number, tps: number, cpuPerTx: number | null): RunResult => ({
    startedAt: '2026-01-01T00:00:00.000Z',
    loadAverage: 1,
    workload: 'tpcb',
    endpoint,
    round,
    tps,
    latencyAvgMs: 8 / tps,
    transactions: tps * 10,
    failed: 0,
    connectMs: 10,
    proxyCpuUs: cpuPerTx === null ? null : cpuPerTx * tps * 10,
    proxyCpuUsPerTx: cpuPerTx,
    proxyUserCpuUsPerTx: cpuPerTx === null ? null : cpuPerTx / 4,
    traceBytes: endpoint === 'txproxy' ? tps * 10 * 4000 : null,
  });
  const runs = [
    run('direct', 1, 1000, null),
    run('direct', 2, 1200, null),
    run('direct', 3, 1100, null),
    run('pgbouncer', 1, 900, 200),
    run('pgbouncer', 2, 1000, 240),
    run('pgbouncer', 3, 800, 210),
    run('txproxy', 1, 880, 420),
    run('txproxy', 2, 440, 700),
    run('txproxy', 3, 900, 434),
  ];
  const tpcb = WORKLOADS.filter((w) => w.name === 'tpcb');
  const [summary] = summarise(tpcb, ['direct', 'pipe', 'txproxy', 'pgbouncer'], runs, [], 8);
  t.same(
    summary.rows.map((r) => [r.endpoint, r.tpsMedian, r.tpsMin, r.tpsMax, r.cpuUsPerTxMedian]),
    [
      ['direct', 1100, 1000, 1200, null],
      ['txproxy', 880, 440, 900, 434],
      ['pgbouncer', 900, 800, 1000, 210],
    ],
    'an endpoint without runs (pipe) has no row',
  );
  t.equal(summary.rows[1].cpuUsPerRoundTrip, 434 / 7, 'TPC-B is seven round trips a transaction');
  t.equal(summary.rows[1].traceBytesPerTx, 4000);
  t.same(summary.ratios, [
    { subject: 'txproxy', baseline: 'direct', metric: 'tps', value: 0.8, target: null },
    { subject: 'txproxy', baseline: 'pgbouncer', metric: 'tps', value: 880 / 900, target: null },
    { subject: 'txproxy', baseline: 'pipe', metric: 'tps', value: null, target: null },
    { subject: 'txproxy', baseline: 'pipe', metric: 'cpu', value: null, target: { bound: 'at most', value: 1.25 } },
    { subject: 'txproxy', baseline: 'pgbouncer', metric: 'cpu', value: 434 / 210, target: null },
  ]);
});

t.test('pooling: targets per workload kind, skipped endpoints in the table', async (t) => {
  const run = (workload: string, endpoint: RunResult['endpoint'], tps: number, cpuPerTx: number): RunResult => ({
    startedAt: '2026-01-01T00:00:00.000Z',
    loadAverage: 1,
    workload,
    endpoint,
    round: 1,
    tps,
    latencyAvgMs: 8 / tps,
    transactions: tps * 10,
    failed: 0,
    connectMs: 10,
    proxyCpuUs: cpuPerTx * tps * 10,
    proxyCpuUsPerTx: cpuPerTx,
    proxyUserCpuUsPerTx: cpuPerTx === null ? null : cpuPerTx / 4,
    traceBytes: null,
  });
  const pick = (...names: string[]) => WORKLOADS.filter((w) => names.includes(w.name));
  const runs = [
    run('select-connect', 'txproxy', 300, 900),
    run('select-connect', 'txproxy-pooled', 850, 400),
    run('select-connect', 'pgbouncer', 1000, 300),
    run('select-simple', 'txproxy', 10000, 50),
    run('select-simple', 'txproxy-pooled', 10500, 48),
    run('select-simple', 'pgbouncer', 12000, 20),
    run('pool2-select-simple', 'pgbouncer-tx', 9000, 30),
  ];
  const skipped = [{ workload: 'pool2-select-prepared', endpoint: 'pgbouncer-tx' as const, reason: 'cannot run -M prepared' }];
  const summaries = summarise(
    pick('select-simple', 'select-connect', 'pool2-select-simple', 'pool2-select-prepared'),
    ['txproxy', 'txproxy-pooled', 'pgbouncer', 'pgbouncer-tx'],
    runs,
    skipped,
    8,
  );
  const targets = (name: string) =>
    summaries.find((s) => s.workload === name)!.ratios.filter((r) => r.target !== null).map((r) => [r.subject, r.baseline, r.value, r.target!.value]);
  t.same(targets('select-connect'), [['txproxy-pooled', 'pgbouncer', 0.85, 0.9]], 'a connection per transaction: pooled against PgBouncer session mode');
  t.same(
    targets('select-simple'),
    [
      ['txproxy', 'pipe', null, 1.25],
      ['txproxy-pooled', 'txproxy', 1.05, 1],
    ],
    'persistent connections: pooled no slower than relayed; no pipe measured, so no CPU ratio to it',
  );
  t.same(targets('pool2-select-simple'), [], 'no transaction-mode txproxy measured: no target to print');
  const pool2 = summaries.find((s) => s.workload === 'pool2-select-simple')!;
  t.match(pool2, { clients: 16, poolSize: 2 }, '16 clients whatever --clients says');

  const text = formatTables(summaries, { rounds: 1, durationS: 3 });
  t.match(text, /select-connect: .*8 clients, 1 × 3 s/);
  t.match(text, /pool2-select-simple: .*16 clients on a pool of 2, 1 × 3 s/);
  t.match(text, /txproxy-pooled TPS ratio: \/pgbouncer 0\.85 \(target ≥ 0\.90: not met\)  \/txproxy 2\.83/);
  t.match(text, /pool2-select-prepared: [^\n]*\n[^\n]*\n  pgbouncer-tx\s+skipped: cannot run -M prepared\n/, 'a skipped endpoint has its own line under the header');
  t.match(text, /targets \(ratios of medians, this run\):\n  select-simple +txproxy \/ pipe +CPU\/tx +— +target ≤ 1\.25 +not measured\n  select-simple +txproxy-pooled \/ txproxy +TPS +1\.05 +target ≥ 1\.00 +met\n  select-connect +txproxy-pooled \/ pgbouncer +TPS +0\.85 +target ≥ 0\.90 +not met\n/);
});

t.test('production configuration: TPS at least, CPU at most, against the pipe on select-simple and TPC-B', async (t) => {
  const run = (workload: string, endpoint: RunResult['endpoint'], tps: number, cpuPerTx: number): RunResult => ({
    startedAt: '2026-01-01T00:00:00.000Z',
    loadAverage: 1,
    workload,
    endpoint,
    round: 1,
    tps,
    latencyAvgMs: 8 / tps,
    transactions: tps * 10,
    failed: 0,
    connectMs: 10,
    proxyCpuUs: cpuPerTx * tps * 10,
    proxyCpuUsPerTx: cpuPerTx,
    proxyUserCpuUsPerTx: cpuPerTx === null ? null : cpuPerTx / 4,
    traceBytes: endpoint.startsWith('txproxy') ? tps * 10 * 10 : null,
  });
  const pick = (...names: string[]) => WORKLOADS.filter((w) => names.includes(w.name));
  const runs = [
    run('select-simple', 'pipe', 10000, 40),
    run('select-simple', 'txproxy', 8000, 52),
    run('select-simple', 'txproxy-prod', 9600, 43),
    run('tpcb', 'pipe', 2000, 200),
    run('tpcb', 'txproxy', 1800, 240),
    run('tpcb', 'txproxy-prod', 1880, 230),
    run('select-extended', 'pipe', 10000, 40),
    run('select-extended', 'txproxy-prod', 5000, 80),
  ];
  const summaries = summarise(pick('select-simple', 'select-extended', 'tpcb'), ['pipe', 'txproxy', 'txproxy-prod'], runs, [], 8);
  const targets = (name: string) =>
    summaries
      .find((s) => s.workload === name)!
      .ratios.filter((r) => r.target !== null)
      .map((r) => [r.subject, r.metric, r.target!.bound, r.target!.value]);
  const bar = [
    ['txproxy', 'cpu', 'at most', 1.25],
    ['txproxy-prod', 'tps', 'at least', 0.95],
    ['txproxy-prod', 'cpu', 'at most', 1.1],
  ];
  t.same(targets('select-simple'), bar);
  t.same(targets('tpcb'), bar);
  t.same(targets('select-extended'), [], 'the bar is set on select-simple and TPC-B only');

  const text = formatTables(summaries, { rounds: 1, durationS: 8 });
  t.match(text, /txproxy-prod TPS ratio: \/pipe 0\.96 \(target ≥ 0\.95: met\)  \/pgbouncer —   CPU\/tx ratio: \/pipe 1\.07 \(target ≤ 1\.10: met\)  \/txproxy 0\.83/);
  t.match(text, /  tpcb +txproxy-prod \/ pipe +TPS +0\.94 +target ≥ 0\.95 +not met\n/, 'TPS below its floor is not met');
  t.match(text, /  tpcb +txproxy-prod \/ pipe +CPU\/tx +1\.15 +target ≤ 1\.10 +not met\n/, 'CPU above its ceiling is not met');
  t.match(text, /  select-simple +txproxy \/ pipe +CPU\/tx +1\.30 +target ≤ 1\.25 +not met\n/);
  t.match(text, /  tpcb +txproxy \/ pipe +CPU\/tx +1\.20 +target ≤ 1\.25 +met\n/);
});
