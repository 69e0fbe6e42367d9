/**
 * Policy records in the trace and in the rendered transcript: each names
 * the transaction it belongs to (so it is shown inside that transaction's
 * block, never as "outside any transaction" or "late"), the statements
 * txproxy sends itself are marked, and the client's own text survives a
 * rewrite. Also: statements that cannot run in a transaction block are
 * never flagged as a request's non-atomic writes.
 */
import t from 'tap';
import type pg from 'pg';
import postgres from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { TRUST_LOCAL } from '../helpers/exact-client.js';
import { render, transactionBlocks } from '../unit/trace-render/fixtures.js';

// The server log shows how txproxy's own statements travel (docs/policies.md, "How a refusal works").
const logLines: string[] = [];
const server = await startPostgres({ hba: TRUST_LOCAL, postgresFlags: ['-c', 'log_statement=all'], onLog: (message) => logLines.push(message) });
const serverLog = () => logLines.join('');
const proxy = await startProxy(server, {
  policies: {
    default: { mode: 'autocommit' },
    rules: [
      { name: 'wrapped', match: { application_name: 'wrapped' }, mode: 'single-transaction' },
      { name: 'strict', match: { application_name: 'strict' }, mode: 'atomic' },
      { name: 'loose', match: { application_name: 'loose' }, mode: 'atomic', action: 'warn' },
    ],
  },
});
t.teardown(async () => {
  await proxy.stop();
  await server.stop();
});
await server.sql('CREATE TABLE items (id serial PRIMARY KEY, name text)');

type Rec = Record<string, unknown>;

/** Runs a workload on its own session and returns its trace records, session end included. */
async function record(applicationName: string, workload: (client: pg.Client) => Promise<void>): Promise<Rec[]> {
  const from = proxy.trace.records.length;
  const client = await proxy.client({ application_name: applicationName });
  client.on('error', () => undefined);
  await workload(client);
  await client.end();
  await eventually(() => proxy.trace.records.slice(from).some((r) => r.kind === 'session' && r.event === 'end'), 10_000, 'session end record');
  return proxy.trace.records.slice(from) as Rec[];
}

const ofKind = (records: Rec[], kind: string) => records.filter((r) => r.kind === kind);

