/**
 * The upstream server is unreachable, silent, or goes away in the middle of
 * a session: the client gets the FATAL error a PostgreSQL client expects
 * (08001 at connect, 08006 mid-session, or the server's own FATAL), its
 * connection is closed, an open transaction is recorded as `disconnect`
 * (`failed` when the server's FATAL ended it),
 * and txproxy goes on serving everyone else.
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import pg from 'pg';
import { getJson } from '../helpers/admin.js';
import { startFaultHop } from '../helpers/fault-hop.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy, type TestProxy } from '../helpers/proxy.js';
import { captureFromServer, parseMessages } from '../helpers/wire.js';

const postgres = await startPostgres();
const hop = await startFaultHop(postgres);
const proxy = await startProxy(postgres, {}, { upstream: hop.url(postgres.user, postgres.password) });
t.teardown(async () => {
  await proxy.stop();
  await hop.close();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE marks (name text PRIMARY KEY)');

/** A client through txproxy whose asynchronous errors are collected, not thrown. */
async function connectedClient(p: TestProxy = proxy): Promise<{ client: pg.Client; errors: Error[]; ended: Promise<void> }> {
  const client = await p.client();
  const errors: Error[] = [];
  client.on('error', (err) => errors.push(err));
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  return { client, errors, ended };
}

async function rowExists(name: string): Promise<boolean> {
  const result = await postgres.sql('SELECT 1 FROM marks WHERE name = $1', [name]);
  return result.rowCount === 1;
}

/** The hop connection txproxy opened for the most recent session. */
function lastHopConnection() {
  const connection = hop.connections.at(-1);
  if (connection === undefined) throw new Error('no connection through the hop');
  return connection;
}

function transactionRecords(p: TestProxy = proxy) {
  return p.trace.records.filter((r) => r.kind === 'transaction');
}

/** The explicit (BEGIN … ) transactions traced. */
function explicitTransactions(p: TestProxy = proxy) {
  return transactionRecords(p).filter((r) => r.implicit === false);
}

t.test('an upstream refusing connections: FATAL 08001 naming host:port, the client is closed, others are served', async (t) => {
  const survivor = await connectedClient();
  t.teardown(() => survivor.client.end().catch(() => undefined));
  const connectionsBefore = proxy.app.server.clientConnections;

  await hop.refuse();
  const refused = new pg.Client(proxy.connection());
  const err = (await refused.connect().catch((e) => e)) as pg.DatabaseError;
  t.equal(err.code, '08001');
  t.equal(err.severity, 'FATAL');
  t.equal(err.message, `txproxy could not connect to the upstream server at 127.0.0.1:${hop.port}: connection refused`);
  t.match(err.hint, /Check that PostgreSQL is running there/);
  // txproxy closed its side too: no half-dead client socket is left behind.
  await eventually(() => proxy.app.server.clientConnections === connectionsBefore, 2000, 'the refused client socket to close');

  // The session that was already open goes on working.
  const still = await survivor.client.query('SELECT 41 + 1 AS n');
  t.equal(still.rows[0].n, 42);

  // And once the server is back, new clients get in.
  await hop.accept();
  const later = await proxy.client();
  t.equal((await later.query('SELECT 1 AS one')).rows[0].one, 1);
  await later.end();
  t.same(survivor.errors, []);
});

t.test('an upstream that accepts but never answers: FATAL 08001 within connect_timeout', async (t) => {
  const silentSockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    silentSockets.add(socket);
    socket.resume();
    socket.on('close', () => silentSockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as net.AddressInfo).port;
  t.teardown(() => {
    for (const socket of silentSockets) socket.destroy();
    silent.close();
  });

  for (const sslmode of ['disable', 'prefer']) {
    const silentProxy = await startProxy(postgres, { connect_timeout: 600 }, { upstream: `postgres://postgres@127.0.0.1:${silentPort}/postgres?sslmode=${sslmode}` });
    const startedAt = Date.now();
    const err = (await new pg.Client(silentProxy.connection()).connect().catch((e) => e)) as pg.DatabaseError;
    const elapsed = Date.now() - startedAt;
    t.equal(err.code, '08001', `sslmode=${sslmode}: 08001`);
    t.equal(err.severity, 'FATAL');
    t.match(err.message, `txproxy could not connect to the upstream server at 127.0.0.1:${silentPort}: `);
    t.match(err.message, /600 ms/, `sslmode=${sslmode}: the message says how long txproxy waited`);
    t.ok(elapsed >= 550, `sslmode=${sslmode}: waited for connect_timeout (${elapsed} ms)`);
    t.ok(elapsed < 600 + 2500, `sslmode=${sslmode}: answered soon after connect_timeout (${elapsed} ms)`);
    // txproxy gave up on the silent server too.
    await eventually(() => silentSockets.size === 0, 2000, 'txproxy to close its connection to the silent server');
    await eventually(() => silentProxy.app.server.clientConnections === 0, 2000, 'the client socket to close');
    await silentProxy.stop();
  }
});

