/**
 * What txproxy does with the first bytes of a connection, as PostgreSQL
 * does: a malformed or unsupported opening gets a FATAL ErrorResponse and a
 * close (never a hang), except a nonsense length word, which PostgreSQL
 * answers by closing without a word; GSSENCRequest and SSLRequest without
 * TLS get 'N' once each and the connection goes on.
 */
import t from 'tap';
import pg from 'pg';
import { captureLog } from '../helpers/log-capture.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { errorFieldsOf, RawConnection, startupMessage, startupRequest } from '../helpers/raw-connection.js';
import { serialize } from '../helpers/messages.js';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

const postgres = await startPostgres({
  hba: ['local all all trust', 'host all trusted 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
});
await postgres.sql('CREATE ROLE trusted LOGIN');
const { log, records } = captureLog();
// A short handshake_timeout makes the "client never finishes its startup packet" case quick.
const proxy = await startProxy(postgres, { handshake_timeout: 1500 }, { log });
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

/** Sends `bytes` as the opening of a connection; expects a FATAL ErrorResponse and then the close. */
async function expectRefusal(bytes: Buffer, timeoutMs = 5000) {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(bytes);
  const message = await conn.readMessage(timeoutMs);
  await Promise.race([conn.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('txproxy did not close the connection')), timeoutMs))]);
  return { message, fields: errorFieldsOf(message), conn };
}

const TRUSTED_STARTUP = startupMessage({ user: 'trusted', database: 'postgres' });

/** Runs a trusted session (its StartupMessage unless already sent) and a query on `conn`; returns the query's value. */
async function runSession(conn: RawConnection, startupSent = false): Promise<string> {
  if (!startupSent) conn.write(TRUSTED_STARTUP);
  const startup = await conn.readUntil('Z');
  if (!startup.some((m) => m.type === 'R' && m.body.readInt32BE(0) === 0)) throw new Error('no AuthenticationOk');
  conn.write(serialize.query("SELECT 'through txproxy' AS v"));
  const reply = await conn.readUntil('Z');
  const row = reply.find((m) => m.type === 'D');
  if (row === undefined) throw new Error(`no DataRow in ${reply.map((m) => m.type).join('')}`);
  const length = row.body.readInt32BE(2);
  conn.write(serialize.end());
  return row.body.toString('utf8', 6, 6 + length);
}

/** Sends `bytes` as the opening of a connection to `port`; returns what came back before the connection closed. */
async function answerBeforeClose(port: number, bytes: Buffer, timeoutMs = 5000): Promise<Buffer> {
  const conn = await RawConnection.connect(port);
  conn.write(bytes);
  await Promise.race([conn.closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`port ${port} did not close the connection`)), timeoutMs))]);
  return conn.pending;
}

t.test('an HTTP request as the first packet: closed without a reply, as PostgreSQL does', async (t) => {
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: db\r\n\r\n');
  t.same(await answerBeforeClose(postgres.port, request), Buffer.alloc(0), 'PostgreSQL says nothing');
  records.length = 0;
  t.same(await answerBeforeClose(proxy.port, request), Buffer.alloc(0), 'nor does txproxy');
  t.match(
    records.find((r) => r.msg === 'client closed without reply: invalid startup packet'),
    { level: 30, reason: `invalid length of startup packet: ${request.readInt32BE(0)}` },
    'txproxy logs why, as PostgreSQL does',
  );
});

t.test('invalid startup packet lengths: closed without a reply, as PostgreSQL does', async (t) => {
  for (const length of [0, 4, 7, 10005, 0x7fffffff, -1]) {
    const packet = Buffer.alloc(8);
    packet.writeInt32BE(length, 0);
    packet.writeInt32BE(196608, 4);
    t.same(await answerBeforeClose(postgres.port, packet), Buffer.alloc(0), `length ${length}: PostgreSQL says nothing`);
    t.same(await answerBeforeClose(proxy.port, packet), Buffer.alloc(0), `length ${length}: nor does txproxy`);
  }
});

t.test('a CancelRequest too short to name a backend: closed without a reply, as PostgreSQL does', async (t) => {
  for (const length of [8, 10]) {
    const packet = Buffer.alloc(length);
    packet.writeInt32BE(length, 0);
    packet.writeInt32BE(80877102, 4);
    t.same(await answerBeforeClose(postgres.port, packet), Buffer.alloc(0), `length ${length}: PostgreSQL says nothing`);
    t.same(await answerBeforeClose(proxy.port, packet), Buffer.alloc(0), `length ${length}: nor does txproxy`);
  }
});

