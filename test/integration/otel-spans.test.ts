/**
 * OpenTelemetry export end to end: an application instrumented with the
 * OpenTelemetry Node SDK and instrumentation-pg (sqlcommenter on) talks to
 * PostgreSQL through txproxy; both export to one OTLP/HTTP receiver, which
 * decodes what it gets with the OpenTelemetry packages' own definitions.
 * The tree must read: the app's span → its pg query span → txproxy's
 * transaction span → txproxy's statement spans, with the savepoints, lock
 * waits, deadlocks and policy refusals that happened, as they happened.
 */
import t from 'tap';
import type pg from 'pg';
import { SpanStatusCode } from '@opentelemetry/api';
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { startTracedApp } from '../helpers/traced-app.js';

const receiver = await startOtlpReceiver();
const app = startTracedApp(receiver.url);
// The deadlock detector runs once a wait has lasted deadlock_timeout.
const postgres = await startPostgres({ postgresFlags: ['-c', 'deadlock_timeout=100ms'] });
await postgres.sql('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
await postgres.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g");
const proxy = await startProxy(postgres, {
  http: '127.0.0.1:0',
  otel: { endpoint: receiver.url, protocol: 'http/json', schedule_delay: 20 },
  lock_monitor: { threshold: 50, interval: 20 },
  policies: { rules: [{ name: 'reports-read-only', match: { application_name: 'reports' }, mode: 'read-only' }] },
});
t.teardown(async () => {
  await proxy.stop();
  await app.shutdown();
  await postgres.stop();
  await receiver.close();
});

async function client(applicationName = 'shop'): Promise<pg.Client> {
  const c = new app.pg.Client(proxy.connection({ application_name: applicationName }));
  await c.connect();
  return c;
}

const txproxySpans = (traceId: string) => receiver.spans.filter((s) => s.service === 'txproxy' && s.traceId === traceId);
const transactionSpans = (traceId: string) => txproxySpans(traceId).filter((s) => s.name.startsWith('transaction '));
const childrenOf = (span: ReceivedSpan) => receiver.spans.filter((s) => s.parentSpanId === span.spanId).sort((a, b) => a.start - b.start);
const spanById = (spanId: string) => receiver.spans.find((s) => s.spanId === spanId);

async function waitForTransactionSpans(traceId: string, n: number): Promise<ReceivedSpan[]> {
  await app.flush();
  await eventually(() => transactionSpans(traceId).length >= n, 10_000, `${n} transaction spans of trace ${traceId}`);
  return transactionSpans(traceId).sort((a, b) => a.start - b.start);
}

t.test('a transaction with a savepoint rolled back: app span → query span → transaction span → statement spans', async (t) => {
  const c = await client();
  t.teardown(() => c.end());
  const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const { traceId, spanId: appSpanId } = await app.inSpan('checkout', async () => {
    await c.query('BEGIN');
    await c.query("UPDATE items SET name = 'sold' WHERE id = 1");
    await c.query('SAVEPOINT before_discount');
    await c.query('SELECT 1 / 0').catch(() => undefined);
    await c.query('ROLLBACK TO SAVEPOINT before_discount');
    await c.query('COMMIT');
  });
  const [tx] = await waitForTransactionSpans(traceId, 1);

  // The transaction's parent is the query span of its BEGIN, whose parent is the app's span.
  const beginSpan = spanById(tx.parentSpanId)!;
  t.ok(beginSpan, 'the parent span was exported by the app');
  t.equal(beginSpan.service, 'shop');
  t.equal(beginSpan.parentSpanId, appSpanId, "the BEGIN query span is the app span's child");
  t.equal(spanById(appSpanId)?.name, 'checkout');

  t.equal(tx.name, 'transaction postgres');
  t.equal(tx.scope, 'txproxy');
  t.match(tx.attributes, {
    'db.system.name': 'postgresql',
    'db.namespace': 'postgres',
    'server.address': '127.0.0.1',
    'server.port': postgres.port,
    'pg.backend_pid': pid,
    'txproxy.transaction.outcome': 'commit',
    'txproxy.transaction.implicit': false,
    'txproxy.transaction.statements': 6,
    'txproxy.transaction.writes': 1,
    'txproxy.savepoints.created': 1,
    'txproxy.savepoints.rolled_back': 1,
    'txproxy.savepoints.released': 0,
    'db.response.status_code': '22012',
  });
  t.equal(tx.status.code, SpanStatusCode.UNSET, 'committed: no error status, though a statement failed');

  const statements = childrenOf(tx);
  t.same(
    statements.map((s) => [s.name, s.attributes['db.query.text']]),
    [
      ['BEGIN postgres', 'BEGIN'],
      ['UPDATE postgres', "UPDATE items SET name = 'sold' WHERE id = 1"],
      ['SAVEPOINT postgres', 'SAVEPOINT before_discount'],
      ['SELECT postgres', 'SELECT 1 / 0'],
      ['ROLLBACK TO SAVEPOINT postgres', 'ROLLBACK TO SAVEPOINT before_discount'],
      ['COMMIT postgres', 'COMMIT'],
    ],
    'one span per statement, in order, the sqlcommenter comment taken out of the text',
  );
  const failed = statements[3];
  t.match(failed.attributes, { 'db.operation.name': 'SELECT', 'db.response.status_code': '22012', 'error.type': '22012' });
  t.equal(failed.status.code, SpanStatusCode.ERROR);
  t.match(failed.status.message, /^22012: division by zero/);
  t.match(statements[1].attributes, { 'db.response.returned_rows': 1, 'pg.command_tag': 'UPDATE 1' });
  for (const s of statements) {
    t.ok(s.start >= tx.start - 0.001 && s.end <= tx.end + 0.001, `${s.name} lies within the transaction`);
  }
  t.ok(statements.every((s, i) => i === 0 || s.start >= statements[i - 1].end - 0.001), 'statements follow one another');

  t.same(
    tx.events.map((e) => [e.name, e.attributes['txproxy.savepoint.name'], e.attributes['txproxy.savepoint.depth']]),
    [
      ['txproxy.savepoint.create', 'before_discount', 1],
      ['txproxy.savepoint.rollback_to', 'before_discount', 1],
    ],
  );
  // Events are stamped as the server's answer is read, just after the statement's own end was taken.
  t.ok(tx.events[0].time >= statements[2].start && tx.events[0].time <= statements[2].end + 5, 'the create event is at its SAVEPOINT');
  t.ok(tx.events[1].time >= statements[4].start && tx.events[1].time <= statements[4].end + 5, 'the rollback_to event is at its ROLLBACK TO');
});

async function sessionIdOf(pid: number): Promise<string> {
  const session = [...proxy.app.server.sessions].find((s) => s.info.backendPid === pid);
  if (session === undefined) throw new Error(`no txproxy session on backend ${pid}`);
  return session.info.id;
}

const backendPid = async (c: pg.Client) => (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;

t.test('a lock wait: an event on the waiting transaction naming its blocker, its session, transaction and route', async (t) => {
  const holder = await client('admin');
  const waiter = await client();
  t.teardown(async () => {
    await holder.end();
    await waiter.end();
  });
  const holderPid = await backendPid(holder);
  const holderSession = await sessionIdOf(holderPid);
  const waiterSession = await sessionIdOf(await backendPid(waiter));
  await holder.query('BEGIN');
  await holder.query("UPDATE items SET name = 'held' WHERE id = 2 /*route='%2Fadmin%2Fitems'*/");
  const holderTx = [...proxy.app.server.sessions].find((s) => s.info.id === holderSession)!.tracker.transaction!.id;

  const { traceId } = await app.inSpan('pay', async () => {
    await waiter.query('BEGIN');
    const update = waiter.query("UPDATE items SET name = 'paid' WHERE id = 2");
    // The lock monitor has seen the wait and who holds the lock: only then let the holder go.
    await eventually(() => (proxy.app.lockMonitor!.lockWaitOf(waiterSession)?.blockedBy.length ?? 0) > 0, 10_000, 'the lock monitor to see the wait');
    await holder.query('COMMIT');
    await update;
    await waiter.query('COMMIT');
  });
  // The holder's COMMIT ran in this trace too, so its transaction has a span here as well.
  const spans = await waitForTransactionSpans(traceId, 2);
  const tx = spans.find((s) => s.attributes['txproxy.session.id'] === waiterSession)!;
  t.equal(spans.find((s) => s !== tx)?.attributes['txproxy.transaction.id'], holderTx, "the other is the holder's");
  t.ok((tx.attributes['txproxy.lock_wait_ms'] as number) > 0, 'the transaction says it waited');
  const update = childrenOf(tx).find((s) => s.name === 'UPDATE postgres')!;
  t.ok((update.attributes['pg.lock_wait_ms'] as number) > 0, 'so does the statement that waited');
  const waits = tx.events.filter((e) => e.name === 'txproxy.lock_wait');
  t.equal(waits.length, 1, 'one lock wait');
  t.match(waits[0].attributes, {
    'txproxy.lock.type': 'transactionid',
    'txproxy.lock.mode': 'ShareLock',
    'txproxy.statement.seq': update.attributes['txproxy.statement.seq'],
    'txproxy.blocker.pids': [holderPid],
    'txproxy.blocker.session_ids': [holderSession],
    'txproxy.blocker.transaction_ids': [holderTx],
    'txproxy.blocker.routes': ['/admin/items'],
    'txproxy.blocker.application_names': ['admin'],
  });
  // The record's times have millisecond precision.
  t.ok(waits[0].time >= update.start - 2 && waits[0].time <= update.end, 'the event is when the wait began, inside the statement');
  const duration = waits[0].attributes['txproxy.lock_wait.duration_ms'] as number;
  t.ok(duration > 0 && duration <= update.end - update.start + 1, 'its duration fits in the statement');
});

t.test('a deadlock: the victim transaction fails with 40P01 and names every process; the other took part', async (t) => {
  const alice = await client('alice');
  const bob = await client('bob');
  t.teardown(async () => {
    await alice.end();
    await bob.end();
  });
  const pids = { alice: await backendPid(alice), bob: await backendPid(bob) };
  const sessions = { alice: await sessionIdOf(pids.alice), bob: await sessionIdOf(pids.bob) };
  let aliceLocked!: () => void;
  let bobLocked!: () => void;
  const aliceHasLock = new Promise<void>((r) => (aliceLocked = r));
  const bobHasLock = new Promise<void>((r) => (bobLocked = r));
  const outcome = (p: Promise<unknown>) => p.then(() => null, (err: pg.DatabaseError) => err);
  const runs = await Promise.all([
    app.inSpan('transfer', async () => {
      await alice.query('BEGIN');
      await alice.query("UPDATE items SET name = 'alice' WHERE id = 3");
      aliceLocked();
      await bobHasLock;
      const err = await outcome(alice.query("UPDATE items SET name = 'alice' WHERE id = 4"));
      await alice.query('ROLLBACK');
      return err;
    }),
    app.inSpan('refund', async () => {
      await aliceHasLock;
      await bob.query('BEGIN');
      await bob.query("UPDATE items SET name = 'bob' WHERE id = 4");
      bobLocked();
      await eventually(async () => (await postgres.sql('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted', [pids.alice])).rowCount === 1, 10_000, 'alice to wait');
      const err = await outcome(bob.query("UPDATE items SET name = 'bob' WHERE id = 3"));
      await bob.query('ROLLBACK');
      return err;
    }),
  ]);
  const victim = runs[0].result !== null ? 0 : 1;
  const survivor = 1 - victim;
  t.equal((runs[victim].result as pg.DatabaseError | null)?.code, '40P01');
  t.equal(runs[survivor].result, null);
  const names = ['alice', 'bob'] as const;

  const [victimTx] = await waitForTransactionSpans(runs[victim].traceId, 1);
  const [survivorTx] = await waitForTransactionSpans(runs[survivor].traceId, 1);
  t.equal(victimTx.status.code, SpanStatusCode.ERROR);
  t.match(victimTx.status.message, /^40P01: deadlock detected/);
  t.match(victimTx.attributes, { 'txproxy.transaction.outcome': 'failed', 'db.response.status_code': '40P01', 'error.type': '40P01' });
  t.equal(survivorTx.status.code, SpanStatusCode.UNSET, 'the survivor rolled back itself');

  const victimEvent = victimTx.events.find((e) => e.name === 'txproxy.deadlock');
  const survivorEvent = survivorTx.events.find((e) => e.name === 'txproxy.deadlock');
  t.ok(victimEvent && survivorEvent, 'both transactions carry the deadlock');
  t.equal(victimEvent!.attributes['txproxy.deadlock.role'], 'victim');
  t.equal(survivorEvent!.attributes['txproxy.deadlock.role'], 'participant');
  const a = victimEvent!.attributes;
  const order = (a['txproxy.deadlock.pids'] as number[]).map((pid) => (pid === pids.alice ? 'alice' : pid === pids.bob ? 'bob' : String(pid)));
  t.same([...order].sort(), ['alice', 'bob'], 'every process of the cycle');
  t.same(a['txproxy.deadlock.session_ids'], order.map((n) => sessions[n as 'alice' | 'bob']));
  t.same(a['txproxy.deadlock.victims'], order.map((n) => n === names[victim]));
  t.same(a['txproxy.deadlock.blocked_by_pids'], order.map((n) => (n === 'alice' ? pids.bob : pids.alice)), 'each blocked by the other');
  const transactionOf = (n: string) => (n === names[victim] ? victimTx : survivorTx).attributes['txproxy.transaction.id'];
  t.same(a['txproxy.deadlock.transaction_ids'], order.map(transactionOf), 'and their transactions');
  for (const waits of a['txproxy.deadlock.waits_for'] as string[]) t.match(waits, /^ShareLock on transaction \d+$/);
});

t.test('a policy refusal: an event on the transaction, which fails with the policy SQLSTATE', async (t) => {
  const reports = await client('reports');
  t.teardown(() => reports.end());
  const { traceId, result } = await app.inSpan('export', async () =>
    reports.query("INSERT INTO items VALUES (100, 'x')").then(
      () => null,
      (err: pg.DatabaseError) => err,
    ),
  );
  t.equal(result?.code, '25006');
  const [tx] = await waitForTransactionSpans(traceId, 1);
  t.equal(tx.status.code, SpanStatusCode.ERROR);
  t.match(tx.status.message, /^25006: /);
  t.match(tx.attributes, { 'txproxy.transaction.outcome': 'failed', 'txproxy.transaction.implicit': true, 'db.response.status_code': '25006' });
  const decisions = tx.events.filter((e) => e.name === 'txproxy.policy');
  t.equal(decisions.length, 1);
  t.match(decisions[0].attributes, {
    'txproxy.policy.rule': 'reports-read-only',
    'txproxy.policy.mode': 'read-only',
    'txproxy.policy.action': 'enforce',
    'txproxy.policy.decision': 'refused',
    'db.response.status_code': '25006',
    'db.query.text': "INSERT INTO items VALUES (100, 'x')",
  });
  // Decided as the statement arrived, just before the server began on what runs in its place (the record's time has millisecond precision).
  t.ok(decisions[0].time >= tx.start - 100 && decisions[0].time <= tx.end + 1, `at the time of the refusal (${decisions[0].time - tx.start} ms from the start)`);
});

t.test("the client's sampling decision is respected, and untraced transactions make no span by default", async (t) => {
  const c = await client('manual');
  t.teardown(() => c.end());
  const sessionId = await sessionIdOf(await backendPid(c));
  const unsampled = '4bf92f3577b34da6a3ce929d0e0e4736';
  const sampled = '4bf92f3577b34da6a3ce929d0e0e4737';
  await c.query('SELECT 1 AS untraced');
  await c.query(`SELECT 2 AS unsampled /*traceparent='00-${unsampled}-00f067aa0ba902b7-00'*/`);
  await c.query(`SELECT 3 AS sampled /*traceparent='00-${sampled}-00f067aa0ba902b8-01'*/`);
  const [tx] = await waitForTransactionSpans(sampled, 1);
  t.equal(tx.parentSpanId, '00f067aa0ba902b8', 'the sampled one hangs under the span its traceparent names');
  t.match(childrenOf(tx).map((s) => s.attributes['db.query.text']), ['SELECT 3 AS sampled']);
  // Spans leave in order: the ones before it would have arrived with it.
  t.same(txproxySpans(unsampled), [], 'nothing for the unsampled trace');
  t.same(
    receiver.spans.filter((s) => s.attributes['txproxy.session.id'] === sessionId).map((s) => s.traceId),
    [sampled],
    "the session's only transaction span is the sampled one: nothing for the untraced statement either",
  );
});

t.test('exemplars: the duration histograms name the trace of an exported transaction, in OpenMetrics', async (t) => {
  const c = await client();
  t.teardown(() => c.end());
  const { traceId } = await app.inSpan('browse', async () => {
    await c.query('BEGIN');
    await c.query('SELECT count(*) FROM items');
    await c.query('COMMIT');
  });
  const [tx] = await waitForTransactionSpans(traceId, 1);
  const statementSpans = childrenOf(tx);
  const adminUrl = `http://127.0.0.1:${proxy.app.adminPort}/metrics`;
  const open = await fetch(adminUrl, { headers: { Accept: 'application/openmetrics-text; version=1.0.0, text/plain;q=0.5' } });
  t.match(open.headers.get('content-type'), /^application\/openmetrics-text; version=1.0.0/);
  const text = await open.text();
  t.match(text, /# EOF\n$/, 'an OpenMetrics exposition');
  const exemplar = (metric: string, spanId: string) =>
    text.split('\n').find((line) => line.startsWith(`${metric}_bucket{`) && line.includes(`# {trace_id="${traceId}",span_id="${spanId}"}`));
  const txLine = exemplar('txproxy_transaction_duration_seconds', tx.spanId);
  t.ok(txLine, 'a transaction duration bucket carries the trace id and the transaction span');
  t.match(txLine, /implicit="false"/);
  const value = Number(/\} (\S+) \S+$/.exec(txLine!)?.[1]);
  t.ok(Math.abs(value - (tx.end - tx.start) / 1000) < 0.001, 'with the duration observed');
  const selectSpan = statementSpans.find((s) => s.name === 'SELECT postgres')!;
  t.match(exemplar('txproxy_statement_duration_seconds', selectSpan.spanId), /command="SELECT"/, 'and the statement histogram its statement span');
  t.match(text, /^txproxy_statements_total\{/m, 'counters keep their _total samples');

  const classic = await (await fetch(adminUrl)).text();
  t.notMatch(classic, /trace_id=/, 'the classic format has no exemplars');
  t.match(classic, /^# TYPE txproxy_statements_total counter$/m, 'and, after an OpenMetrics scrape, its counters keep their names');
});

t.test('two transactions of one request on one session: both in the app trace, under its first query span', async (t) => {
  const c = await client();
  t.teardown(() => c.end());
  await c.query('SELECT 1');
  const { traceId, spanId: appSpanId } = await app.inSpan('order', async () => {
    await c.query('BEGIN');
    await c.query("UPDATE items SET name = 'first' WHERE id = 5");
    await c.query('COMMIT');
    await c.query("UPDATE items SET name = 'second' WHERE id = 5");
  });
  const [first, second] = await waitForTransactionSpans(traceId, 2);
  t.match(first.attributes, { 'txproxy.transaction.implicit': false, 'txproxy.transaction.statements': 3 });
  t.match(second.attributes, { 'txproxy.transaction.implicit': true, 'txproxy.transaction.statements': 1 });
  const firstQuery = spanById(first.parentSpanId)!;
  t.equal(firstQuery.parentSpanId, appSpanId, "the first transaction hangs under its BEGIN's query span");
  t.equal(second.parentSpanId, first.parentSpanId, 'the request keeps the traceparent it began with');
  t.ok(second.start >= first.end, 'one after the other');
});

t.test('a client that goes away inside its transaction: the span ends in error, outcome disconnect', async (t) => {
  const c = await client();
  const sessionId = await sessionIdOf(await backendPid(c));
  const { traceId } = await app.inSpan('abandon', async () => {
    await c.query('BEGIN');
    await c.query("UPDATE items SET name = 'abandoned' WHERE id = 6");
  });
  c.on('error', () => undefined);
  (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await eventually(() => ![...proxy.app.server.sessions].some((s) => s.info.id === sessionId), 10_000, 'the session to end');
  const [tx] = await waitForTransactionSpans(traceId, 1);
  t.equal(tx.status.code, SpanStatusCode.ERROR);
  t.match(tx.status.message, /client went away inside the transaction/);
  t.match(tx.attributes, { 'txproxy.transaction.outcome': 'disconnect', 'error.type': 'disconnect' });
  t.same(childrenOf(tx).map((s) => s.name), ['BEGIN postgres', 'UPDATE postgres']);
  t.equal((await postgres.sql('SELECT name FROM items WHERE id = 6')).rows[0].name, 'item 6', 'rolled back on the server');
});
