/**
 * A custom pgbench script with BEGIN / SAVEPOINT / ROLLBACK TO / RELEASE /
 * COMMIT, run by several clients: txproxy's savepoint counts must equal the
 * script's per-transaction counts times pgbench's transactions processed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { pgbench, pgbenchInit, pgbenchProgram } from '../helpers/pgbench.js';
import { checkTraceInvariants, resetRecords } from '../helpers/trace-checks.js';
import { SAVEPOINT_SCRIPT } from '../helpers/pgbench-scripts.js';

const SCRIPT = SAVEPOINT_SCRIPT;

/** A second shape: a savepoint rolled back twice, a middle one released, the transaction rolled back. */
const ROLLBACK_SCRIPT = `\\set aid random(1, 100000 * :scale)
BEGIN;
SAVEPOINT a;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
ROLLBACK TO a;
UPDATE pgbench_accounts SET abalance = abalance + 2 WHERE aid = :aid;
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
SAVEPOINT c;
RELEASE b;
ROLLBACK;
`;

async function suite(): Promise<void> {
  const postgres = await startPostgres();
  const proxy = await startProxy(postgres);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-pgbench-'));
  t.teardown(async () => {
    await proxy.stop();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };
  await pgbenchInit(endpoint);
  writeFileSync(path.join(dir, 'savepoints.sql'), SCRIPT);
  writeFileSync(path.join(dir, 'rollback.sql'), ROLLBACK_SCRIPT);

  t.beforeEach(() => resetRecords(proxy));

  const finished = () => eventually(() => proxy.app.server.sessions.size === 0, 10_000, 'pgbench sessions to close');
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

  for (const mode of ['simple', 'prepared'] as const) {
    t.test(`savepoint script, -M ${mode}, 3 clients × 40: every savepoint counted`, async (t) => {
      const historyBefore = (await postgres.sql('SELECT count(*)::int AS n FROM pgbench_history')).rows[0].n;
      const report = await pgbench(endpoint, ['-n', '-c', '3', '-j', '3', '-t', '40', '-M', mode, '-f', 'savepoints.sql'], { cwd: dir });
      await finished();
      t.equal(report.processed, 120);
      const explicit = proxy.transactions.filter((x) => !x.implicit);
      t.equal(explicit.filter((x) => x.outcome === 'commit').length, report.processed, 'one committed transaction per pgbench transaction');
      t.equal(explicit.length, report.processed);
      t.equal(sum(explicit.map((x) => x.savepointsCreated)), 3 * report.processed, 'created: 3 per transaction');
      t.equal(sum(explicit.map((x) => x.savepointsRolledBack)), 1 * report.processed, 'rolled back: 1 per transaction');
      t.equal(sum(explicit.map((x) => x.savepointsReleased)), 3 * report.processed, 'released: 3 per transaction (RELEASE s1 takes S2 and s3 with it)');
      t.ok(
        explicit.every((x) => x.maxSavepointDepth === 3 && x.statements === 11 && x.writes === 4 && x.firstError === null),
        'each: depth 3, 11 statements, 4 writes, no error',
      );
      const depths = proxy.statements.filter((s) => s.transactionId === explicit[0].id).map((s) => s.savepointDepth);
      t.same(depths, [0, 0, 1, 1, 2, 2, 2, 3, 3, 0, 0], 'the depth after each statement of the script');
      const historyAfter = (await postgres.sql('SELECT count(*)::int AS n FROM pgbench_history')).rows[0].n;
      t.equal(historyAfter, historyBefore, 'the INSERT rolled back to "S2" left no row');
      checkTraceInvariants(t, proxy);
    });
  }

  t.test('a script that rolls back to one savepoint twice and ends in ROLLBACK', async (t) => {
    const report = await pgbench(endpoint, ['-n', '-c', '2', '-j', '2', '-t', '30', '-M', 'extended', '-f', 'rollback.sql'], { cwd: dir });
    await finished();
    t.equal(report.processed, 60);
    const explicit = proxy.transactions.filter((x) => !x.implicit);
    t.equal(explicit.filter((x) => x.outcome === 'rollback').length, report.processed, 'every transaction rolled back by choice');
    t.equal(explicit.length, report.processed);
    t.ok(
      explicit.every((x) => x.savepointsCreated === 3 && x.savepointsRolledBack === 2 && x.savepointsReleased === 2 && x.maxSavepointDepth === 3 && x.statements === 10),
      'each: 3 created, 2 rolled back, RELEASE b takes c too, depth 3',
    );
    const depths = proxy.statements.filter((s) => s.transactionId === explicit[0].id).map((s) => s.savepointDepth);
    t.same(depths, [0, 1, 1, 1, 1, 1, 2, 3, 1, 0]);
    checkTraceInvariants(t, proxy);
  });
}

if (pgbenchProgram() === null) t.plan(0, 'pgbench is not installed (Debian: postgresql-15)');
else await suite();
