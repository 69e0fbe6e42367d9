/**
 * COPY through txproxy: psql's \copy, node-postgres, and raw protocol
 * (COPY issued through the extended protocol the way libpq's
 * PQexecParams does it: a Sync before the data, which the server ignores
 * in copy-in mode, and another after CopyDone). Rows are counted from the
 * tags, and COPY statements carry `pg.copy` in the trace.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { psql } from '../helpers/cli.js';
import { copyIn, copyOut } from '../helpers/pg-copy.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { RawClient, transcript } from '../helpers/raw-client.js';
import { checkTraceInvariants, resetRecords, sessionIdOf, statementRecords } from '../helpers/trace-checks.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-copy-'));
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
});
await postgres.sql('CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL)');

const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };

t.beforeEach(async () => {
  await postgres.sql('TRUNCATE people');
  resetRecords(proxy);
});

async function count(): Promise<number> {
  return (await postgres.sql('SELECT count(*)::int AS n FROM people')).rows[0].n;
}

t.test('psql \\copy in and out: rows counted, statements traced with pg.copy', async (t) => {
  const input = path.join(dir, 'in.csv');
  const output = path.join(dir, 'out.csv');
  writeFileSync(input, Array.from({ length: 500 }, (_, i) => `${i + 1},person ${i + 1}`).join('\n') + '\n');
  const result = await psql(endpoint, ['-c', `\\copy people FROM '${input}' WITH (FORMAT csv)`, '-c', `\\copy (SELECT * FROM people WHERE id <= 120 ORDER BY id) TO '${output}' WITH (FORMAT csv)`]);
  t.equal(result.code, 0, result.stderr);
  t.equal(await count(), 500);
  const exported = readFileSync(output, 'utf8').trim().split('\n');
  t.equal(exported.length, 120);
  t.equal(exported[0], '1,person 1');
  await proxy.waitForTransactions(2);
  const records = statementRecords(proxy);
  t.match(records, [
    { 'db.operation.name': 'COPY', 'pg.copy': 'in', 'pg.command_tag': 'COPY 500', 'db.response.returned_rows': 500, 'pg.protocol': 'simple' },
    { 'db.operation.name': 'COPY', 'pg.copy': 'out', 'pg.command_tag': 'COPY 120', 'db.response.returned_rows': 120 },
  ]);
  t.equal(records.length, 2);
  t.same(
    proxy.transactions.map((x) => [x.implicit, x.outcome, x.writes]),
    [
      [true, 'commit', 1],
      [true, 'commit', 0],
    ],
    'COPY FROM writes, COPY TO only reads',
  );
  checkTraceInvariants(t, proxy);
});

t.test('node-postgres COPY FROM STDIN and TO STDOUT, and a CopyFail', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const loaded = await copyIn(client, 'COPY people (id, name) FROM STDIN', [Buffer.from('1\tada\n2\tgrace\n'), Buffer.from('3\tbarbara\n')]);
  t.equal(loaded.tag, 'COPY 3');
  const dumped = await copyOut(client, 'COPY (SELECT id, name FROM people ORDER BY id) TO STDOUT');
  t.equal(dumped.tag, 'COPY 3');
  t.equal(Buffer.concat(dumped.data).toString(), '1\tada\n2\tgrace\n3\tbarbara\n');
  await t.rejects(copyIn(client, 'COPY people (id, name) FROM STDIN', { fail: 'the source went away' }), { code: '57014' });
  const after = await client.query('SELECT count(*)::int AS n FROM people');
  t.equal(after.rows[0].n, 3, 'the failed COPY loaded nothing, and the session goes on');
  await proxy.waitForTransactions(4);
  t.same(
    proxy.statements.map((s) => [s.copy, s.commandTag, s.rows, s.error?.code ?? null]),
    [
      ['in', 'COPY 3', 3, null],
      ['out', 'COPY 3', 3, null],
      ['in', null, null, '57014'],
      [null, 'SELECT 1', 1, null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['commit', 'commit', 'failed', 'commit']);
  checkTraceInvariants(t, proxy);
});

t.test('an error in the middle of COPY TO STDOUT: the rows sent so far reach the client, the statement fails', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const failing = copyOut(client, 'COPY (SELECT 10 / (5 - g) FROM generate_series(1, 8) g) TO STDOUT');
  await t.rejects(failing, { code: '22012' });
  t.same((await client.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
  await proxy.waitForTransactions(2);
  t.same(
    proxy.statements.map((s) => [s.copy, s.commandTag, s.error?.code ?? null]),
    [
      ['out', null, '22012'],
      [null, 'SELECT 1', null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['failed', 'commit']);
  checkTraceInvariants(t, proxy);
});

t.test('COPY inside an explicit transaction, rolled back', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('BEGIN');
  t.equal((await copyIn(client, 'COPY people FROM STDIN', [Buffer.from('7\tseven\n8\teight\n')])).tag, 'COPY 2');
  t.equal((await client.query('SELECT count(*)::int AS n FROM people')).rows[0].n, 2);
  await client.query('ROLLBACK');
  t.equal(await count(), 0);
  await proxy.waitForTransactions(1);
  t.match(proxy.transactions, [{ implicit: false, outcome: 'rollback', statements: 4, writes: 1 }]);
  checkTraceInvariants(t, proxy);
});

async function rawClient(t: Test): Promise<{ raw: RawClient; sessionId: string }> {
  const raw = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  t.teardown(() => raw.close());
  return { raw, sessionId: sessionIdOf(proxy, raw.backendPid) };
}

/** Parse, Bind, Describe, Execute, Sync: what libpq's PQexecParams writes. */
function libpqExecParams(text: string): Buffer[] {
  return [serialize.parse({ text }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync()];
}

t.test('COPY FROM STDIN in the extended protocol, libpq style: the Sync sent before the data is ignored and later statements still match', async (t) => {
  const { raw, sessionId } = await rawClient(t);
  raw.send(...libpqExecParams('COPY people FROM STDIN'));
  const start = await raw.until((m) => m.type === 'G');
  t.same(transcript(start), ['1', '2', 'n', 'G']);
  raw.send(serialize.copyData(Buffer.from('1\tone\n2\ttwo\n')), serialize.copyData(Buffer.from('3\tthree\n')), serialize.copyDone(), serialize.sync());
  t.same(transcript(await raw.readyForQuery()), ['C:COPY 3', 'Z:I']);
  // The statements after it must be matched to their own answers.
  t.same(transcript(await raw.query('SELECT 42')), ['T', 'D', 'C:SELECT 1', 'Z:I']);
  raw.send(...libpqExecParams('SELECT count(*) FROM people'));
  t.same(transcript(await raw.readyForQuery()), ['1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I']);
  await proxy.waitForTransactions(3);
  t.same(
    proxy.statements.map((s) => [s.text, s.protocol, s.copy, s.commandTag]),
    [
      ['COPY people FROM STDIN', 'extended', 'in', 'COPY 3'],
      ['SELECT 42', 'simple', null, 'SELECT 1'],
      ['SELECT count(*) FROM people', 'extended', null, 'SELECT 1'],
    ],
  );
  const session = [...proxy.app.server.sessions].find((s) => s.info.id === sessionId);
  t.equal(session?.tracker.pending, 0, 'nothing is left waiting for an answer');
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('the same, written in one go: data, CopyDone and both Syncs pipelined behind the Execute', async (t) => {
  const { raw, sessionId } = await rawClient(t);
  raw.send(
    ...libpqExecParams('COPY people FROM STDIN'),
    serialize.copyData(Buffer.from('4\tfour\n')),
    serialize.copyDone(),
    serialize.sync(),
    ...libpqExecParams('SELECT 1 AS after_copy'),
  );
  t.same(transcript(await raw.readyForQuery(2)), ['1', '2', 'n', 'G', 'C:COPY 1', 'Z:I', '1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I']);
  await proxy.waitForTransactions(2);
  t.same(
    proxy.statements.map((s) => [s.text, s.commandTag]),
    [
      ['COPY people FROM STDIN', 'COPY 1'],
      ['SELECT 1 AS after_copy', 'SELECT 1'],
    ],
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('bad data in an extended-protocol COPY: the error ends it at the next Sync, the session goes on', async (t) => {
  const { raw, sessionId } = await rawClient(t);
  raw.send(...libpqExecParams('COPY people FROM STDIN'));
  await raw.until((m) => m.type === 'G');
  raw.send(serialize.copyData(Buffer.from('5\tfive\nnot-a-number\tsix\n')), serialize.copyDone(), serialize.sync());
  t.same(transcript(await raw.readyForQuery()), ['E:22P02', 'Z:I']);
  t.same(transcript(await raw.query('SELECT 1')), ['T', 'D', 'C:SELECT 1', 'Z:I']);
  await proxy.waitForTransactions(2);
  t.same(
    proxy.statements.map((s) => [s.text, s.copy, s.error?.code ?? null]),
    [
      ['COPY people FROM STDIN', 'in', '22P02'],
      ['SELECT 1', null, null],
    ],
  );
  t.same(proxy.transactions.map((x) => x.outcome), ['failed', 'commit']);
  t.equal(await count(), 0);
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});

t.test('COPY TO STDOUT in the extended protocol', async (t) => {
  await postgres.sql("INSERT INTO people VALUES (1, 'a'), (2, 'b')");
  const { raw, sessionId } = await rawClient(t);
  raw.send(...libpqExecParams('COPY people TO STDOUT'), ...libpqExecParams('SELECT 2'));
  const messages = await raw.readyForQuery(2);
  t.same(transcript(messages), ['1', '2', 'n', 'H', 'd', 'd', 'c', 'C:COPY 2', 'Z:I', '1', '2', 'T', 'D', 'C:SELECT 1', 'Z:I']);
  await proxy.waitForTransactions(2);
  t.same(
    proxy.statements.map((s) => [s.copy, s.rows]),
    [
      ['out', 2],
      [null, 1],
    ],
  );
  checkTraceInvariants(t, proxy, { sessionIds: [sessionId] });
});
