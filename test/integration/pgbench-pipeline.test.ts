/**
 * libpq's pipeline mode, driven by pgbench's \startpipeline / \endpipeline:
 * every statement of the pipeline is written without waiting and one Sync
 * ends it. txproxy must see one transaction per pipeline — explicit when it
 * holds BEGIN … END, implicit (all Executes up to the Sync) otherwise — and
 * its count must equal pgbench's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { pgbench, pgbenchInit, pgbenchProgram } from '../helpers/pgbench.js';
import { checkTraceInvariants, resetRecords } from '../helpers/trace-checks.js';

const EXPLICIT = `\\set aid random(1, 100000 * :scale)
\\set delta random(-5000, 5000)
\\startpipeline
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SAVEPOINT p;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
RELEASE SAVEPOINT p;
END;
\\endpipeline
`;

const IMPLICIT = `\\set aid random(1, 100000 * :scale)
\\startpipeline
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid = :aid;
\\endpipeline
`;

async function suite(): Promise<void> {
  const postgres = await startPostgres();
  const proxy = await startProxy(postgres);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-pgbench-pipeline-'));
  t.teardown(async () => {
    await proxy.stop();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };
  await pgbenchInit(endpoint);
  writeFileSync(path.join(dir, 'explicit.sql'), EXPLICIT);
  writeFileSync(path.join(dir, 'implicit.sql'), IMPLICIT);
  t.beforeEach(() => resetRecords(proxy));
  const finished = () => eventually(() => proxy.app.server.sessions.size === 0, 10_000, 'pgbench sessions to close');

  t.test('a pipelined BEGIN … END per transaction, 4 clients for 2 s, -M prepared', async (t) => {
    const report = await pgbench(endpoint, ['-n', '-c', '4', '-j', '2', '-T', '2', '-M', 'prepared', '-f', 'explicit.sql'], { cwd: dir });
    await finished();
    t.ok(report.processed > 0);
    t.equal(report.failed, 0);
    const explicit = proxy.transactions.filter((x) => !x.implicit);
    t.equal(explicit.filter((x) => x.outcome === 'commit').length, report.processed, 'committed explicit transactions = pgbench transactions');
    t.equal(explicit.length, report.processed);
    t.ok(
      explicit.every((x) => x.statements === 6 && x.writes === 1 && x.savepointsCreated === 1 && x.savepointsReleased === 1 && x.maxSavepointDepth === 1),
      'each: 6 statements, one savepoint created and released',
    );
    checkTraceInvariants(t, proxy);
  });

  t.test('a pipeline without BEGIN is one implicit transaction up to its Sync, -M extended', async (t) => {
    const report = await pgbench(endpoint, ['-n', '-c', '3', '-j', '3', '-t', '40', '-M', 'extended', '-f', 'implicit.sql'], { cwd: dir });
    await finished();
    t.equal(report.processed, 120);
    const pipelines = proxy.transactions.filter((x) => x.implicit && x.statements === 3 && x.writes === 2);
    t.equal(pipelines.length, report.processed, 'one implicit transaction of 3 statements per pipeline');
    t.ok(pipelines.every((x) => x.outcome === 'commit'));
    t.equal(proxy.transactions.filter((x) => !x.implicit).length, 0);
    checkTraceInvariants(t, proxy);
  });
}

if (pgbenchProgram() === null) t.plan(0, 'pgbench is not installed (Debian: postgresql-15)');
else await suite();
