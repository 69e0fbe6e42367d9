/**
 * Messages the server sends outside the request/response rhythm:
 * NotificationResponse (LISTEN/NOTIFY), NoticeResponse and ParameterStatus.
 * They pass through to the client unchanged, are never matched to a
 * statement, and ParameterStatus keeps the session's application name.
 */
import t from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { checkTraceInvariants, resetRecords, sessionIdOf } from '../helpers/trace-checks.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

t.beforeEach(() => resetRecords(proxy));

async function pidOf(client: pg.Client): Promise<number> {
  return (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
}

t.test('a NOTIFY from another session reaches an idle listener through txproxy, and matches no statement', async (t) => {
  const listener = await proxy.client();
  t.teardown(() => listener.end());
  const sessionId = sessionIdOf(proxy, await pidOf(listener));
  const received: pg.Notification[] = [];
  listener.on('notification', (n) => received.push(n));
  await listener.query('LISTEN orders');
  await proxy.waitForTransactions(2);
  const before = proxy.statements.filter((s) => s.sessionId === sessionId).length;

  // From a direct connection and from another txproxy session.
  await postgres.sql("NOTIFY orders, 'direct'");
  const notifier = await proxy.client();
  t.teardown(() => notifier.end());
  await notifier.query("SELECT pg_notify('orders', 'proxied')");
  await eventually(() => received.length === 2, 5000, 'two notifications');
  t.same(
    received.map((n) => [n.channel, n.payload]),
    [
      ['orders', 'direct'],
      ['orders', 'proxied'],
    ],
  );
  t.equal(proxy.statements.filter((s) => s.sessionId === sessionId).length, before, 'the listener ran nothing more');

  // The listener's next query is matched to its own answer.
  const after = await listener.query('SELECT 7 AS seven');
  t.same(after.rows, [{ seven: 7 }]);
  await eventually(() => proxy.statements.some((s) => s.sessionId === sessionId && s.text === 'SELECT 7 AS seven'));
  t.match(proxy.statements.filter((s) => s.sessionId === sessionId).at(-1), { commandTag: 'SELECT 1', rows: 1, error: null });
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('a notification delivered while the listener runs a query lands between its answer and ReadyForQuery', async (t) => {
  const listener = await proxy.client();
  t.teardown(() => listener.end());
  const pid = await pidOf(listener);
  const sessionId = sessionIdOf(proxy, pid);
  const received: string[] = [];
  listener.on('notification', (n) => received.push(n.payload ?? ''));
  await listener.query('LISTEN jobs');
  // The listener is busy when the notification is sent; the server delivers it when the query is done.
  const busy = listener.query('SELECT pg_sleep(0.3), 1 AS done');
  await eventually(async () => (await postgres.sql('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0]?.state === 'active', 5000, 'the listener to be busy');
  await postgres.sql("NOTIFY jobs, 'while busy'");
  const result = await busy;
  t.same(result.rows[0].done, 1);
  await eventually(() => received.length === 1);
  t.same(received, ['while busy']);
  // Self-notification inside a transaction is delivered at commit.
  await listener.query('BEGIN');
  await listener.query("NOTIFY jobs, 'at commit'");
  t.equal(received.length, 1, 'not before the commit');
  await listener.query('COMMIT');
  await eventually(() => received.length === 2);
  t.same(received, ['while busy', 'at commit']);
  await eventually(() => proxy.transactions.filter((x) => x.sessionId === sessionId).length === 4);
  t.same(
    proxy.statements.filter((s) => s.sessionId === sessionId).map((s) => [s.info.operation, s.commandTag]),
    [
      ['SELECT', 'SELECT 1'],
      ['LISTEN', 'LISTEN'],
      ['SELECT', 'SELECT 1'],
      ['BEGIN', 'BEGIN'],
      ['NOTIFY', 'NOTIFY'],
      ['COMMIT', 'COMMIT'],
    ],
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('postgres.js sql.listen / sql.notify through txproxy', async (t) => {
  const sql = postgresJs(proxy.url(), { max: 2, onnotice: () => undefined });
  t.teardown(() => sql.end({ timeout: 5 }));
  const received: string[] = [];
  const { unlisten } = await sql.listen('events', (payload) => received.push(payload));
  await sql.notify('events', 'one');
  await sql.notify('events', 'two');
  await eventually(() => received.length === 2, 5000, 'postgres.js notifications');
  t.same(received, ['one', 'two']);
  await unlisten();
  checkTraceInvariants(t, proxy);
});

t.test('NoticeResponse from RAISE NOTICE passes through; the DO statement is traced without an error', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const sessionId = sessionIdOf(proxy, await pidOf(client));
  const notices: { severity?: string; message?: string; code?: string }[] = [];
  client.on('notice', (n) => notices.push({ severity: n.severity, message: n.message, code: n.code }));
  await client.query("DO $$ BEGIN RAISE NOTICE 'checking % rows', 3; RAISE WARNING 'slow plan' USING ERRCODE = '01000'; END $$");
  // A server WARNING with a CommandComplete: COMMIT outside a transaction.
  await client.query('COMMIT');
  t.same(notices, [
    { severity: 'NOTICE', message: 'checking 3 rows', code: '00000' },
    { severity: 'WARNING', message: 'slow plan', code: '01000' },
    { severity: 'WARNING', message: 'there is no transaction in progress', code: '25P01' },
  ]);
  await eventually(() => proxy.statements.filter((s) => s.sessionId === sessionId).length === 3);
  const mine = proxy.statements.filter((s) => s.sessionId === sessionId);
  t.match(mine[1], { info: { operation: 'DO' }, commandTag: 'DO', error: null });
  t.match(mine[2], { info: { operation: 'COMMIT' }, commandTag: 'COMMIT', error: null, transactionId: null, txStatusBefore: 'I', txStatusAfter: 'I' });
  t.same(
    proxy.transactions.filter((x) => x.sessionId === sessionId).map((x) => x.outcome),
    ['commit', 'commit'],
    'the stray COMMIT opened no transaction',
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test("ParameterStatus: SET application_name updates the session's application name, and a rollback restores it", async (t) => {
  const client = await proxy.client({ application_name: 'checkout' });
  t.teardown(() => client.end());
  const reported: string[] = [];
  (client as unknown as { connection: pg.Connection }).connection.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => {
    if (m.parameterName === 'application_name') reported.push(m.parameterValue);
  });
  const pid = await pidOf(client);
  const session = [...proxy.app.server.sessions].find((s) => s.backendPid === pid)!;
  t.equal(session.info.applicationName, 'checkout', 'from the startup packet');
  t.match(proxy.trace.records.find((r) => r.kind === 'session' && r['session.id'] === session.info.id), { 'application.name': 'checkout' });

  await client.query("SET application_name = 'billing'");
  t.equal(session.info.applicationName, 'billing');
  t.same((await client.query('SHOW application_name')).rows, [{ application_name: 'billing' }]);

  await client.query('BEGIN');
  await client.query("SET application_name = 'refunds'");
  t.equal(session.info.applicationName, 'refunds');
  await client.query('ROLLBACK');
  t.equal(session.info.applicationName, 'billing', 'the rollback undid the SET, and the server said so');
  t.same(reported, ['billing', 'refunds', 'billing'], 'the client saw every ParameterStatus');
  const fromServer = await postgres.sql('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [pid]);
  t.equal(fromServer.rows[0].application_name, 'billing');
  checkTraceInvariants(t, proxy, { sessionIds: [session.info.id] });
});
