/**
 * How a session ends: Terminate ('X') from the client is a clean end —
 * txproxy passes it to the server and the trace's session record says
 * `clean: true`; a socket closed without it is an abrupt end (`clean: false`),
 * and txproxy still closes the server session properly.
 */
import t from 'tap';
import { startFaultHop } from '../helpers/fault-hop.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
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
