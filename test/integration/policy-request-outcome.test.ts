/**
 * How a single-transaction request ends when it ends cleanly. A Django
 * view in autocommit mode that saves an address and then raises sends
 * nothing more and disconnects with Terminate, exactly as a view that
 * succeeded does: `on_clean_end` says what such an end does, and the
 * sqlcommenter mark `txproxy_outcome` lets the application say how the
 * request went. Rows are checked directly on the server.
 */
import t from 'tap';
import type pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { TRUST_LOCAL } from '../helpers/exact-client.js';

const server = await startPostgres({ hba: TRUST_LOCAL });
const proxy = await startProxy(server, {
  policies: {
    rules: [
      { name: 'commit-at-end', match: { application_name: 'view-commit' }, mode: 'single-transaction' },
      { name: 'rollback-at-end', match: { application_name: 'view-rollback' }, mode: 'single-transaction', on_clean_end: 'rollback' },
    ],
  },
});
t.teardown(async () => {
  await proxy.stop();
  await server.stop();
});
await server.sql('CREATE TABLE addresses (id serial PRIMARY KEY, street text)');

const streets = async () => (await server.sql('SELECT street FROM addresses ORDER BY id')).rows.map((r) => r.street as string);
const policyRecords = () => proxy.trace.records.filter((r) => r.kind === 'policy');
const sessionsClosed = () => eventually(() => proxy.app.server.sessions.size === 0, 10_000, 'sessions to close');

t.beforeEach(async () => {
  await server.sql('TRUNCATE addresses');
  proxy.trace.records.length = 0;
});

/**
 * The view saves an address, then raises: the application sends nothing
 * more, and its request teardown closes the connection cleanly.
 */
async function failingView(client: pg.Client): Promise<void> {
  await client.query({ text: 'INSERT INTO addresses (street) VALUES ($1)', values: ['orphan street'] });
  // (the view raises here: no further statement, no marker)
}

t.test('on_clean_end: commit (the default) commits a request that failed after its last statement', async (t) => {
  const client = await proxy.client({ application_name: 'view-commit' });
  await failingView(client);
  await client.end();
  await sessionsClosed();
  t.same(await streets(), ['orphan street'], 'the wire cannot tell this end from a success: the orphan stays');
  t.match(policyRecords(), [
    { rule: 'commit-at-end', decision: 'wrapped' },
    { rule: 'commit-at-end', decision: 'committed', message: /without an outcome mark and on_clean_end is commit/ },
  ]);
});

t.test('on_clean_end: rollback leaves nothing of a failed request behind', async (t) => {
  const client = await proxy.client({ application_name: 'view-rollback' });
  await failingView(client);
  t.same(await streets(), [], 'not visible before the end');
  await client.end();
  await sessionsClosed();
  t.same(await streets(), [], 'the orphan address is rolled back');
  t.match(policyRecords(), [
    { rule: 'rollback-at-end', decision: 'wrapped' },
    { rule: 'rollback-at-end', decision: 'rolled_back', sqlstate: null, message: /rolled back the request's transaction at its clean end: .*on_clean_end is rollback/ },
  ]);
  t.match(proxy.trace.records.filter((r) => r.kind === 'transaction'), [{ outcome: 'rollback', implicit: false }]);
});

t.test("on_clean_end: rollback: a request that marks txproxy_outcome='commit' keeps its rows", async (t) => {
  const client = await proxy.client({ application_name: 'view-rollback' });
  await client.query({ text: 'INSERT INTO addresses (street) VALUES ($1)', values: ['kept street'] });
  // The success mark, as the Django middleware in docs/policies.md sends it (simple protocol).
  const marker = await client.query("SELECT 1 /*txproxy_outcome='commit'*/");
  t.same(marker.rows, [{ '?column?': 1 }], 'the server runs the marker as the plain SELECT it is');
  await client.end();
  await sessionsClosed();
  t.same(await streets(), ['kept street']);
  t.match(policyRecords().at(-1), { decision: 'committed', message: /marked txproxy_outcome='commit'/ });
});

t.test('the mark works through the extended protocol too, and on the last statement itself', async (t) => {
  const client = await proxy.client({ application_name: 'view-rollback' });
  await client.query({ text: "INSERT INTO addresses (street) VALUES ($1) /*txproxy_outcome='commit'*/", values: ['tagged street'] });
  await client.end();
  await sessionsClosed();
  t.same(await streets(), ['tagged street']);
});

t.test("on_clean_end: commit: a request that marks txproxy_outcome='rollback' (an exception handler) is rolled back", async (t) => {
  const client = await proxy.client({ application_name: 'view-commit' });
  await failingView(client);
  await client.query("SELECT 1 /*txproxy_outcome='rollback'*/");
  await client.end();
  await sessionsClosed();
  t.same(await streets(), []);
  t.match(policyRecords().at(-1), { decision: 'rolled_back', message: /marked txproxy_outcome='rollback'/ });
});

t.test('each request of a persistent connection ends by its own mark (sqlcommenter trace ids)', async (t) => {
  const tag = (trace: string) => `traceparent='00-${trace.repeat(32)}-${'1'.repeat(16)}-01'`;
  const client = await proxy.client({ application_name: 'view-rollback' });
  // Request a: succeeds and says so.
  await client.query(`INSERT INTO addresses (street) VALUES ('a street') /*${tag('a')}*/`);
  await client.query(`SELECT 1 /*${tag('a')},txproxy_outcome='commit'*/`);
  // Request b: fails after its insert; the next request's first statement ends it.
  await client.query(`INSERT INTO addresses (street) VALUES ('b street') /*${tag('b')}*/`);
  await client.query(`SELECT 1 /*${tag('c')}*/`);
  t.same(await streets(), ['a street'], 'a committed at its end; b rolled back at its end');
  await client.end();
  await sessionsClosed();
  t.same(await streets(), ['a street']);
  t.same(
    policyRecords().map((r) => r.decision),
    ['wrapped', 'committed', 'wrapped', 'rolled_back', 'wrapped', 'rolled_back'],
  );
});

t.test('a COMMIT that fails at the end (a deferred constraint) is recorded as rolled back, in its transaction', async (t) => {
  await server.sql('CREATE TABLE IF NOT EXISTS codes (code text UNIQUE DEFERRABLE INITIALLY DEFERRED)');
  const client = await proxy.client({ application_name: 'view-commit' });
  await client.query("INSERT INTO codes VALUES ('x')");
  await client.query("INSERT INTO codes VALUES ('x')");
  await client.end();
  await sessionsClosed();
  t.same((await server.sql('SELECT count(*)::int AS n FROM codes')).rows, [{ n: 0 }]);
  const [tx] = proxy.trace.records.filter((r) => r.kind === 'transaction');
  t.match(tx, { outcome: 'failed' });
  t.match(policyRecords().at(-1), { decision: 'rolled_back', sqlstate: '23505', 'transaction.id': tx['transaction.id'], message: /after an error \(23505: duplicate key/ });
});
