/**
 * One large value a client sends must not be copied whole into every trace
 * record after it: sqlcommenter tags, SQL text and error messages are cut
 * at trace.max_tag_length / trace.max_sql_length, with a visible marker.
 */
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { truncatedMark } from '../../src/trace/trace-text.js';

const server = await startPostgres();
const defaults = await startProxy(server);
const small = await startProxy(server, { trace: { max_sql_length: 200, max_tag_length: 100 } });
t.teardown(async () => {
  await defaults.stop();
  await small.stop();
  await server.stop();
});

/** Counts the bytes of every trace line the proxy writes from now on. */
function traceBytes(proxy: TestProxy): { bytes: number; stop: () => void } {
  const counter = {
    bytes: 0,
    stop: () => {},
  };
  counter.stop = proxy.app.traceBus.attach({
    writeLine: (line) => {
      counter.bytes += Buffer.byteLength(line) + 1;
    },
    flush: async () => {},
  });
  return counter;
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

t.test('a 1 MB route tag followed by 50 × SELECT 1 writes a trace of kilobytes, not of 100 MB', async (t) => {
  const route = '/a/' + 'r'.repeat(1024 * 1024);
  const counter = traceBytes(defaults);
  t.teardown(counter.stop);
  const client = await defaults.client();
  await client.query(`SELECT 1 /*route='${route}',traceparent='${TRACEPARENT}'*/`);
  for (let i = 0; i < 50; i++) await client.query('SELECT 1');
  await client.end();
  await defaults.waitForTransactions(51);
  t.ok(counter.bytes < 256 * 1024, `trace of ${counter.bytes} bytes`);
  const statements = defaults.trace.records.filter((r) => r.kind === 'statement');
  t.equal(statements.length, 51);
  const cut = route.slice(0, 512) + truncatedMark(route.length);
  for (const record of [statements[0], statements[50]]) {
    t.equal(record['http.route'], cut, 'the route, cut at max_tag_length with its marker');
    t.same(record.sqlcommenter, { route: cut, traceparent: TRACEPARENT });
    t.equal(record.trace_id, '0af7651916cd43dd8448eb211c80319c');
  }
});

t.test('SQL text and error messages are cut at max_sql_length', async (t) => {
  const value = 'v'.repeat(100_000);
  const client = await small.client();
  t.teardown(() => client.end());
  small.trace.records.length = 0;
  await client.query(`SELECT '${value}' AS big`);
  // Unterminated: the server quotes the whole rest of the text in its message.
  await t.rejects(client.query(`SELECT '${value}`), { code: '42601' });
  await small.waitForTransactions(2);
  const [ok, failed] = small.trace.records.filter((r) => r.kind === 'statement');
  const sql = `SELECT '${value}' AS big`;
  t.equal(ok['db.query.text'], sql.slice(0, 200) + truncatedMark(sql.length));
  t.match(failed['error.message'], /^unterminated quoted string at or near "'v+…\[truncated from \d+ characters\]$/);
  t.ok((failed['error.message'] as string).length < 300);
  const transaction = small.trace.records.filter((r) => r.kind === 'transaction').at(-1) as { first_error: { message: string } };
  t.equal(transaction.first_error.message, failed['error.message'], 'the transaction record holds the same cut message');
});
