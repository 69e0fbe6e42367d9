/**
 * pgbench through transaction pooling: sixteen clients on a pool of two
 * server connections, in each of pgbench's query modes. The oracle is the
 * same as without pooling: pgbench's own count of the transactions it
 * processed (every client ran all of its -t transactions, none failed), the
 * transactions txproxy saw commit, and the rows the server itself holds
 * afterwards must agree exactly; and every statement ran on one of the
 * pool's two backends.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { PoolSnapshot } from '../../src/pool/pool-snapshot.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, type TestProxy } from '../helpers/proxy.js';
import { startTransactionProxy } from '../helpers/transaction-pool.js';
import { pgbench, pgbenchInit, pgbenchProgram, type PgbenchReport } from '../helpers/pgbench.js';
import { checkTraceInvariants, resetRecords, statementRecords } from '../helpers/trace-checks.js';
import { SAVEPOINT_SCRIPT } from '../helpers/pgbench-scripts.js';

const CLIENTS = 16;
const POOL_SIZE = 2;

async function suite(): Promise<void> {
  const postgres = await startPostgres();
  const proxy = await startTransactionProxy(postgres, POOL_SIZE);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-txpool-pgbench-'));
  t.teardown(async () => {
    await proxy.stop();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(path.join(dir, 'savepoints.sql'), SAVEPOINT_SCRIPT);
  const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };

  // pgbench -i itself runs through the pool: DROP, CREATE, COPY, VACUUM, ALTER TABLE.
  await pgbenchInit(endpoint);

  t.beforeEach(() => resetRecords(proxy));

  const historyRows = async (): Promise<number> => (await postgres.sql('SELECT count(*)::int AS n FROM pgbench_history')).rows[0].n;
  const pool = (): PoolSnapshot => proxy.app.pools!.manager.snapshot()[0];

  /**
   * pgbench with -c 16 -t `perClient`, its report checked for a clean run.
   *
   * In -M prepared each client prepares a command the first time it runs
   * it with PQprepare, which blocks the pgbench thread until the server
   * answers. A thread serving several clients then waits for a server
   * connection that another of its own clients holds, idle in its
   * transaction until that same thread comes back to it: a deadlock inside
   * pgbench, with any transaction pooler. So prepared runs get a thread
   * per client; the other modes share two threads among the sixteen.
   */
  async function run(t: Test, perClient: number, args: string[]): Promise<PgbenchReport> {
    const threads = args.includes('prepared') ? CLIENTS : 2;
    const report = await pgbench(endpoint, ['-n', '-c', String(CLIENTS), '-j', String(threads), '-t', String(perClient), ...args], { cwd: dir });
    await eventually(() => proxy.app.server.sessions.size === 0, 15_000, 'pgbench sessions to close');
    t.comment(`pgbench ${args.join(' ')}: ${report.processed} transactions processed`);
    t.equal(report.clients, CLIENTS);
    t.equal(report.processed, CLIENTS * perClient, 'every client ran all its transactions');
    t.equal(report.failed, 0, 'pgbench saw no failed transaction');
    t.notMatch(report.output.stderr, /error|abort/i, 'no client error');
    checkPool(t, proxy, pool());
    return report;
  }

  /** Every statement ran on one of the pool's links; the pool never opened more than its size. */
  function checkPool(t: Test, proxy: TestProxy, snapshot: PoolSnapshot): void {
    t.equal(snapshot.mode, 'transaction');
    t.ok(snapshot.links.length <= POOL_SIZE, `at most ${POOL_SIZE} server connections (${snapshot.links.length})`);
    t.equal(snapshot.servers.active, 0, 'no link is lent once the clients left');
    const linkPids = new Set(snapshot.links.map((link) => link.backend_pid));
    const used = new Set(statementRecords(proxy).map((r) => r['pg.backend_pid'] as number));
    t.same([...used].filter((pid) => !linkPids.has(pid)), [], `statements ran on the pool's backends only (${[...used].join(', ')})`);
    t.equal(used.size, POOL_SIZE, 'and on both of them');
  }

  for (const mode of ['simple', 'extended', 'prepared'] as const) {
    t.test(`TPC-B, -M ${mode}: committed transactions = pgbench's count = history rows`, async (t) => {
      const before = await historyRows();
      const report = await run(t, 50, ['-M', mode]);
      const explicit = proxy.transactions.filter((x) => !x.implicit);
      const committed = explicit.filter((x) => x.outcome === 'commit');
      t.equal(committed.length, report.processed, 'committed explicit transactions recorded by txproxy = pgbench transactions');
      t.equal(explicit.length, committed.length, 'and none ended otherwise');
      t.ok(
        committed.every((x) => x.statements === 7 && x.writes === 4 && x.firstError === null),
        'each is BEGIN, 3 UPDATEs, a SELECT, an INSERT and END',
      );
      t.equal((await historyRows()) - before, report.processed, 'the server agrees: one history row per transaction');
      t.same(proxy.statements.filter((s) => s.error !== null).map((s) => `${s.error!.code} ${s.error!.message}`), [], 'no statement failed');
      if (mode === 'prepared') {
        const names = new Set(proxy.statements.filter((s) => s.info.operation === 'UPDATE').map((s) => s.statementName));
        t.ok(names.size >= 3 && ![...names].includes(''), `named statements the clients see under their own names (${[...names].join(', ')})`);
      }
      checkTraceInvariants(t, proxy);
    });
  }

  for (const mode of ['simple', 'extended', 'prepared'] as const) {
    t.test(`select-only (-S), -M ${mode}: one implicit transaction per pgbench transaction`, async (t) => {
      const report = await run(t, 100, ['-S', '-M', mode]);
      const selects = proxy.transactions.filter(
        (x) => x.implicit && x.outcome === 'commit' && x.statementLog.some((s) => s.text.includes('FROM pgbench_accounts')),
      );
      t.equal(selects.length, report.processed, 'one committed implicit transaction per select');
      t.equal(proxy.transactions.filter((x) => !x.implicit).length, 0, 'no explicit transactions');
      const returned = proxy.statements.filter((s) => s.text.includes('FROM pgbench_accounts'));
      t.ok(returned.every((s) => s.dataRows === 1 && s.error === null), 'each select returned its one row');
      checkTraceInvariants(t, proxy);
    });
  }

  for (const mode of ['simple', 'prepared'] as const) {
    t.test(`savepoint script, -M ${mode}: every savepoint counted, the rolled-back insert gone`, async (t) => {
      const before = await historyRows();
      const report = await run(t, 20, ['-M', mode, '-f', 'savepoints.sql']);
      const explicit = proxy.transactions.filter((x) => !x.implicit);
      const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
      t.equal(explicit.filter((x) => x.outcome === 'commit').length, report.processed, 'one committed transaction per pgbench transaction');
      t.equal(explicit.length, report.processed);
      t.equal(sum(explicit.map((x) => x.savepointsCreated)), 3 * report.processed, 'created: 3 per transaction');
      t.equal(sum(explicit.map((x) => x.savepointsRolledBack)), report.processed, 'rolled back: 1 per transaction');
      t.equal(sum(explicit.map((x) => x.savepointsReleased)), 3 * report.processed, 'released: 3 per transaction');
      t.ok(
        explicit.every((x) => x.maxSavepointDepth === 3 && x.statements === 11 && x.writes === 4 && x.firstError === null),
        'each: depth 3, 11 statements, 4 writes, no error',
      );
      t.equal(await historyRows(), before, 'the INSERT rolled back to "S2" left no row');
      checkTraceInvariants(t, proxy);
    });
  }
}

if (pgbenchProgram() === null) t.plan(0, 'pgbench is not installed (Debian: postgresql-15)');
else await suite();