t.test('node-postgres connect() then end() at once: no error, as directly', async (t) => {
  // end() before the connection is up sends Terminate as the first bytes: a startup length of 0x58000000.
  for (const [name, port] of [
    ['PostgreSQL', postgres.port],
    ['txproxy', proxy.port],
  ] as const) {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'trusted', database: 'postgres' });
    const errors: Error[] = [];
    client.on('error', (err) => errors.push(err));
    let connectError: Error | null = null;
    const connecting = client.connect().catch((err: Error) => (connectError = err));
    await client.end();
    // connect() never settles here (directly too): give it time to fail, if it were to.
    await Promise.race([connecting, new Promise((r) => setTimeout(r, 1000))]);
    t.equal(connectError, null, `${name}: connect() does not fail`);
    t.same(errors, [], `${name}: no error event`);
  }
});

t.test('an unknown protocol major version gets FATAL 0A000 and a close, as from PostgreSQL', async (t) => {
  for (const [version, name] of [
    [2 << 16, '2.0'],
    [4 << 16, '4.0'],
    [(1234 << 16) | 5681, '1234.5681'],
  ] as const) {
    const { fields } = await expectRefusal(startupMessage({ user: 'trusted' }, version));
    t.match(fields, { severity: 'FATAL', code: '0A000', message: `unsupported frontend protocol ${name}: txproxy supports 3.0 to 3.2` }, name);
  }
});

t.test('a StartupMessage without a user gets FATAL 28000', async (t) => {
  const { fields } = await expectRefusal(startupMessage({ database: 'postgres' }));
  t.match(fields, { severity: 'FATAL', code: '28000', message: 'no PostgreSQL user name specified in startup packet' });
});

t.test('a StartupMessage whose parameters are not NUL-terminated gets FATAL 08P01', async (t) => {
  const packet = startupMessage({ user: 'trusted' }).subarray(0, -2);
  packet.writeInt32BE(packet.length, 0);
  const { fields } = await expectRefusal(packet);
  t.match(fields, { severity: 'FATAL', code: '08P01', message: /^invalid startup packet: string is not NUL-terminated/ });
});

t.test('a client that never completes its startup packet is refused after handshake_timeout', async (t) => {
  const started = Date.now();
  const { fields } = await expectRefusal(startupMessage({ user: 'trusted' }).subarray(0, 10), 6000);
  t.match(fields, { severity: 'FATAL', code: '08P01', message: 'timeout: the client sent no complete startup packet within 1500 ms (handshake_timeout)' });
  t.ok(Date.now() - started >= 1400, 'not before the timeout');
});

t.test('direct TLS while TLS is off gets FATAL 08P01, a close and a log line', async (t) => {
  records.length = 0;
  // The start of a TLS 1.2+ ClientHello record: handshake (0x16), version 3.1, length.
  const clientHello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03]);
  const { fields } = await expectRefusal(clientHello);
  t.match(fields, { severity: 'FATAL', code: '08P01', message: 'received a direct TLS handshake, but TLS is not enabled on txproxy', hint: /tls\.cert/ });
  const logged = records.find((r) => r.msg === 'client refused during startup');
  t.match(logged, { level: 40, code: '08P01', reason: 'received a direct TLS handshake, but TLS is not enabled on txproxy', client: '127.0.0.1' });
});

t.test("SSLRequest while TLS is off gets 'N' and the session goes on in the clear", async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(SSL_REQUEST));
  t.equal(await conn.readByte(), 'N');
  t.equal(await runSession(conn), 'through txproxy');
});

t.test("GSSENCRequest gets 'N' and the following StartupMessage works", async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(GSSENC_REQUEST));
  t.equal(await conn.readByte(), 'N');
  t.equal(await runSession(conn), 'through txproxy');
});

t.test("GSSENCRequest, then SSLRequest, then StartupMessage (libpq's prefer/prefer order)", async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(GSSENC_REQUEST));
  t.equal(await conn.readByte(), 'N');
  conn.write(startupRequest(SSL_REQUEST));
  t.equal(await conn.readByte(), 'N');
  t.equal(await runSession(conn), 'through txproxy');
});

