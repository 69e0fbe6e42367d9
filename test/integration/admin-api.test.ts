/**
 * The admin HTTP endpoint with real clients going through txproxy to a real
 * PostgreSQL: sessions, recent transactions, the live event stream, health
 * and readiness.
 */
import http from 'node:http';
import net from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { EventStream } from '../../src/admin/event-stream.js';
import type { LockWaitView } from '../../src/admin/sessions-view.js';
import { ListenError } from '../../src/app.js';
import { TraceBus } from '../../src/trace/trace-sink.js';
import { getJson, request, Scrape, subscribe } from '../helpers/admin.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres, { http: '127.0.0.1:0' });
const adminPort = proxy.app.adminPort!;
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE notes (id serial PRIMARY KEY, body text)');

t.beforeEach(() => {
  proxy.transactions.length = 0;
});

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('/healthz answers 200', async (t) => {
  const res = await getJson(adminPort, '/healthz');
  t.equal(res.status, 200);
  t.same(res.json, { status: 'ok' });
  t.match(res.headers['content-type'], /^application\/json/);
});

t.test('/readyz is 200 while the upstream answers', async (t) => {
  const res = await getJson(adminPort, '/readyz');
  t.equal(res.status, 200);
  t.match(res.json, { status: 'ready', upstream: `${postgres.host}:${postgres.port}` });
});

t.test('/readyz is 503 with a reason when the upstream is down', async (t) => {
  const port = await deadPort();
  const down = await startProxy(postgres, { http: '127.0.0.1:0' }, { upstream: `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable` });
  t.teardown(() => down.stop());
  const res = await getJson(down.app.adminPort!, '/readyz');
  t.equal(res.status, 503);
  t.equal(res.json.status, 'unavailable');
  t.match(res.json.reason, `cannot connect to 127.0.0.1:${port}`);
  t.match(res.json.reason, 'ECONNREFUSED');
});

t.test('/readyz is 503 while the proxy drains for shutdown', async (t) => {
  const draining = await startProxy(postgres, { http: '127.0.0.1:0', drain_timeout: 5000 });
  const client = await draining.client();
  // Once its transaction ends, the session is closed with a FATAL "shutting down".
  client.on('error', () => undefined);
  await client.query('BEGIN');
  const stopped = draining.app.stop();
  const res = await getJson(draining.app.adminPort!, '/readyz');
  t.equal(res.status, 503);
  t.match(res.json.reason, 'shutting down');
  await client.query('COMMIT');
  await stopped;
  await client.end().catch(() => undefined);
});

t.test('unknown paths are 404 and other methods 405, as JSON', async (t) => {
  const missing = await request(adminPort, '/nope');
  t.equal(missing.status, 404);
  t.match(JSON.parse(missing.body), { error: 'not found' });
  const post = await request(adminPort, '/metrics', 'POST');
  t.equal(post.status, 405);
  t.equal(post.headers.allow, 'GET');
  t.match(JSON.parse(post.body), { error: 'method not allowed' });
  const del = await request(adminPort, '/sessions', 'DELETE');
  t.equal(del.status, 405);
});

t.test('/sessions shows a session idle in transaction, its transaction age and last statement', async (t) => {
  const client = await proxy.client({ application_name: 'sessions-test' });
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await client.query('SAVEPOINT a');
  const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;

  let status = 0;
  let session: any;
  // The transaction's age grows with the clock: poll until it is old enough to tell from zero.
  await eventually(async () => {
    const answer = await getJson(adminPort, '/sessions');
    status = answer.status;
    session = answer.json.sessions.find((s: any) => s.application === 'sessions-test');
    return status !== 200 || session === undefined || session.transaction.ageMs >= 250;
  }, 5000, 'the transaction to be 250 ms old');
  t.equal(status, 200);
  t.ok(session, 'the session is listed');
  t.match(session, {
    user: 'postgres',
    database: 'postgres',
    clientAddress: '127.0.0.1',
    backendPid: pid,
    state: 'idle_in_transaction',
    statement: null,
    lastStatement: { text: 'SELECT pg_backend_pid() AS pid', operation: 'SELECT', commandTag: 'SELECT 1', errorCode: null },
    savepointDepth: 1,
    lockWait: null,
    transaction: { implicit: false, statements: 3, failed: false },
  });
  t.ok(session.transaction.ageMs >= 250 && session.transaction.ageMs < 60_000, `transaction age ${session.transaction.ageMs} ms`);
  t.equal(session.transaction.id, `${session.id}.t1`);
});

