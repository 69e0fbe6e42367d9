/**
 * Tail sampling (trace.keep) against a real PostgreSQL: with no ordinary
 * transaction sampled, a workload with known failures, lock waits, a
 * deadlock, a slow transaction, a policy warning and a request that is not
 * atomic leaves exactly those transactions in the trace, each with all its
 * statements; the metrics count every transaction all the same.
 */
import t from 'tap';
import type pg from 'pg';
import type { LockMonitor } from '../../src/locks/lock-monitor.js';
import { metricValue } from '../helpers/metrics.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const SLOWER_THAN_MS = 2500;
const MAX_HELD = 16;

// The deadlock detector runs once a wait has lasted deadlock_timeout.
const postgres = await startPostgres({ postgresFlags: ['-c', 'deadlock_timeout=100ms'] });
await postgres.sql('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
await postgres.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g");
const proxy = await startProxy(postgres, {
  http: '127.0.0.1:0',
  trace: { keep: { sample: 0, slower_than: SLOWER_THAN_MS, max_held: MAX_HELD } },
  lock_monitor: { threshold: 50, interval: 20 },
  policies: { rules: [{ name: 'audit-warn', match: { application_name: 'audit' }, mode: 'atomic', action: 'warn' }] },
});
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

const clients: pg.Client[] = [];
async function client(name: string): Promise<pg.Client> {
  const c = await proxy.client({ application_name: name });
  clients.push(c);
  return c;
}
const pidOf = async (c: pg.Client) => (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
const sessionOf = (pid: number) => [...proxy.app.server.sessions].find((s) => s.info.backendPid === pid)!;
const failure = (p: Promise<unknown>) => p.then(() => null, (err: pg.DatabaseError) => err);

// ------------------------------------------------------------------ workload

// Ordinary work: autocommit reads, explicit transactions, requests with one write each.
const plain = await client('plain');
for (let i = 0; i < 5; i++) await plain.query('SELECT name FROM items WHERE id = $1', [i + 1]);
for (let i = 0; i < 3; i++) {
  await plain.query('BEGIN');
  await plain.query('INSERT INTO items VALUES ($1, $2)', [100 + i, 'plain']);
  await plain.query('COMMIT');
}
const requests = await client('requests');
for (let i = 0; i < 3; i++) {
  const traceparent = `00-${String(i + 1).padStart(32, 'a')}-${'b'.repeat(16)}-01`;
  await requests.query(`INSERT INTO items VALUES (${200 + i}, 'request') /*traceparent='${traceparent}'*/`);
}

// Failures: an autocommit statement that fails, and an error a savepoint recovered from.
const fail = await client('fail');
const duplicate = await failure(fail.query("INSERT INTO items VALUES (1, 'again')"));
await fail.query('BEGIN');
await fail.query('SAVEPOINT s');
await failure(fail.query("INSERT INTO items VALUES (2, 'again')"));
await fail.query('ROLLBACK TO SAVEPOINT s');
await fail.query("INSERT INTO items VALUES (300, 'after')");
await fail.query('COMMIT');

// A lock wait: the waiter (autocommit) waits for the holder's row lock.
const monitor = proxy.app.lockMonitor as LockMonitor;
const holder = await client('holder');
const waiter = await client('waiter');
const waiterSession = sessionOf(await pidOf(waiter));
await holder.query('BEGIN');
await holder.query("UPDATE items SET name = 'held' WHERE id = 3");
const waited = waiter.query("UPDATE items SET name = 'waited' WHERE id = 3");
await eventually(() => monitor.lockWaitOf(waiterSession.info.id) !== null, 5000, 'the wait to be sampled');
await holder.query('COMMIT');
await waited;

// A deadlock: both sides are kept, the victim's and the one that went on.
const alice = await client('alice');
const bob = await client('bob');
const aliceSession = sessionOf(await pidOf(alice));
await alice.query('BEGIN');
await bob.query('BEGIN');
await alice.query("UPDATE items SET name = 'alice' WHERE id = 4");
await bob.query("UPDATE items SET name = 'bob' WHERE id = 5");
const aliceDone = failure(alice.query("UPDATE items SET name = 'alice' WHERE id = 5"));
await eventually(
  async () => (await postgres.sql('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [aliceSession.info.backendPid])).rowCount === 1,
  5000,
  'alice to wait',
);
const bobDone = failure(bob.query("UPDATE items SET name = 'bob' WHERE id = 4"));
const deadlockErrors = [await aliceDone, await bobDone];
await alice.query(deadlockErrors[0] === null ? 'COMMIT' : 'ROLLBACK');
await bob.query(deadlockErrors[1] === null ? 'COMMIT' : 'ROLLBACK');

// Slow.
const slow = await client('slow');
await slow.query(`SELECT pg_sleep(${(SLOWER_THAN_MS + 200) / 1000})`);

// A policy warning (atomic mode, action warn): a write outside a transaction block.
const audit = await client('audit');
await audit.query("INSERT INTO items VALUES (400, 'audited')");

// Not atomic: one request (the session: no sqlcommenter tags) commits two writes separately.
const orphan = await client('orphan');
await orphan.query("INSERT INTO items VALUES (500, 'order')");
await orphan.query('SELECT 1');
await orphan.query("INSERT INTO items VALUES (501, 'order line')");

// More statements than a transaction may hold, then an error: decided early, kept at the error.
const bulk = await client('bulk');
await bulk.query('BEGIN');
for (let i = 0; i < 30; i++) await bulk.query('INSERT INTO items VALUES ($1, $2)', [600 + i, 'bulk']);
await failure(bulk.query("INSERT INTO items VALUES (600, 'again')"));
await bulk.query('ROLLBACK');

for (const c of clients) await c.end();
await eventually(() => proxy.app.server.sessions.size === 0, 10_000, 'every session to end');

// ------------------------------------------------------------------ the trace

const records = proxy.trace.records;
const applicationOf = new Map<string, string>();
for (const r of records) if (r.kind === 'session' && r.event === 'start') applicationOf.set(r['session.id'] as string, r['application.name'] as string);
const keptTransactions = records.filter((r) => r.kind === 'transaction');
const keptIds = new Set(keptTransactions.map((r) => r['transaction.id'] as string));
/** Every transaction of a client, from the tracker (not the trace), with its statements' SQL. */
const transactionsOf = (application: string) =>
  proxy.transactions.filter((tx) => applicationOf.get(tx.sessionId) === application);
const kept = (application: string) =>
  transactionsOf(application)
    .filter((tx) => keptIds.has(tx.id))
    .map((tx) => tx.statementLog.map((s) => s.text).join('; '));

t.test('the workload ran as planned', async (t) => {
  t.equal(duplicate?.code, '23505');
  t.same(
    deadlockErrors.map((e) => e?.code ?? null).sort(),
    ['40P01', null],
    'one side of the deadlock was its victim',
  );
  t.equal(applicationOf.size, 11, 'every session start record is written');
  t.equal(records.filter((r) => r.kind === 'session' && r.event === 'end').length, 11, 'and every session end record');
});

t.test('ordinary transactions are dropped', async (t) => {
  t.same(kept('plain'), []);
  t.same(kept('requests'), [], 'one write per request is atomic enough');
  t.same(kept('holder'), [], 'the holder of a lock is kept only on its own merits');
});

t.test('failed transactions are kept, and an error a savepoint recovered from', async (t) => {
  t.same(kept('fail'), [
    "INSERT INTO items VALUES (1, 'again')",
    "BEGIN; SAVEPOINT s; INSERT INTO items VALUES (2, 'again'); ROLLBACK TO SAVEPOINT s; INSERT INTO items VALUES (300, 'after'); COMMIT",
  ]);
});

t.test('the transaction that waited for a lock is kept, with its lock_wait record', async (t) => {
  t.same(kept('waiter'), ["UPDATE items SET name = 'waited' WHERE id = 3"]);
  const waiterTx = transactionsOf('waiter').find((tx) => keptIds.has(tx.id))!;
  const waits = records.filter((r) => r.kind === 'lock_wait' && r['session.id'] === waiterTx.sessionId);
  t.equal(waits.length, 1);
  t.equal(waits[0]['transaction.id'], waiterTx.id);
});

t.test('both transactions of the deadlock are kept, with the deadlock record', async (t) => {
  t.equal(kept('alice').length, 1);
  t.equal(kept('bob').length, 1);
  t.equal(records.filter((r) => r.kind === 'deadlock').length, 1);
});

t.test('the slow transaction, the one a policy warned about and the request that was not atomic are kept', async (t) => {
  t.same(kept('slow'), [`SELECT pg_sleep(${(SLOWER_THAN_MS + 200) / 1000})`]);
  t.same(kept('audit'), ["INSERT INTO items VALUES (400, 'audited')"]);
  t.ok(records.some((r) => r.kind === 'policy' && r.rule === 'audit-warn'), 'with its policy record');
  t.same(
    kept('orphan'),
    ["INSERT INTO items VALUES (500, 'order')", "INSERT INTO items VALUES (501, 'order line')"],
    'both writes, not the read between them',
  );
});

t.test('a transaction with more records than max_held: decided early, its error and what follows written', async (t) => {
  const [bulkTx] = transactionsOf('bulk').filter((tx) => tx.statements > 30);
  t.equal(bulkTx.statements, 33);
  const record = keptTransactions.find((r) => r['transaction.id'] === bulkTx.id);
  t.equal(record?.outcome, 'failed');
  t.equal(record?.statements_dropped, 31, 'BEGIN and the 30 INSERTs before the error');
  const own = records.filter((r) => r.kind === 'statement' && r['transaction.id'] === bulkTx.id);
  t.same(
    own.map((r) => [r['db.query.text'], r['db.response.status_code'] ?? null]),
    [
      ["INSERT INTO items VALUES (600, 'again')", '23505'],
      ['ROLLBACK', null],
    ],
  );
});

t.test('each kept transaction has every statement; no dropped one has any', async (t) => {
  const statements = records.filter((r) => r.kind === 'statement');
  for (const tx of proxy.transactions) {
    if (applicationOf.get(tx.sessionId) === 'bulk' && tx.statements > 30) continue;
    const own = statements.filter((s) => s['transaction.id'] === tx.id);
    if (keptIds.has(tx.id)) t.equal(own.length, tx.statements, `${tx.id} (${applicationOf.get(tx.sessionId)}): all its statements`);
    else if (own.length > 0) t.fail(`${tx.id} (${applicationOf.get(tx.sessionId)}) was dropped, but ${own.length} of its statements were written`);
  }
  const otherKinds = records.filter((r) => typeof r['transaction.id'] === 'string' && r.kind !== 'statement' && r.kind !== 'transaction');
  for (const r of otherKinds) t.ok(keptIds.has(r['transaction.id'] as string), `the ${r.kind} record's transaction is kept`);
});

t.test('metrics count every transaction, kept or not', async (t) => {
  const all = proxy.transactions.length;
  t.ok(all > keptIds.size + 10, `${all} transactions, ${keptIds.size} kept`);
  t.equal(await metricValue(proxy.app.registry, 'txproxy_transactions_total'), all);
  t.equal(await metricValue(proxy.app.registry, 'txproxy_trace_transactions_total', { decision: 'kept' }), keptIds.size);
  t.equal(await metricValue(proxy.app.registry, 'txproxy_trace_transactions_total', { decision: 'dropped' }), all - keptIds.size);
});
