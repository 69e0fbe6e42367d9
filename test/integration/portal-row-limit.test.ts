/**
 * A write run through a portal with a row limit, as asyncpg's fetchval and
 * node-postgres' Cursor run it: Execute with max_rows, answered by
 * PortalSuspended. PostgreSQL runs an INSERT … RETURNING to completion on
 * the portal's first Execute, so the transaction that commits it has
 * written, however many Executes fetch its rows.
 */
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { rawClient, serialize, TRUST_LOCAL } from '../helpers/exact-client.js';

const postgres = await startPostgres({ hba: TRUST_LOCAL });
await postgres.sql('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

const count = async (body: string) => (await postgres.sql('SELECT count(*)::int AS n FROM notes WHERE body = $1', [body])).rows[0].n as number;
const summary = (tx: { outcome: string | null; implicit: boolean; statements: number; writes: number }) => ({
  outcome: tx.outcome,
  implicit: tx.implicit,
  statements: tx.statements,
  writes: tx.writes,
});

t.test('INSERT … RETURNING with Execute(max_rows = 1) answered by PortalSuspended: traced with its write', async (t) => {
  const client = await rawClient(proxy.port, { user: 'postgres', database: 'postgres' });
  t.teardown(() => client.destroy());
  const before = proxy.transactions.length;
  const answer = await client.exchange([
    serialize.parse({ text: 'INSERT INTO notes (body) VALUES ($1) RETURNING id' }),
    serialize.bind({ values: ['fetchval'] }),
    serialize.execute({ rows: 1 }),
    serialize.sync(),
  ]);
  t.same(answer, ['1', '2', 'D', 'portalSuspended', 'Z(I)'], 'what PostgreSQL answers');
  t.equal(await count('fetchval'), 1, 'the row is committed');
  await proxy.waitForTransactions(before + 1);
  t.same(summary(proxy.transactions[before]), { outcome: 'commit', implicit: true, statements: 1, writes: 1 });
});

t.test('a write portal fetched one row at a time inside a block: one write, however many Executes', async (t) => {
  const client = await rawClient(proxy.port, { user: 'postgres', database: 'postgres' });
  t.teardown(() => client.destroy());
  const before = proxy.transactions.length;
  await client.exchange([serialize.query('BEGIN')]);
  const answer = await client.exchange([
    serialize.parse({ name: 'ins', text: "INSERT INTO notes (body) SELECT 'cursor' FROM generate_series(1, 3) RETURNING id" }),
    serialize.bind({ statement: 'ins', portal: 'c' }),
    serialize.execute({ portal: 'c', rows: 1 }),
    serialize.execute({ portal: 'c', rows: 1 }),
    serialize.execute({ portal: 'c', rows: 5 }),
    serialize.sync(),
  ]);
  // The last Execute's tag counts the rows it fetched, not the rows the INSERT wrote.
  t.same(answer, ['1', '2', 'D', 'portalSuspended', 'D', 'portalSuspended', 'D', 'CC(INSERT 0 1)', 'Z(T)']);
  await client.exchange([serialize.query('COMMIT')]);
  t.equal(await count('cursor'), 3);
  await eventually(() => proxy.transactions.length > before);
  t.same(summary(proxy.transactions[before]), { outcome: 'commit', implicit: false, statements: 5, writes: 1 });
});
