/**
 * Pipelined extended-protocol batches, written byte for byte: several
 * Parse/Bind/Describe/Execute/Sync batches in one write, errors in the
 * middle batch, notices between them. The client must see exactly what the
 * server sent, and the tracker must match every answer to its batch.
 */
import t, { type Test } from 'tap';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { dataRowValues, errorOf, extendedBatch, RawClient, transcript } from '../helpers/raw-client.js';
import { checkTraceInvariants, resetRecords, sessionIdOf } from '../helpers/trace-checks.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE log (id serial PRIMARY KEY, note text UNIQUE)');

t.beforeEach(() => resetRecords(proxy));

async function connect(t: Test): Promise<{ raw: RawClient; sessionId: string }> {
  const raw = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  t.teardown(() => raw.close());
  return { raw, sessionId: sessionIdOf(proxy, raw.backendPid) };
}

t.test('three batches in one write, the middle one failing at Execute: the third still runs and is tracked', async (t) => {
  const { raw, sessionId } = await connect(t);
  raw.send(
    extendedBatch('INSERT INTO log (note) VALUES ($1)', ['first']),
    extendedBatch('SELECT id / (id * $1::int) AS boom FROM log', [0]),
    extendedBatch('INSERT INTO log (note) VALUES ($1) RETURNING id', ['third']),
  );
  const messages = await raw.readyForQuery(3);
  t.same(transcript(messages), [
    ...['1', '2', 'n', 'C:INSERT 0 1', 'Z:I'],
    ...['1', '2', 'T', 'E:22012', 'Z:I'],
    ...['1', '2', 'T', 'D', 'C:INSERT 0 1', 'Z:I'],
  ]);
  await proxy.waitForTransactions(3);
  t.same(
    proxy.statements.map((s) => [s.text, s.protocol, s.commandTag, s.error?.code ?? null, s.txStatusBefore, s.txStatusAfter]),
    [
      ['INSERT INTO log (note) VALUES ($1)', 'extended', 'INSERT 0 1', null, 'I', 'I'],
      ['SELECT id / (id * $1::int) AS boom FROM log', 'extended', null, '22012', 'I', 'I'],
      ['INSERT INTO log (note) VALUES ($1) RETURNING id', 'extended', 'INSERT 0 1', null, 'I', 'I'],
    ],
  );
  t.same(
    proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes, x.firstError?.code ?? null]),
    [
      [true, 'commit', 1, 1, null],
      [true, 'failed', 1, 0, '22012'],
      [true, 'commit', 1, 1, null],
    ],
    'each Sync closes its own implicit transaction',
  );
  t.same(new Set(proxy.statements.map((s) => s.transactionId)).size, 3);
  const rows = await postgres.sql("SELECT note FROM log WHERE note IN ('first', 'third') ORDER BY id");
  t.same(rows.rows.map((r) => r.note), ['first', 'third']);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('an error at Bind in the middle batch (a bad parameter): Execute is skipped, the error is the statement\'s', async (t) => {
  const { raw, sessionId } = await connect(t);
  raw.send(extendedBatch('SELECT $1::int AS a', [1]), extendedBatch('SELECT $1::int AS b', ['not a number']), extendedBatch('SELECT $1::int AS c', [3]));
  const messages = await raw.readyForQuery(3);
  t.same(transcript(messages), [...['1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I'], ...['1', 'E:22P02', 'Z:I'], ...['1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I']]);
  await proxy.waitForTransactions(3);
  t.same(
    proxy.statements.map((s) => [s.text, s.commandTag, s.error?.code ?? null]),
    [
      ['SELECT $1::int AS a', 'SELECT 1', null],
      ['SELECT $1::int AS b', null, '22P02'],
      ['SELECT $1::int AS c', 'SELECT 1', null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['commit', 'failed', 'commit']);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('a syntax error at Parse in the middle batch: Bind/Execute are skipped to Sync, the next batch is matched', async (t) => {
  const { raw, sessionId } = await connect(t);
  raw.send(extendedBatch('SELECT 1 AS a'), extendedBatch('SELEC 2'), extendedBatch('SELECT 3 AS c'));
  const messages = await raw.readyForQuery(3);
  t.same(transcript(messages), [...['1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I'], ...['E:42601', 'Z:I'], ...['1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I']]);
  t.same(dataRowValues(messages.filter((m) => m.type === 'D')[1]), ['3']);
  await proxy.waitForTransactions(3);
  t.same(
    proxy.statements.map((s) => [s.text, s.commandTag, s.rows, s.error?.code ?? null]),
    [
      ['SELECT 1 AS a', 'SELECT 1', 1, null],
      ['SELEC 2', null, null, '42601'],
      ['SELECT 3 AS c', 'SELECT 1', 1, null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['commit', 'failed', 'commit']);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('several Executes before one Sync are one implicit transaction; an error in it undoes the earlier ones', async (t) => {
  const { raw, sessionId } = await connect(t);
  const insert = (note: string) => [serialize.bind({ statement: 'ins', values: [note] }), serialize.execute({})];
  raw.send(
    serialize.parse({ name: 'ins', text: 'INSERT INTO log (note) VALUES ($1)' }),
    ...insert('batch-a'),
    ...insert('batch-b'),
    serialize.sync(),
    ...insert('batch-c'),
    ...insert('batch-a'), // unique violation: batch-c goes too
    ...insert('batch-d'), // skipped by the server
    serialize.sync(),
  );
  const messages = await raw.readyForQuery(2);
  t.same(transcript(messages), ['1', '2', 'C:INSERT 0 1', '2', 'C:INSERT 0 1', 'Z:I', '2', 'C:INSERT 0 1', '2', 'E:23505', 'Z:I']);
  await proxy.waitForTransactions(2);
  t.same(
    proxy.transactions.map((x) => [x.implicit, x.outcome, x.statements, x.writes]),
    [
      [true, 'commit', 2, 2],
      [true, 'failed', 2, 1],
    ],
  );
  t.same(proxy.statements.map((s) => s.statementName), ['ins', 'ins', 'ins', 'ins'], 'the skipped Execute is not reported');
  const rows = await postgres.sql("SELECT note FROM log WHERE note LIKE 'batch-%' ORDER BY note");
  t.same(rows.rows.map((r) => r.note), ['batch-a', 'batch-b'], 'the failed batch left nothing behind');
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('an explicit transaction pipelined across Syncs: BEGIN, a failing batch, ROLLBACK', async (t) => {
  const { raw, sessionId } = await connect(t);
  raw.send(
    extendedBatch('BEGIN'),
    extendedBatch('INSERT INTO log (note) VALUES ($1)', ['in-tx']),
    extendedBatch('SELECT 1 / 0'),
    extendedBatch('INSERT INTO log (note) VALUES ($1)', ['ignored']),
    extendedBatch('ROLLBACK'),
  );
  const messages = await raw.readyForQuery(5);
  t.same(
    transcript(messages, (m) => m.type === 'Z' || m.type === 'E' || m.type === 'C'),
    ['C:BEGIN', 'Z:T', 'C:INSERT 0 1', 'Z:T', 'E:22012', 'Z:E', 'E:25P02', 'Z:E', 'C:ROLLBACK', 'Z:I'],
  );
  await proxy.waitForTransactions(1);
  t.equal(proxy.transactions.length, 1, 'one transaction across the five Syncs');
  t.match(proxy.transactions[0], { implicit: false, outcome: 'failed', statements: 5, writes: 1, firstError: { code: '22012' } });
  t.same(
    proxy.statements.map((s) => [s.txStatusBefore, s.txStatusAfter, s.error?.code ?? s.commandTag]),
    [
      ['I', 'T', 'BEGIN'],
      ['T', 'T', 'INSERT 0 1'],
      ['T', 'E', '22012'],
      ['E', 'E', '25P02'],
      ['E', 'I', 'ROLLBACK'],
    ],
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('notices and errors inside a pipeline are never matched to a statement', async (t) => {
  const { raw, sessionId } = await connect(t);
  raw.send(
    extendedBatch("DO $$ BEGIN RAISE NOTICE 'first notice'; RAISE WARNING 'a warning'; END $$"),
    extendedBatch('SELECT $1::int AS n', [7]),
    extendedBatch("DO $$ BEGIN RAISE NOTICE 'before the error'; RAISE EXCEPTION 'planned failure' USING ERRCODE = 'P0001'; END $$"),
    extendedBatch('SELECT 8 AS n'),
  );
  const messages = await raw.readyForQuery(4);
  t.same(transcript(messages, (m) => 'NCEZ'.includes(m.type)), [
    'N:NOTICE',
    'N:WARNING',
    'C:DO',
    'Z:I',
    'C:SELECT 1',
    'Z:I',
    'N:NOTICE',
    'E:P0001',
    'Z:I',
    'C:SELECT 1',
    'Z:I',
  ]);
  t.same(
    messages.filter((m) => m.type === 'N').map((m) => errorOf(m).message),
    ['first notice', 'a warning', 'before the error'],
    'notices reach the client unchanged',
  );
  await proxy.waitForTransactions(4);
  t.same(
    proxy.statements.map((s) => [s.info.operation, s.commandTag, s.error?.code ?? null]),
    [
      ['DO', 'DO', null],
      ['SELECT', 'SELECT 1', null],
      ['DO', null, 'P0001'],
      ['SELECT', 'SELECT 1', null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['commit', 'commit', 'failed', 'commit']);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('a pipeline of 200 batches in one write is matched one to one', async (t) => {
  const { raw, sessionId } = await connect(t);
  const batches = Array.from({ length: 200 }, (_, i) => extendedBatch(i % 50 === 49 ? 'SELECT 1 / 0' : 'SELECT $1::int AS i', i % 50 === 49 ? [] : [i]));
  raw.send(...batches);
  const messages = await raw.readyForQuery(200);
  t.equal(messages.filter((m) => m.type === 'E').length, 4);
  await proxy.waitForTransactions(200);
  t.equal(proxy.statements.length, 200);
  t.same(
    proxy.statements.filter((s) => s.error !== null).map((s) => s.seq),
    [50, 100, 150, 200],
    'the errors are attributed to the batches that raised them',
  );
  t.ok(proxy.statements.every((s, i) => s.seq === i + 1));
  t.equal(proxy.transactions.filter((x) => x.outcome === 'failed').length, 4);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});
