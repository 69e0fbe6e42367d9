import t from 'tap';
import type pg from 'pg';
import type { Session } from '../../src/proxy/session.js';
import { metricValue } from '../helpers/metrics.js';
import { startPostgres } from '../helpers/postgres.js';
import { render } from '../unit/trace-render/fixtures.js';
import { eventually, startProxy } from '../helpers/proxy.js';

// The deadlock detector runs once a wait has lasted deadlock_timeout.
const postgres = await startPostgres({ postgresFlags: ['-c', 'deadlock_timeout=100ms'] });
await postgres.sql('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
await postgres.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g");
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

async function sessionOf(client: pg.Client): Promise<Session> {
  const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  return [...proxy.app.server.sessions].find((s) => s.info.backendPid === pid)!;
}

const deadlocks = (role: string) => metricValue(proxy.app.registry, 'txproxy_deadlocks_total', { database: 'postgres', role });

t.test('a two-session deadlock through txproxy: counted, and both sides named', async (t) => {
  const alice = await proxy.client({ application_name: 'alice' });
  const bob = await proxy.client({ application_name: 'bob' });
  t.teardown(async () => {
    await alice.end();
    await bob.end();
  });
  const sessions = { alice: await sessionOf(alice), bob: await sessionOf(bob) };
  const victimsBefore = await deadlocks('victim');
  const participantsBefore = await deadlocks('participant');

  const sql = {
    alice: "UPDATE items SET name = 'alice' WHERE id = 2 /*route='%2Ftransfer'*/",
    bob: "UPDATE items SET name = 'bob' WHERE id = 1 /*route='%2Frefund'*/",
  };
  await alice.query('BEGIN');
  await bob.query('BEGIN');
  await alice.query("UPDATE items SET name = 'alice' WHERE id = 1 /*route='%2Ftransfer'*/");
  await bob.query("UPDATE items SET name = 'bob' WHERE id = 2 /*route='%2Frefund'*/");
  const outcome = (p: Promise<unknown>) => p.then(() => null, (err: pg.DatabaseError) => err);
  const aliceDone = outcome(alice.query(sql.alice));
  await eventually(
    async () => (await postgres.sql('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [sessions.alice.info.backendPid])).rowCount === 1,
    3000,
    'alice to wait',
  );
  const bobDone = outcome(bob.query(sql.bob));
  const errors = { alice: await aliceDone, bob: await bobDone };

  // PostgreSQL aborts one of the two; which one depends on whose deadlock check ran first.
  const victim: 'alice' | 'bob' = errors.alice !== null ? 'alice' : 'bob';
  const survivor: 'alice' | 'bob' = victim === 'alice' ? 'bob' : 'alice';
  t.equal(errors[victim]?.code, '40P01', 'the victim got deadlock_detected');
  t.equal(errors[survivor], null, 'the other went on');
  const victimTx = sessions[victim].tracker.transaction!.id;
  const survivorTx = sessions[survivor].tracker.transaction!.id;
  await alice.query('ROLLBACK');
  await bob.query('ROLLBACK');

  t.equal((await deadlocks('victim')) - victimsBefore, 1, 'one victim counted');
  t.equal((await deadlocks('participant')) - participantsBefore, 1, 'the other txproxy session counted as participant');

  const records = proxy.trace.records.filter((r) => r.kind === 'deadlock');
  t.equal(records.length, 1);
  const record = records[0];
  t.match(record, {
    'session.id': sessions[victim].info.id,
    'transaction.id': victimTx,
    'db.namespace': 'postgres',
    'pg.backend_pid': sessions[victim].info.backendPid,
    'http.route': victim === 'alice' ? '/transfer' : '/refund',
  });
  const processes = record.processes as Record<string, unknown>[];
  t.equal(processes.length, 2);
  const byPid = new Map(processes.map((p) => [p['pg.backend_pid'], p]));
  const route = { alice: '/transfer', bob: '/refund' };
  for (const who of ['alice', 'bob'] as const) {
    const other = who === 'alice' ? 'bob' : 'alice';
    const process = byPid.get(sessions[who].info.backendPid);
    t.match(
      process,
      {
        waits_for: /^ShareLock on transaction \d+$/,
        blocked_by_pid: sessions[other].info.backendPid,
        'session.id': sessions[who].info.id,
        'transaction.id': who === victim ? victimTx : survivorTx,
        'http.route': route[who],
        last_statement: sql[who].replace(/ \/\*.*\*\/$/, ''),
        victim: who === victim,
      },
      `${who} is named`,
    );
  }
  t.equal(processes[0]['pg.backend_pid'], sessions[victim].info.backendPid, 'the detecting process, the victim, comes first');

  const statement = proxy.trace.records.find((r) => r.kind === 'statement' && r['session.id'] === sessions[victim].info.id && r['db.response.status_code'] === '40P01');
  t.ok(statement, 'the failed statement is traced with its SQLSTATE');

  // txproxy trace shows the cycle under the statement that got 40P01.
  const { text, problems } = render(proxy.trace.records);
  t.same(problems, []);
  const failed = text.indexOf('ERROR 40P01: deadlock detected');
  t.ok(failed > 0);
  const cycle = text.slice(failed);
  t.match(cycle, `DEADLOCK among 2 processes; victim pid ${sessions[victim].info.backendPid}:`);
  t.match(cycle, `pid ${sessions[victim].info.backendPid} (victim) · session ${sessions[victim].info.id} · tx ${victimTx} · route ${route[victim]}`);
  t.match(cycle, `pid ${sessions[survivor].info.backendPid} · session ${sessions[survivor].info.id} · tx ${survivorTx} · route ${route[survivor]}`);
  t.match(cycle, `last: ${sql[survivor].replace(/ \/\*.*\*\/$/, '')}`);
});

t.test('a deadlock with a process outside txproxy names that process by pid only', async (t) => {
  const inside = await proxy.client();
  const outside = await postgres.direct();
  t.teardown(async () => {
    await inside.end();
    await outside.end();
  });
  const session = await sessionOf(inside);
  const outsidePid = (await outside.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const participantsBefore = await deadlocks('participant');
  proxy.trace.records.length = 0;

  await inside.query('BEGIN');
  await outside.query('BEGIN');
  await inside.query("UPDATE items SET name = 'in' WHERE id = 5");
  await outside.query("UPDATE items SET name = 'out' WHERE id = 6");
  // The outside process waits first, so the proxied one detects the cycle and is aborted.
  const outsideDone = outside.query("UPDATE items SET name = 'out' WHERE id = 5").then(
    () => null,
    (err: pg.DatabaseError) => err,
  );
  await eventually(async () => (await postgres.sql('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [outsidePid])).rowCount === 1, 3000, 'the outside process to wait');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const err = await inside.query("UPDATE items SET name = 'in' WHERE id = 6").then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  t.equal(err?.code, '40P01');
  await inside.query('ROLLBACK');
  t.equal(await outsideDone, null);
  await outside.query('ROLLBACK');

  const [record] = proxy.trace.records.filter((r) => r.kind === 'deadlock');
  t.match(record, { 'session.id': session.info.id });
  const { waits_for, ...named } = (record.processes as Record<string, unknown>[]).find((p) => p['pg.backend_pid'] === outsidePid)!;
  t.match(waits_for, /^ShareLock on transaction \d+$/);
  t.same(named, {
    'pg.backend_pid': outsidePid,
    blocked_by_pid: session.info.backendPid,
    'session.id': null,
    'transaction.id': null,
    'http.route': null,
    last_statement: null,
    victim: false,
  });
  t.equal(await deadlocks('participant'), participantsBefore, 'a process outside txproxy is not a txproxy participant');
});

t.test('an autocommit participant is named with the transaction that took part, even once it has ended', async (t) => {
  const victim = await proxy.client();
  const autocommit = await proxy.client();
  t.teardown(async () => {
    await victim.end();
    await autocommit.end();
  });
  const victimSession = await sessionOf(victim);
  const autocommitSession = await sessionOf(autocommit);
  proxy.trace.records.length = 0;
  proxy.statements.length = 0;

  await victim.query('BEGIN');
  await victim.query("UPDATE items SET name = 'v' WHERE id = 9");
  // One statement that locks row 8, then waits for row 9.
  const both = "UPDATE items SET name = 'a' WHERE id IN (8, 9)";
  const autocommitDone = autocommit.query(both);
  await eventually(
    async () => (await postgres.sql('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [autocommitSession.info.backendPid])).rowCount === 1,
    3000,
    'the autocommit statement to wait',
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  const err = await victim.query("UPDATE items SET name = 'v' WHERE id = 8").then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  t.equal(err?.code, '40P01');
  await victim.query('ROLLBACK');
  t.equal((await autocommitDone).rowCount, 2);

  const statement = proxy.statements.find((s) => s.sessionId === autocommitSession.info.id && s.text === both)!;
  const [record] = proxy.trace.records.filter((r) => r.kind === 'deadlock');
  t.match(record, { 'session.id': victimSession.info.id });
  t.match((record.processes as Record<string, unknown>[]).find((p) => p['pg.backend_pid'] === autocommitSession.info.backendPid), {
    'session.id': autocommitSession.info.id,
    'transaction.id': statement.transactionId,
    last_statement: both,
    victim: false,
  });
});
