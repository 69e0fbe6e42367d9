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
  t.ok(tx.events[0].time >= statements[2].start && tx.events[0].time <= statements[2].end + 1, 'the create event is at its SAVEPOINT');
  t.ok(tx.events[1].time >= statements[4].start && tx.events[1].time <= statements[4].end + 1, 'the rollback_to event is at its ROLLBACK TO');
});
