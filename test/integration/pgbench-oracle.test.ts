/**
 * The oracle: pgbench counts the transactions it completed, txproxy counts
 * the transactions it saw commit, and the two must agree exactly — in
 * pgbench's simple, extended and prepared query modes, with four clients
 * running at once for a fixed time.
 */
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { pgbench, pgbenchInit, pgbenchProgram } from '../helpers/pgbench.js';
import { checkTraceInvariants, resetRecords } from '../helpers/trace-checks.js';

if (pgbenchProgram() === null) t.plan(0, 'pgbench is not installed (Debian: postgresql-15)');
else await suite();

async function suite(): Promise<void> {
  const postgres = await startPostgres();
  const proxy = await startProxy(postgres);
  t.teardown(async () => {
    await proxy.stop();
    await postgres.stop();
  });
  const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };

  await pgbenchInit(endpoint);

  t.beforeEach(() => resetRecords(proxy));

  async function historyRows(): Promise<number> {
    return (await postgres.sql('SELECT count(*)::int AS n FROM pgbench_history')).rows[0].n;
  }

  /** Waits until every pgbench connection has left txproxy. */
  async function allSessionsClosed(): Promise<void> {
    await eventually(() => proxy.app.server.sessions.size === 0, 10_000, 'pgbench sessions to close');
  }

  for (const mode of ['simple', 'extended', 'prepared'] as const) {
    t.test(`TPC-B, -M ${mode}, 4 clients for 3 s: committed explicit transactions = pgbench's transactions processed`, async (t) => {
      const historyBefore = await historyRows();
      // -n: no vacuum before the run (the simple-mode run below keeps it, to show those are not counted).
      const args = ['-c', '4', '-j', '2', '-T', '3', '-M', mode, ...(mode === 'simple' ? [] : ['-n'])];
      const report = await pgbench(endpoint, args);
      await allSessionsClosed();
      t.equal(report.failed, 0, 'pgbench saw no failed transactions');
      t.ok(report.processed > 0, `pgbench processed ${report.processed} transactions`);

      const explicit = proxy.transactions.filter((x) => !x.implicit);
      const committed = explicit.filter((x) => x.outcome === 'commit');
      t.equal(committed.length, report.processed, 'committed explicit transactions recorded by txproxy = transactions processed by pgbench');
      t.equal(explicit.length, committed.length, 'and none ended otherwise');
      t.ok(
        committed.every((x) => x.statements === 7 && x.writes === 4 && x.savepointsCreated === 0 && x.firstError === null),
        'each is BEGIN, 3 UPDATEs, a SELECT, an INSERT and END',
      );
      const historyAfter = mode === 'simple' ? await historyRows() : (await historyRows()) - historyBefore;
      t.equal(historyAfter, report.processed, 'the database agrees: one history row per transaction');

      const protocols = new Set(proxy.statements.filter((s) => s.transactionId !== null && committed.some((x) => x.id === s.transactionId)).map((s) => s.protocol));
      t.same([...protocols], [mode === 'simple' ? 'simple' : 'extended'], `pgbench's statements ran in the ${mode} mode`);
      if (mode === 'prepared') {
        const names = new Set(proxy.statements.filter((s) => s.info.operation === 'UPDATE').map((s) => s.statementName));
        t.ok(names.size >= 3 && ![...names].includes(''), 'prepared mode runs named statements');
      }
      if (mode === 'simple') {
        t.ok(
          proxy.transactions.some((x) => x.implicit && x.statementLog.some((s) => s.info.operation === 'VACUUM')),
          "pgbench's own VACUUMs ran as implicit transactions, outside the count",
        );
      }
      checkTraceInvariants(t, proxy);
    });
  }

  t.test('select-only (-S), -t 50 per client: one implicit transaction per pgbench transaction', async (t) => {
    const report = await pgbench(endpoint, ['-n', '-S', '-c', '4', '-j', '2', '-t', '50', '-M', 'extended']);
    await allSessionsClosed();
    t.equal(report.processed, 200);
    const selects = proxy.transactions.filter((x) => x.implicit && x.outcome === 'commit' && x.statementLog.some((s) => s.text.includes('FROM pgbench_accounts')));
    t.equal(selects.length, report.processed);
    t.equal(proxy.transactions.filter((x) => !x.implicit).length, 0, 'no explicit transactions');
    checkTraceInvariants(t, proxy);
  });
}