/**
 * A fake server that plays a login up to a point and then stalls: it
 * answers SSLRequest with 'N', the StartupMessage with `afterStartup`, a
 * password message with `afterPassword`, and then says nothing more.
 */
async function stallingServer(t: Test, afterStartup: Buffer, afterPassword: Buffer = Buffer.alloc(0)) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (!started) {
          if (pending.length < 8) return;
          const length = pending.readInt32BE(0);
          if (pending.length < length) return;
          const code = pending.readInt32BE(4);
          pending = pending.subarray(length);
          if (code === 80877103) socket.write('N');
          else {
            started = true;
            socket.write(afterStartup);
          }
          continue;
        }
        if (pending.length < 5) return;
        const length = pending.readInt32BE(1);
        if (pending.length < 1 + length) return;
        const type = String.fromCharCode(pending[0]);
        pending = pending.subarray(1 + length);
        if (type === 'p') socket.write(afterPassword);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, sockets };
}

/** A backend message: type letter, then the body after its int32 length. */
function backendMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const AUTH_CLEARTEXT = backendMessage('R', int32(3));
const AUTH_OK = backendMessage('R', int32(0));

t.test('an upstream that stalls during login: FATAL 08001 within connect_timeout, and /readyz says unavailable', async (t) => {
  for (const [name, afterStartup, afterPassword, expected] of [
    ['one byte, then nothing', AUTH_CLEARTEXT.subarray(0, 1), undefined, /sent no complete answer within 600 ms \(connect_timeout\)/],
    ['half an authentication request, then nothing', AUTH_CLEARTEXT.subarray(0, 6), undefined, /sent no complete answer within 600 ms/],
    ['a password request, then nothing after the password', AUTH_CLEARTEXT, Buffer.alloc(0), /stopped answering during login for 600 ms \(connect_timeout\)/],
    ['AuthenticationOk, then no ReadyForQuery', AUTH_CLEARTEXT, AUTH_OK, /stopped answering during login for 600 ms/],
  ] as const) {
    const stalling = await stallingServer(t, afterStartup, afterPassword);
    const upstream = `postgres://postgres@127.0.0.1:${stalling.port}/postgres?sslmode=prefer`;
    const stalled = await startProxy(postgres, { connect_timeout: 600, http: '127.0.0.1:0' }, { upstream });
    const startedAt = Date.now();
    const err = (await new pg.Client(stalled.connection({ password: 'secret' })).connect().catch((e) => e)) as pg.DatabaseError;
    const elapsed = Date.now() - startedAt;
    t.match(err, { severity: 'FATAL', code: '08001', message: `txproxy could not connect to the upstream server at 127.0.0.1:${stalling.port}: ` }, `${name}: 08001 naming the upstream`);
    t.match(err.message, expected, `${name}: says what the server did`);
    t.ok(elapsed < 600 + 2500, `${name}: answered soon after connect_timeout (${elapsed} ms)`);
    await eventually(() => stalling.sockets.size === 0, 2000, 'txproxy to close its connection to the stalled server');

    const ready = await getJson(stalled.app.adminPort!, '/readyz');
    if (afterPassword === undefined) {
      t.equal(ready.status, 503, `${name}: /readyz is 503`);
      t.match(ready.json.reason, `no complete answer from 127.0.0.1:${stalling.port}`);
    } else {
      t.equal(ready.status, 200, `${name}: a whole authentication request proves a live server to /readyz`);
    }
    await stalled.stop();
  }
});