t.test('single-transaction: policy records carry the request transaction, statements say who sent them', async (t) => {
  const records = await record('wrapped', async (c) => {
    await c.query('BEGIN');
    await c.query("INSERT INTO items (name) VALUES ('a')");
    await c.query('COMMIT');
  });
  const [tx] = ofKind(records, 'transaction');
  t.match(tx, { outcome: 'commit', implicit: false });
  const txId = tx['transaction.id'];
  t.match(ofKind(records, 'policy'), [
    { decision: 'wrapped', 'transaction.id': txId },
    { decision: 'committed', 'transaction.id': txId },
  ]);
  const committed = records.findIndex((r) => r.kind === 'policy' && r.decision === 'committed');
  t.ok(committed < records.indexOf(tx), "the outcome is written before the transaction's own record");

  const statements = ofKind(records, 'statement').map((s) => [s['db.query.text'], s['txproxy.origin'] ?? null, s['txproxy.client_text'] ?? null]);
  t.same(statements, [
    ['BEGIN', 'proxy', null],
    ['SAVEPOINT txproxy_client_block', 'rewritten', 'BEGIN'],
    ["INSERT INTO items (name) VALUES ('a')", null, null],
    ['RELEASE SAVEPOINT txproxy_client_block', 'rewritten', 'COMMIT'],
    ['COMMIT', 'proxy', null],
  ]);

  const { text, problems } = render(records);
  t.same(problems, []);
  t.notMatch(text, /outside any transaction|late /, 'every record is shown in its block');
  const [block] = transactionBlocks(text);
  const shown = block.lines.join('\n');
  t.match(shown, /POLICY wrapped \(single-transaction, enforce\): wrapped/);
  t.match(shown, /POLICY wrapped \(single-transaction, enforce\): committed/);
  t.match(shown, /BEGIN\s+\(sent by txproxy\)/);
  t.match(shown, /SAVEPOINT txproxy_client_block\s+\(txproxy, for the client's: BEGIN\)/);
  t.match(shown, /RELEASE SAVEPOINT txproxy_client_block\s+\(txproxy, for the client's: COMMIT\)/);
  t.notMatch(shown, /INSERT INTO items \(name\) VALUES \('a'\)\s+\(/, "the client's own statement is not marked");
});

t.test('single-transaction: an abrupt end is recorded in the transaction it rolled back', async (t) => {
  const from = proxy.trace.records.length;
  const client = await proxy.client({ application_name: 'wrapped' });
  client.on('error', () => undefined);
  await client.query("INSERT INTO items (name) VALUES ('gone')");
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await eventually(() => proxy.trace.records.slice(from).some((r) => r.kind === 'session' && r.event === 'end'), 10_000, 'session end record');
  const records = proxy.trace.records.slice(from) as Rec[];
  const [tx] = ofKind(records, 'transaction');
  t.match(tx, { outcome: 'disconnect' });
  t.match(ofKind(records, 'policy'), [
    { decision: 'wrapped', 'transaction.id': tx['transaction.id'] },
    { decision: 'rolled_back', 'transaction.id': tx['transaction.id'] },
  ]);
  t.notMatch(render(records).text, /outside any transaction|late /);
});

t.test('atomic: a refusal and a warning are recorded in the transaction their statement ran in', async (t) => {
  const refused = await record('strict', async (c) => {
    await c.query("INSERT INTO items (name) VALUES ('x')").catch(() => undefined);
  });
  const [statement] = ofKind(refused, 'statement');
  t.type(statement['transaction.id'], 'string');
  t.match(ofKind(refused, 'policy'), [{ decision: 'refused', 'transaction.id': statement['transaction.id'] }]);
  t.notMatch(render(refused).text, /outside any transaction|late /);

  const warned = await record('loose', async (c) => {
    await c.query({ text: 'INSERT INTO items (name) VALUES ($1)', values: ['y'] });
  });
  const [ran] = ofKind(warned, 'statement');
  t.match(ofKind(warned, 'policy'), [{ decision: 'warned', 'transaction.id': ran['transaction.id'], message: /let through with a warning/ }]);
  t.notMatch(render(warned).text, /outside any transaction|late /);
});

t.test('DROP DATABASE then CREATE DATABASE: not flagged as a request of non-atomic writes', async (t) => {
  await server.sql('CREATE DATABASE scratch');
  const records = await record('migrations', async (c) => {
    await c.query('DROP DATABASE scratch');
    await c.query('CREATE DATABASE scratch');
    await c.query('VACUUM items');
  });
  t.same(ofKind(records, 'policy'), [], 'no orphan-write warning');
  const { text } = render(records);
  // (Counted by title: a 13-letter tag such as DROP DATABASE fills its column.)
  t.equal(text.match(/^── tx /gm)?.length, 3);
  t.notMatch(text, /not atomic/);
  t.notMatch(text, /^── request /m, 'no request summary');
  t.teardown(() => server.sql('DROP DATABASE IF EXISTS scratch'));
});

t.test('two real writes of one request are still flagged, the warning inside the second transaction', async (t) => {
  const records = await record('migrations', async (c) => {
    await c.query("INSERT INTO items (name) VALUES ('order')");
    await c.query("INSERT INTO items (name) VALUES ('address')");
  });
  const second = ofKind(records, 'transaction')[1];
  t.match(ofKind(records, 'policy'), [{ decision: 'warned', 'transaction.id': second['transaction.id'] }]);
  const { text } = render(records);
  t.match(text, /not atomic/);
  t.notMatch(text, /outside any transaction|late /);
});

t.test("the server log shows txproxy's statements as docs/policies.md says: simple queries, or txproxy_control", async (t) => {
  // node-postgres without parameters: simple Query messages.
  await record('wrapped', async (c) => {
    await c.query("INSERT INTO items (name) VALUES ('via simple')");
  });
  await eventually(() => /statement: INSERT INTO items \(name\) VALUES \('via simple'\)/.test(serverLog()), 10_000, 'the simple statement in the log');
  const simple = serverLog().split('\n');
  const at = simple.findIndex((line) => line.includes("VALUES ('via simple')"));
  t.match(simple.slice(0, at).reverse().find((line) => / (statement|execute [^:]*): /.test(line)), /statement: BEGIN$/, 'the request BEGIN went as a simple Query');
  t.ok(simple.slice(at).some((line) => /statement: COMMIT$/.test(line)), 'so did its COMMIT at Terminate');

  // postgres.js: extended batches.
  const sql = postgres({ host: '127.0.0.1', port: proxy.port, user: server.user, database: 'postgres', connection: { application_name: 'wrapped' }, max: 1, fetch_types: false });
  await sql`INSERT INTO items (name) VALUES (${'via extended'})`;
  await sql.end();
  await eventually(() => serverLog().includes('execute txproxy_control/txproxy_control: BEGIN'), 10_000, 'the extended control statement in the log');
  t.pass('the request BEGIN went through the txproxy_control statement and portal');
});