t.test('/sessions shows what an active session runs and for how long', async (t) => {
  const client = await proxy.client({ application_name: 'busy-test' });
  t.teardown(() => client.end());
  const sleeping = client.query('SELECT pg_sleep(2)');
  let session: any;
  await eventually(async () => {
    const { json } = await getJson(adminPort, '/sessions');
    session = json.sessions.find((s: any) => s.application === 'busy-test');
    return session?.statement?.runningMs >= 200;
  }, 1800, 'the statement to run for 200 ms');
  t.match(session, { state: 'active', statement: { text: 'SELECT pg_sleep(2)', operation: 'SELECT' }, transaction: { implicit: true } });
  t.ok(session.statement.runningMs >= 200 && session.statement.runningMs < 60_000, `running for ${session.statement.runningMs} ms`);
  await sleeping;
});

t.test('/sessions follows trace.sql and shows the lock monitor view when there is one', async (t) => {
  let waiting: string | null = null;
  const view: LockWaitView = {
    since: '2026-01-01T00:00:00.000Z',
    waitedMs: 1234,
    lockType: 'transactionid',
    mode: 'ShareLock',
    relation: 'public.notes',
    blockedBy: [{ pid: 42, sessionId: '7', transactionId: '7.t3', route: '/checkout' }],
  };
  const redacted = await startProxy(
    postgres,
    { http: '127.0.0.1:0', trace: { sql: 'redacted' } },
    { app: { lockWaitOf: (id) => (id === waiting ? view : null) } },
  );
  t.teardown(() => redacted.stop());
  const client = await redacted.client({ application_name: 'redacted-test' });
  const other = await redacted.client({ application_name: 'other-test' });
  t.teardown(() => Promise.all([client.end(), other.end()]));
  await client.query("SELECT 'secret' AS s, 42 AS n");
  const { json: first } = await getJson(redacted.app.adminPort!, '/sessions');
  waiting = first.sessions.find((s: any) => s.application === 'redacted-test').id;
  const { json } = await getJson(redacted.app.adminPort!, '/sessions');
  const session = json.sessions.find((s: any) => s.application === 'redacted-test');
  t.equal(session.lastStatement.text, 'SELECT ? AS s, ? AS n', 'literals are not shown');
  t.same(session.lockWait, view);
  t.equal(json.sessions.find((s: any) => s.application === 'other-test').lockWait, null);
});

t.test('/sessions shows no SQL text with trace.sql off', async (t) => {
  const off = await startProxy(postgres, { http: '127.0.0.1:0', trace: { sql: 'off' } });
  t.teardown(() => off.stop());
  const client = await off.client({ application_name: 'sql-off-test' });
  const holder = await off.client({ application_name: 'lock-holder' });
  t.teardown(() => Promise.all([client.end(), holder.end()]));
  await client.query("SELECT 'secret' AS s");
  // The statement waits on a lock held by the other session until the view is read.
  await holder.query('SELECT pg_advisory_lock(4242)');
  const blocked = client.query("SELECT pg_advisory_lock(4242), 'also secret'");
  let session: any;
  await eventually(async () => {
    const { json } = await getJson(off.app.adminPort!, '/sessions');
    session = json.sessions.find((s: any) => s.application === 'sql-off-test');
    return session?.statement != null;
  }, 10_000, 'the blocked statement to show');
  await holder.query('SELECT pg_advisory_unlock(4242)');
  await blocked;
  t.match(session, { statement: { text: null, operation: 'SELECT' }, lastStatement: { text: null, operation: 'SELECT', commandTag: 'SELECT 1' } });
  t.notMatch(JSON.stringify(session), 'secret', 'no SQL text anywhere in the session');
  await off.waitForTransactions(4);
  const { json } = await getJson(off.app.adminPort!, '/transactions?limit=4');
  const texts = json.transactions.flatMap((tx: any) => tx.statementLog.map((s: any) => s.text));
  t.same(texts, [null, null, null, null], '/transactions shows none either');
});

t.test('/transactions?limit=2 returns the two most recent, newest first, with their statements', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('SELECT 1');
  await client.query('BEGIN');
  await client.query("INSERT INTO notes (body) VALUES ('first')");
  await client.query('COMMIT');
  await client.query("SELECT 'last'");
  await proxy.waitForTransactions(3);

  const { status, json } = await getJson(adminPort, '/transactions?limit=2');
  t.equal(status, 200);
  t.equal(json.transactions.length, 2);
  const [newest, previous] = json.transactions;
  t.match(newest, { implicit: true, outcome: 'commit', statements: 1, statementLog: [{ text: "SELECT 'last'", commandTag: 'SELECT 1' }] });
  t.match(previous, { implicit: false, outcome: 'commit', statements: 3, writes: 1, database: 'postgres', user: 'postgres' });
  t.same(
    previous.statementLog.map((s: any) => [s.text, s.commandTag]),
    [
      ['BEGIN', 'BEGIN'],
      ["INSERT INTO notes (body) VALUES ('first')", 'INSERT 0 1'],
      ['COMMIT', 'COMMIT'],
    ],
  );
  t.equal(newest.sessionId, previous.sessionId);
  t.ok(Date.parse(newest.startedAt) >= Date.parse(previous.endedAt), 'newest first');

  for (const bad of ['0', '-1', '1.5', 'abc', '1000']) {
    const res = await getJson(adminPort, `/transactions?limit=${bad}`);
    t.equal(res.status, 400, `limit=${bad}`);
    t.match(res.json.message, 'limit must be an integer');
  }
});

