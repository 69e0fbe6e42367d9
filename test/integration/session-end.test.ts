/**
 * How a session ends: Terminate ('X') from the client is a clean end —
 * txproxy passes it to the server and the trace's session record says
 * `clean: true`; a socket closed without it is an abrupt end (`clean: false`),
 * and txproxy still closes the server session properly. What the client sent
 * before it stopped sending still runs, as with PostgreSQL directly: its
 * answers reach a client that only half-closed, and the trace says what the
 * server did.
 */
import t from 'tap';
import { startFaultHop } from '../helpers/fault-hop.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { serialize } from '../helpers/messages.js';
import { RawClient, transcript } from '../helpers/raw-client.js';
import { socketOf } from '../helpers/wire.js';

const postgres = await startPostgres();
// The hop records what txproxy sends the server.
const hop = await startFaultHop(postgres);
const proxy = await startProxy(postgres, {}, { upstream: hop.url(postgres.user, postgres.password) });
t.teardown(async () => {
  await proxy.stop();
  await hop.close();
  await postgres.stop();
});

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]); // X, length 4

t.beforeEach(() => {
  proxy.trace.records.length = 0;
});

function sessionEnd() {
  return proxy.trace.records.find((r) => r.kind === 'session' && r.event === 'end');
}

/** What txproxy sent the server on the hop connection, as one buffer. */
function sentToServer(index: number): Buffer {
  return Buffer.concat(hop.connections[index].fromProxy);
}

t.test('Terminate: the server gets it, the session record says clean', async (t) => {
  const client = await proxy.client();
  await client.query('SELECT 1');
  const index = hop.connections.length - 1;
  await client.end();

  await eventually(() => sessionEnd() !== undefined, 2000, 'the session end record');
  t.match(sessionEnd(), { 'session.id': String, clean: true });
  await eventually(() => hop.connections[index].closed, 2000, 'the server connection to close');
  const sent = sentToServer(index);
  t.same(sent.subarray(-5), TERMINATE, 'Terminate is the last thing the server received');
  t.equal(sent.indexOf(TERMINATE), sent.length - 5, 'exactly once');
});

t.test('a socket closed without Terminate: an abrupt end, and txproxy still ends the server session', async (t) => {
  const client = await proxy.client();
  client.on('error', () => undefined);
  await client.query('SELECT 1');
  const index = hop.connections.length - 1;
  socketOf(client).destroy();

  await eventually(() => sessionEnd() !== undefined, 2000, 'the session end record');
  t.match(sessionEnd(), { clean: false });
  await eventually(() => hop.connections[index].closed, 2000, 'the server connection to close');
  t.same(sentToServer(index).subarray(-5), TERMINATE, 'txproxy said goodbye to the server on the client\'s behalf');
});

t.test('Terminate inside a transaction: clean for the session, the transaction ends as disconnect and is rolled back', async (t) => {
  await postgres.sql('CREATE TABLE IF NOT EXISTS marks (name text PRIMARY KEY)');
  const client = await proxy.client();
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('terminate-in-transaction')");
  await client.end();

  await eventually(() => sessionEnd() !== undefined, 2000, 'the session end record');
  t.match(sessionEnd(), { clean: true });
  t.match(proxy.trace.records.find((r) => r.kind === 'transaction' && r.implicit === false), { outcome: 'disconnect', writes: 1 });
  t.equal((await postgres.sql("SELECT 1 FROM marks WHERE name = 'terminate-in-transaction'")).rowCount, 0);
});

async function rowExists(name: string): Promise<boolean> {
  return (await postgres.sql('SELECT 1 FROM marks WHERE name = $1', [name])).rowCount === 1;
}

function transactionRecords() {
  return proxy.trace.records.filter((r) => r.kind === 'transaction');
}

t.test('a query and Terminate, then a close without reading: the server commits, and the trace says so', async (t) => {
  await postgres.sql('CREATE TABLE IF NOT EXISTS marks (name text PRIMARY KEY)');
  for (const [name, port] of [
    ['directly', postgres.port],
    ['through txproxy', proxy.port],
  ] as const) {
    proxy.trace.records.length = 0;
    const raw = await RawClient.connect({ port, user: postgres.user, password: postgres.password });
    const mark = `terminate-unread-${name}`;
    const query = serialize.query(`INSERT INTO marks SELECT '${mark}' FROM pg_sleep(0.3)`);
    await new Promise((resolve) => raw.socket.write(Buffer.concat([query, TERMINATE]), resolve));
    raw.socket.destroy();
    await eventually(() => rowExists(mark), 5000, `${name}: the row`);
    t.pass(`${name}: the insert committed`);
  }
  await eventually(() => sessionEnd() !== undefined, 5000, 'the session end record');
  t.match(transactionRecords(), [{ implicit: true, outcome: 'commit', writes: 1, statements: 1 }]);
  t.match(sessionEnd(), { clean: true });
});

t.test('a client that half-closes gets the answers to what it sent, as directly', async (t) => {
  await postgres.sql('CREATE TABLE IF NOT EXISTS marks (name text PRIMARY KEY)');
  for (const withTerminate of [false, true]) {
    const seen: Record<string, string[]> = {};
    for (const [name, port] of [
      ['directly', postgres.port],
      ['through txproxy', proxy.port],
    ] as const) {
      proxy.trace.records.length = 0;
      const raw = await RawClient.connect({ port, user: postgres.user, password: postgres.password });
      const mark = `half-closed-${name}-${withTerminate}`;
      const query = serialize.query(`SELECT 1 AS one; INSERT INTO marks SELECT '${mark}' FROM pg_sleep(0.3)`);
      // shutdown(SHUT_WR): nothing more is sent; reading goes on.
      raw.socket.end(withTerminate ? Buffer.concat([query, TERMINATE]) : query);
      const closed = new Promise((resolve) => raw.socket.once('close', resolve));
      seen[name] = transcript(await raw.readyForQuery());
      await closed;
      t.ok(await rowExists(mark), `${name}${withTerminate ? ', with Terminate' : ''}: committed`);
    }
    t.same(seen['through txproxy'], ['T', 'D', 'C:SELECT 1', 'C:INSERT 0 1', 'Z:I'], `with Terminate: ${withTerminate}: all answers`);
    t.same(seen['through txproxy'], seen.directly, 'as directly');
    await eventually(() => sessionEnd() !== undefined, 5000, 'the session end record');
    t.match(transactionRecords(), [{ implicit: true, outcome: 'commit', writes: 1, statements: 2 }]);
    t.match(sessionEnd(), { clean: withTerminate });
  }
});

t.test('an error before ReadyForQuery, then the client leaves: the trace says failed, as the server rolled back for the error', async (t) => {
  const raw = await RawClient.connect({ port: proxy.port, user: postgres.user, password: postgres.password });
  proxy.trace.records.length = 0;
  // Flush, no Sync: the server sends the error at once, and no ReadyForQuery.
  raw.send(serialize.parse({ text: 'SELECT 1/0' }), serialize.bind({}), serialize.execute({}), serialize.flush());
  // 1/0 is folded when planned: Bind fails.
  t.same(transcript(await raw.until((m) => m.type === 'E')), ['1', 'E:22012']);
  raw.socket.destroy();
  await eventually(() => sessionEnd() !== undefined, 5000, 'the session end record');
  t.match(transactionRecords(), [{ implicit: true, outcome: 'failed', first_error: { code: '22012' } }]);
  t.match(sessionEnd(), { clean: false });
});
