/**
 * Answers other than CommandComplete: EmptyQueryResponse for an empty
 * query (simple and extended), PortalSuspended for Execute with a row limit
 * (postgres.js cursors, a named portal read across Syncs in a block).
 */
import t, { type Test } from 'tap';
import postgresJs from 'postgres';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { RawClient, transcript } from '../helpers/raw-client.js';
import { checkTraceInvariants, resetRecords, sessionIdOf, statementRecords } from '../helpers/trace-checks.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

t.beforeEach(() => resetRecords(proxy));

async function raw(t: Test): Promise<{ raw: RawClient; sessionId: string }> {
  const client = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  t.teardown(() => client.close());
  return { raw: client, sessionId: sessionIdOf(proxy, client.backendPid) };
}

t.test("node-postgres: client.query(''), ';' and a lone comment get EmptyQueryResponse and are traced as empty statements", async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  for (const text of ['', ';', '-- nothing to do']) {
    const result = await client.query(text);
    t.same([result.command, result.rows], [null, []], `${JSON.stringify(text)} returns an empty result`);
  }
  t.same((await client.query('SELECT 1 AS after')).rows, [{ after: 1 }], 'the session goes on');
  await proxy.waitForTransactions(4);
  t.same(
    proxy.statements.map((s) => [s.text, s.info.operation, s.commandTag, s.error, s.rows]),
    [
      ['', '', null, null, null],
      [';', '', null, null, null],
      ['-- nothing to do', '', null, null, null],
      ['SELECT 1 AS after', 'SELECT', 'SELECT 1', null, 1],
    ],
  );
  checkTraceInvariants(t, proxy);
});

t.test('an empty query inside a transaction block changes nothing', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('BEGIN');
  await client.query('');
  await client.query('SELECT 1');
  await client.query('COMMIT');
  await proxy.waitForTransactions(1);
  t.match(proxy.transactions, [{ implicit: false, outcome: 'commit', statements: 4 }]);
  t.same(
    proxy.statements.map((s) => [s.txStatusBefore, s.txStatusAfter]),
    [
      ['I', 'T'],
      ['T', 'T'],
      ['T', 'T'],
      ['T', 'I'],
    ],
  );
  checkTraceInvariants(t, proxy);
});

t.test('an empty query in the extended protocol, pipelined between two statements', async (t) => {
  const { raw: client, sessionId } = await raw(t);
  const batch = (text: string) => [serialize.parse({ text }), serialize.bind({}), serialize.execute({}), serialize.sync()];
  client.send(...batch('SELECT 1'), ...batch(''), ...batch('SELECT 2'));
  t.same(transcript(await client.readyForQuery(3)), ['1', '2', 'D', 'C:SELECT 1', 'Z:I', '1', '2', 'I', 'Z:I', '1', '2', 'D', 'C:SELECT 1', 'Z:I']);
  await proxy.waitForTransactions(3);
  t.same(
    proxy.statements.map((s) => [s.text, s.commandTag]),
    [
      ['SELECT 1', 'SELECT 1'],
      ['', null],
      ['SELECT 2', 'SELECT 1'],
    ],
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('postgres.js cursor: each Execute with a row limit ends in PortalSuspended, all in one implicit transaction', async (t) => {
  const sql = postgresJs(proxy.url(), { max: 1, fetch_types: false });
  t.teardown(() => sql.end({ timeout: 5 }));
  let seen = 0;
  let batches = 0;
  for await (const rows of sql`SELECT g FROM generate_series(1, 1000) g`.cursor(300)) {
    seen += rows.length;
    batches++;
  }
  t.equal(seen, 1000);
  t.equal(batches, 4);
  await eventually(() => proxy.transactions.length === 1);
  t.same(
    proxy.statements.map((s) => [s.suspended, s.dataRows, s.rows, s.commandTag]),
    [
      [true, 300, 300, null],
      [true, 300, 300, null],
      [true, 300, 300, null],
      [false, 100, 100, 'SELECT 100'],
    ],
  );
  t.equal(new Set(proxy.statements.map((s) => s.transactionId)).size, 1, 'the portal lives in one implicit transaction, up to the Sync');
  t.match(proxy.transactions[0], { implicit: true, outcome: 'commit', statements: 4 });
  t.same(
    statementRecords(proxy).map((r) => r['pg.portal_suspended'] ?? false),
    [true, true, true, false],
    'the trace marks the suspended Executes',
  );
  checkTraceInvariants(t, proxy);
});

t.test('postgres.js cursor left early: the portal is closed, the session goes on', async (t) => {
  const sql = postgresJs(proxy.url(), { max: 1, fetch_types: false });
  t.teardown(() => sql.end({ timeout: 5 }));
  let seen = 0;
  for await (const rows of sql`SELECT g FROM generate_series(1, 1000) g`.cursor(100)) {
    seen += rows.length;
    if (seen >= 200) break;
  }
  t.equal(seen, 200);
  t.same([...(await sql`SELECT 'next' AS v`)], [{ v: 'next' }]);
  await eventually(() => proxy.transactions.length === 2);
  t.same(
    proxy.statements.map((s) => [s.suspended, s.rows]),
    [
      [true, 100],
      [true, 100],
      [false, 1],
    ],
  );
  t.same(proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements]), [
    [true, 'commit', 2],
    [true, 'commit', 1],
  ]);
  checkTraceInvariants(t, proxy);
});

t.test('a named portal read in slices across Syncs inside a transaction block', async (t) => {
  const { raw: client, sessionId } = await raw(t);
  client.send(serialize.query('BEGIN'));
  await client.readyForQuery();
  client.send(
    serialize.parse({ name: 'numbers', text: 'SELECT g FROM generate_series(1, 5) g' }),
    serialize.bind({ statement: 'numbers', portal: 'p' }),
    serialize.execute({ portal: 'p', rows: 2 }),
    serialize.sync(),
    serialize.execute({ portal: 'p', rows: 2 }),
    serialize.sync(),
    serialize.execute({ portal: 'p', rows: 2 }),
    serialize.sync(),
  );
  t.same(transcript(await client.readyForQuery(3)), ['1', '2', 'D', 'D', 's', 'Z:T', 'D', 'D', 's', 'Z:T', 'D', 'C:SELECT 1', 'Z:T']);
  client.send(serialize.query('COMMIT'));
  await client.readyForQuery();
  await proxy.waitForTransactions(1);
  t.same(
    proxy.statements.map((s) => [s.text, s.statementName, s.suspended, s.rows]),
    [
      ['BEGIN', null, false, null],
      ['SELECT g FROM generate_series(1, 5) g', 'numbers', true, 2],
      ['SELECT g FROM generate_series(1, 5) g', 'numbers', true, 2],
      ['SELECT g FROM generate_series(1, 5) g', 'numbers', false, 1],
      ['COMMIT', null, false, null],
    ],
  );
  t.match(proxy.transactions, [{ implicit: false, outcome: 'commit', statements: 5 }]);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});