/** Opens with `requests` (each answered by one byte), then one more; returns the answers and the refusal of the last one. */
async function repeatedRequest(port: number, requests: number[], again: number) {
  const conn = await RawConnection.connect(port);
  const answers: string[] = [];
  for (const code of requests) {
    conn.write(startupRequest(code));
    answers.push(await conn.readByte());
  }
  conn.write(startupRequest(again));
  const fields = errorFieldsOf(await conn.readMessage());
  await conn.closed;
  return { answers, fields: { severity: fields.severity, code: fields.code, message: fields.message } };
}

t.test('a second SSLRequest or GSSENCRequest is refused as an unknown protocol, as by PostgreSQL', async (t) => {
  for (const [name, requests, again, version] of [
    ['SSLRequest, SSLRequest', [SSL_REQUEST], SSL_REQUEST, '1234.5679'],
    ['GSSENCRequest, GSSENCRequest', [GSSENC_REQUEST], GSSENC_REQUEST, '1234.5680'],
    ['GSSENCRequest, SSLRequest, GSSENCRequest', [GSSENC_REQUEST, SSL_REQUEST], GSSENC_REQUEST, '1234.5680'],
    ['SSLRequest, GSSENCRequest, SSLRequest', [SSL_REQUEST, GSSENC_REQUEST], SSL_REQUEST, '1234.5679'],
  ] as const) {
    const direct = await repeatedRequest(postgres.port, [...requests], again);
    const proxied = await repeatedRequest(proxy.port, [...requests], again);
    t.same(direct.answers, requests.map(() => 'N'), `${name}: PostgreSQL answers each request once`);
    t.same(proxied.answers, direct.answers, `${name}: so does txproxy`);
    t.match(direct.fields, { severity: 'FATAL', code: '0A000', message: `unsupported frontend protocol ${version}: server supports 3.0 to 3.2` }, `${name}: PostgreSQL`);
    t.same(proxied.fields, { severity: 'FATAL', code: '0A000', message: `unsupported frontend protocol ${version}: txproxy supports 3.0 to 3.2` }, `${name}: txproxy`);
  }
});

t.test("a StartupMessage pipelined behind a refused SSLRequest is accepted", async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(SSL_REQUEST), TRUSTED_STARTUP);
  t.equal(await conn.readByte(), 'N');
  t.equal(await runSession(conn, true), 'through txproxy');
});

t.test('psql sslmode=require against txproxy without TLS fails clearly', async (t) => {
  const { execFile } = await import('node:child_process');
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile('psql', [`host=127.0.0.1 port=${proxy.port} user=trusted dbname=postgres sslmode=require`, '-c', 'SELECT 1'], (err, _stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stderr }),
    );
  });
  t.not(result.code, 0);
  t.match(result.stderr, /server does not support SSL, but SSL was required/);
});

t.test('a query and Terminate pipelined behind the StartupMessage, then a close without reading: committed, as directly', async (t) => {
  await postgres.sql('CREATE TABLE IF NOT EXISTS pipelined (name text)');
  await postgres.sql('GRANT INSERT ON pipelined TO trusted');
  for (const [name, port] of [
    ['directly', postgres.port],
    ['through txproxy', proxy.port],
  ] as const) {
    const conn = await RawConnection.connect(port);
    const query = serialize.query(`INSERT INTO pipelined VALUES ('${name}')`);
    await new Promise((resolve) => conn.socket.write(Buffer.concat([TRUSTED_STARTUP, query, serialize.end()]), resolve));
    conn.destroy();
    await eventually(async () => (await postgres.sql('SELECT 1 FROM pipelined WHERE name = $1', [name])).rowCount === 1, 5000, `${name}: the row`);
    t.pass(`${name}: the insert committed`);
  }
  await eventually(() => proxy.transactions.length > 0, 2000, 'the transaction record');
  t.match(proxy.transactions.at(-1), { implicit: true, outcome: 'commit', writes: 1 });
});

t.test('no session was left behind by the refused connections', async (t) => {
  // The pipelined session above ends a moment after its row committed (its server has to see the Terminate): wait for that, not for ever.
  await eventually(() => proxy.app.server.sessions.size === 0, 5000, 'every session to end').catch(() => {});
  t.equal(proxy.app.server.sessions.size, 0);
});