t.test('/events streams a statement record for a query run after subscribing, and detaches on close', async (t) => {
  const events = await subscribe(adminPort);
  t.equal(events.status, 200);
  t.match(events.headers['content-type'], /^text\/event-stream/);
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query("SELECT 'sse-probe'");
  const record = await events.waitFor((r) => r.kind === 'statement' && r['db.query.text'] === "SELECT 'sse-probe'", 5000, 'the statement record');
  t.match(record, { 'db.operation.name': 'SELECT', 'pg.command_tag': 'SELECT 1', 'db.namespace': 'postgres' });
  await events.waitFor((r) => r.kind === 'transaction' && r['transaction.id'] === record['transaction.id'], 5000, 'its transaction record');
  t.equal((await Scrape.of(adminPort)).value('txproxy_admin_event_subscribers'), 1);

  events.close();
  await eventually(async () => (await Scrape.of(adminPort)).value('txproxy_admin_event_subscribers') === 0, 5000, 'the subscriber to detach');
});

t.test('/events drops records for a consumer that does not read, and says how many', async (t) => {
  const events = await subscribe(adminPort);
  t.teardown(() => events.close());
  const before = (await Scrape.of(adminPort)).value('txproxy_admin_events_dropped_total') ?? 0;
  events.pause();
  const pad = 'x'.repeat(256 * 1024);
  const sent = 200;
  // 50 MB at once: far more than socket buffers and the 1 MiB allowance hold.
  for (let i = 0; i < sent; i++) proxy.app.traceBus.write({ kind: 'test', i, pad });
  const dropped = ((await Scrape.of(adminPort)).value('txproxy_admin_events_dropped_total') ?? 0) - before;
  t.ok(dropped > 0 && dropped < sent, `${dropped} of ${sent} records dropped`);

  events.resume();
  proxy.app.traceBus.write({ kind: 'test', last: true });
  await events.waitFor((r) => r.kind === 'test' && r.last === true, 10_000, 'the record after catching up');
  const received = events.records.filter((r) => r.kind === 'test' && r.last !== true).length;
  t.equal(received + dropped, sent, 'every record was either sent or counted as dropped');
  t.same(events.comments.filter((c) => c.startsWith('dropped')), [`dropped ${dropped}`]);
});

t.test('/events sends a keepalive comment on an idle stream', async (t) => {
  // The endpoint's period is 15 s; the same stream with a short one.
  const stream = new EventStream({ bus: new TraceBus(), registry: new Registry(), keepaliveMs: 50 });
  const server = http.createServer((req, res) => stream.subscribe(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    stream.closeAll();
    server.closeAllConnections();
    server.close();
  });
  const events = await subscribe((server.address() as net.AddressInfo).port);
  await eventually(() => events.comments.filter((c) => c === 'keepalive').length >= 2, 5000, 'two keepalives');
  t.same(events.records, []);
  events.close();
  await eventually(() => stream.size === 0, 5000, 'the subscriber to detach');
});

t.test('with http off there is no admin endpoint and no metrics listener', async (t) => {
  const off = await startProxy(postgres);
  t.teardown(() => off.stop());
  t.equal(off.app.adminPort, null);
  t.equal(off.app.metrics, null);
});

t.test('an admin address in use fails the start with the address named, and frees the proxy port', async (t) => {
  const proxyPort = await deadPort();
  const err = await startProxy(postgres, { listen: `127.0.0.1:${proxyPort}`, http: `127.0.0.1:${adminPort}` }).catch((e: unknown) => e);
  t.type(err, ListenError);
  t.equal((err as ListenError).address, `127.0.0.1:${adminPort}`);
  t.match((err as Error).message, `cannot listen on 127.0.0.1:${adminPort}: `);
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(proxyPort, '127.0.0.1', resolve);
  });
  t.pass('the proxy port is free again');
  await new Promise((resolve) => server.close(resolve));
});
