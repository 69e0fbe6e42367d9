/**
 * max_client_conn: a client over the limit gets FATAL 53300 after its
 * startup packet (also when it opened with SSLRequest) and is closed on
 * both ends; the sessions under the limit go on; when one closes, a new
 * client gets in. Connections that never send a startup packet are bounded
 * by max_pending_handshakes (the excess gets 53300 at once) and cut after
 * handshake_timeout.
 */
import net from 'node:net';
import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { serialize } from '../helpers/messages.js';
import { parseMessages } from '../helpers/wire.js';

const LIMIT = 2;
const postgres = await startPostgres();
const proxy = await startProxy(postgres, { max_client_conn: LIMIT });
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

t.beforeEach(() => eventually(() => proxy.app.server.clientConnections === 0, 5000, 'the previous test\'s clients to be gone'));

const TOO_MANY = {
  code: '53300',
  severity: 'FATAL',
  message: `sorry, too many clients already: txproxy allows ${LIMIT} client connections (max_client_conn)`,
  hint: 'Close idle connections, use a client-side pool, or raise max_client_conn.',
};

/** Opens with SSLRequest (answered 'N'), then sends a StartupMessage; returns everything received until txproxy closes. */
async function rawClientWithSslRequest(port: number): Promise<{ sslAnswer: string; afterStartup: Buffer; closedByServer: boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  let onChunk: () => void = () => undefined;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    onChunk();
  });
  const ended = new Promise<boolean>((resolve) => {
    socket.once('end', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  socket.write(serialize.requestSsl());
  await new Promise<void>((resolve) => (onChunk = resolve));
  const sslAnswer = Buffer.concat(chunks.splice(0)).toString('latin1');
  socket.write(serialize.startup({ user: postgres.user, database: 'postgres' }));
  const closedByServer = await Promise.race([ended, new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
  socket.destroy();
  return { sslAnswer, afterStartup: Buffer.concat(chunks), closedByServer };
}

t.test('a client over the limit gets FATAL 53300; the sessions under it are unaffected', async (t) => {
  const first = await proxy.client();
  const second = await proxy.client();
  t.teardown(() => Promise.all([first.end(), second.end()]).catch(() => undefined));
  await first.query('BEGIN');

  const third = new pg.Client(proxy.connection());
  const err = await third.connect().catch((e: pg.DatabaseError) => e);
  t.match(err, TOO_MANY);
  // The refused socket is closed on txproxy's side too.
  await eventually(() => proxy.app.server.clientConnections === LIMIT, 2000, 'the refused socket to close');

  t.equal((await first.query('SELECT 1 AS one')).rows[0].one, 1);
  await first.query('COMMIT');
  t.equal((await second.query('SELECT 2 AS two')).rows[0].two, 2);
  t.equal(proxy.app.server.sessions.size, LIMIT);
});

t.test('a client that opens with SSLRequest is refused the same way, after its startup packet', async (t) => {
  const first = await proxy.client();
  const second = await proxy.client();
  t.teardown(() => Promise.all([first.end(), second.end()]).catch(() => undefined));

  const raw = await rawClientWithSslRequest(proxy.port);
  t.equal(raw.sslAnswer, 'N', 'SSLRequest is answered before the limit is checked');
  const { messages, trailing } = parseMessages(raw.afterStartup);
  t.equal(trailing, 0);
  t.equal(messages.length, 1, 'one message: the error');
  t.match(messages[0], { type: 'E', error: { severityV: 'FATAL', code: '53300', message: TOO_MANY.message } });
  t.ok(raw.closedByServer, 'txproxy closed the connection');
  await eventually(() => proxy.app.server.clientConnections === LIMIT, 2000, 'the refused socket to close');
});

t.test('when a session closes, a new client gets in', async (t) => {
  const first = await proxy.client();
  const second = await proxy.client();
  t.teardown(() => second.end().catch(() => undefined));
  await t.rejects(new pg.Client(proxy.connection()).connect(), { code: '53300' });

  await first.end();
  await eventually(() => proxy.app.server.sessions.size === LIMIT - 1, 2000, 'the first session to close');
  const newcomer = await proxy.client();
  t.equal((await newcomer.query('SELECT 3 AS three')).rows[0].three, 3);
  await newcomer.end();
});

t.test('a refused client that never closes its side is cut off after a grace period', async (t) => {
  const first = await proxy.client();
  const second = await proxy.client();
  t.teardown(() => Promise.all([first.end(), second.end()]).catch(() => undefined));

  // allowHalfOpen: this client keeps its side open after txproxy's FIN.
  const socket = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  socket.write(serialize.startup({ user: postgres.user, database: 'postgres' }));
  const gotFin = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  socket.resume();
  await gotFin;
  t.equal(proxy.app.server.clientConnections, LIMIT + 1, 'the half-open connection is still there');
  await eventually(() => proxy.app.server.clientConnections === LIMIT, 15_000, 'txproxy to drop the half-open connection');
  socket.destroy();
});

t.test('connections that never send a startup packet', async (t) => {
  const PENDING = 5;
  const quiet = await startProxy(postgres, { max_pending_handshakes: PENDING, handshake_timeout: 3000 });
  t.teardown(() => quiet.stop());

  /** Opens `n` TCP connections that say nothing. */
  async function silentConnections(n: number): Promise<net.Socket[]> {
    return Promise.all(
      Array.from({ length: n }, () => {
        const socket = net.connect({ host: '127.0.0.1', port: quiet.port });
        socket.on('error', () => undefined);
        return new Promise<net.Socket>((resolve) => socket.once('connect', () => resolve(socket)));
      }),
    );
  }

  t.test('beyond max_pending_handshakes, a real client gets FATAL 53300 at once, not a dropped connection', async (t) => {
    const silent = await silentConnections(PENDING);
    t.teardown(() => silent.forEach((s) => s.destroy()));
    await eventually(() => quiet.app.server.handshakesInProgress === PENDING, 2000, 'the silent connections to be in their handshake');

    const startedAt = Date.now();
    const err = await new pg.Client(quiet.connection()).connect().catch((e: pg.DatabaseError) => e);
    t.match(err, {
      severity: 'FATAL',
      code: '53300',
      message: `sorry, too many clients already: txproxy allows ${PENDING} connections in the startup handshake at once (max_pending_handshakes)`,
    });
    t.ok(Date.now() - startedAt < 2000, 'refused at once, not after the handshake timeout');
    // Many more are refused the same way, and none of them is kept: the descriptors stay bounded.
    const flood = await silentConnections(50);
    t.teardown(() => flood.forEach((s) => s.destroy()));
    let closedByProxy = 0;
    for (const socket of flood) {
      socket.once('end', () => closedByProxy++);
      socket.resume();
    }
    await eventually(() => closedByProxy === flood.length, 5000, 'txproxy to close every refused connection');
    await eventually(() => quiet.app.server.clientConnections === PENDING, 2000, 'txproxy to hold only the pending connections');
    t.equal(quiet.app.server.handshakesInProgress, PENDING);

    // Once the silent ones go, real clients get in.
    silent.forEach((s) => s.destroy());
    await eventually(() => quiet.app.server.handshakesInProgress === 0, 2000, 'the handshakes to end');
    const client = await quiet.client();
    t.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    await client.end();
  });

  t.test('a silent connection is cut after handshake_timeout, freeing its place', async (t) => {
    const silent = await silentConnections(PENDING);
    t.teardown(() => silent.forEach((s) => s.destroy()));
    const answers = silent.map((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      return new Promise<Buffer>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks))));
    });
    const [first] = await Promise.all(answers);
    const { messages } = parseMessages(first);
    t.match(messages, [{ type: 'E', error: { severityV: 'FATAL', code: '08P01', message: 'timeout: the client sent no complete startup packet within 3000 ms (handshake_timeout)' } }]);
    t.equal(quiet.app.server.handshakesInProgress, 0);
    const client = await quiet.client();
    await client.end();
  });
});
