/**
 * `db.query.text` is the SQL as sent: the comments before, inside and after
 * a statement stay; only the sqlcommenter comment is taken out. And the
 * session's end record has a duration with microseconds, as all others do.
 */
import t from 'tap';
import postgres from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const server = await startPostgres();
const proxy = await startProxy(server);
t.teardown(async () => {
  await proxy.stop();
  await server.stop();
});

t.beforeEach(() => {
  proxy.trace.records.length = 0;
  proxy.transactions.length = 0;
});

const queryTexts = () => proxy.trace.records.filter((r) => r.kind === 'statement').map((r) => r['db.query.text']);

t.test('simple protocol: leading and trailing comments stay in db.query.text, the sqlcommenter tag goes', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query('/* Hibernate: load User */ SELECT 1 AS one');
  await client.query('SELECT 2 AS two -- dashboard widget');
  await client.query("-- report: daily\nSELECT 3 AS three /*route='/daily',traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/");
  await client.query('SELECT 4; /* between */ SELECT 5 -- last');
  await client.query('SELECT 6; -- after the semicolon');
  await proxy.waitForTransactions(5);
  t.same(queryTexts(), [
    '/* Hibernate: load User */ SELECT 1 AS one',
    'SELECT 2 AS two -- dashboard widget',
    '-- report: daily\nSELECT 3 AS three',
    'SELECT 4',
    '/* between */ SELECT 5 -- last',
    'SELECT 6; -- after the semicolon',
  ]);
  t.match(proxy.trace.records.find((r) => r['db.query.text'] === '-- report: daily\nSELECT 3 AS three'), { 'http.route': '/daily', 'db.operation.name': 'SELECT' });
});

t.test('extended protocol: the text of the Parse as sent', async (t) => {
  const sql = postgres({ host: '127.0.0.1', port: proxy.port, user: server.user, password: server.password, database: 'postgres', max: 1, fetch_types: false });
  t.teardown(() => sql.end());
  await sql.unsafe('/* orders#index */ SELECT $1::int AS n -- paged', [7]);
  await proxy.waitForTransactions(1);
  t.same(queryTexts(), ['/* orders#index */ SELECT $1::int AS n -- paged']);
});

t.test('session end: duration_ms has microseconds', async (t) => {
  // Whole milliseconds would be a multiple of 1; over a few sessions, a fraction is all but certain.
  const durations: number[] = [];
  for (let i = 0; i < 5; i++) {
    const client = await proxy.client();
    await client.query('SELECT 1');
    await client.end();
  }
  await eventually(() => proxy.trace.records.filter((r) => r.kind === 'session' && r.event === 'end').length === 5, 5000, 'five session ends');
  for (const r of proxy.trace.records.filter((r) => r.kind === 'session' && r.event === 'end')) durations.push(r.duration_ms as number);
  t.ok(
    durations.some((d) => !Number.isInteger(d)),
    `durations ${durations.join(', ')} are not all whole milliseconds`,
  );
  for (const d of durations) t.equal(Math.round(d * 1000) / 1000, d, `${d}: at most three decimals`);
});