t.test('/readyz needs a whole answer from a server that answers SSLRequest and then stalls', async (t) => {
  const stalling = await stallingServer(t, Buffer.alloc(0));
  const stalled = await startProxy(postgres, { connect_timeout: 600, http: '127.0.0.1:0' }, { upstream: `postgres://postgres@127.0.0.1:${stalling.port}/postgres?sslmode=prefer` });
  t.teardown(() => stalled.stop());
  const ready = await getJson(stalled.app.adminPort!, '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.json.reason, 'no complete answer');
});

t.test('the server terminates the backend: its FATAL 57P01 reaches the client, and nothing more', async (t) => {
  proxy.trace.records.length = 0;
  const { client, errors, ended } = await connectedClient();
  const wire = captureFromServer(client);
  const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('terminated')");

  await postgres.sql('SELECT pg_terminate_backend($1)', [pid]);
  await ended;

  t.same(
    wire.errors().map((e) => [e.severityV, e.code]),
    [['FATAL', '57P01']],
    'exactly one error: the server\'s own',
  );
  t.equal(wire.messages().trailing, 0, 'the stream ends on a message boundary');
  t.match(errors, [{ code: '57P01' }]);
  await eventually(() => explicitTransactions().length === 1, 2000, 'the transaction record');
  // The server's FATAL forced the rollback: what the server did, not a client that left.
  t.match(explicitTransactions()[0], { outcome: 'failed', writes: 1 });
  t.match(proxy.trace.records.find((r) => r.kind === 'session' && r.event === 'end'), { clean: false });
  t.notOk(await rowExists('terminated'), 'the insert was rolled back');
});

t.test('a FATAL error ends an autocommit statement: the trace says failed, not disconnect', async (t) => {
  proxy.trace.records.length = 0;
  const { client, ended } = await connectedClient();
  const err = await client.query('SELECT pg_terminate_backend(pg_backend_pid())').catch((e: pg.DatabaseError) => e);
  await ended;
  t.match(err, { code: '57P01', severity: 'FATAL' });
  await eventually(() => transactionRecords().length === 1, 2000, 'the transaction record');
  t.match(transactionRecords()[0], { implicit: true, outcome: 'failed', first_error: { code: '57P01' } });
});

t.test('the TCP link to the server breaks inside a transaction: FATAL 08006, client closed, outcome disconnect', async (t) => {
  proxy.trace.records.length = 0;
  const { client, errors, ended } = await connectedClient();
  const wire = captureFromServer(client);
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('cut-idle')");
  const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;

  hop.cutAll();
  await ended;

  const received = wire.errors();
  t.equal(received.length, 1, 'one error');
  t.match(received[0], {
    severityV: 'FATAL',
    code: '08006',
    message: `txproxy lost its connection to the upstream server at 127.0.0.1:${hop.port}`,
    hint: 'Reconnect and retry the transaction.',
  });
  t.match(errors, [{ code: '08006' }]);
  await eventually(() => explicitTransactions().length === 1, 2000, 'the transaction record');
  t.match(explicitTransactions()[0], { outcome: 'disconnect', writes: 1 });
  // The server saw its connection reset and rolled back.
  await eventually(async () => (await postgres.sql('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0, 5000, 'the backend to exit');
  t.notOk(await rowExists('cut-idle'));
});

t.test('the link breaks while a large result streams', async (t) => {
  // `SELECT repeat('x', 100) AS r`: RowDescription is 27 bytes, each DataRow 111.
  const rowDescription = 27;
  const dataRow = 111;
  const query = "SELECT repeat('x', 100) AS r FROM generate_series(1, 300000)";

  t.test('in the middle of a message: the client sees the connection close, never a broken message', async (t) => {
    proxy.trace.records.length = 0;
    const { client, ended } = await connectedClient();
    const wire = captureFromServer(client);
    const cutAt = rowDescription + dataRow * 5000 + 50;
    const cut = hop.cutAfterServerBytes(lastHopConnection(), cutAt);
    const err = await client.query(query).catch((e: Error) => e);
    await cut;
    await ended;
    t.type(err, Error);
    t.match((err as Error).message, /Connection terminated unexpectedly/);
    // Exactly the server's bytes up to the cut: nothing was appended after half a DataRow.
    t.equal(wire.bytes().length, cutAt);
    const { messages, trailing } = wire.messages();
    t.equal(trailing, 50);
    t.same(new Set(messages.map((m) => m.type)), new Set(['T', 'D']));
    await eventually(() => transactionRecords().length === 1, 2000, 'the transaction record');
    t.match(transactionRecords()[0], { outcome: 'disconnect', implicit: true });
    const statement = proxy.trace.records.find((r) => r.kind === 'statement');
    t.match(statement, { 'pg.interrupted': true, 'db.operation.name': 'SELECT' });
  });

  t.test('on a message boundary: the client gets FATAL 08006 after the last whole row', async (t) => {
    const { client, ended } = await connectedClient();
    const wire = captureFromServer(client);
    const cutAt = rowDescription + dataRow * 5000;
    const cut = hop.cutAfterServerBytes(lastHopConnection(), cutAt);
    const err = await client.query(query).catch((e: pg.DatabaseError) => e);
    await cut;
    await ended;
    t.match(err, { code: '08006', severity: 'FATAL' });
    const { messages, trailing } = wire.messages();
    t.equal(trailing, 0);
    t.equal(messages.filter((m) => m.type === 'D').length, 5000);
    t.match(messages.at(-1), { type: 'E', error: { code: '08006' } });
    t.equal(parseMessages(wire.bytes().subarray(cutAt)).messages.length, 1, 'only the error follows the server\'s bytes');
  });
});

t.test('after all of this txproxy still serves new clients', async (t) => {
  const client = await proxy.client();
  t.equal((await client.query('SELECT 2 AS two')).rows[0].two, 2);
  await client.end();
});
