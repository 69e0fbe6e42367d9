/**
 * TLS between clients and txproxy (tls.cert / tls.key): SSLRequest upgraded,
 * direct TLS (PostgreSQL 17 `sslnegotiation=direct`) with ALPN "postgresql",
 * and plaintext smuggled behind an SSLRequest refused (CVE-2021-23214).
 * The upstream link here is plain, so the two links are shown to be separate.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import { makeCertificates } from '../helpers/certificates.js';
import { captureLog } from '../helpers/log-capture.js';
import { serialize } from '../helpers/messages.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { errorFieldsOf, RawConnection, startupMessage, startupRequest } from '../helpers/raw-connection.js';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

const certs = makeCertificates();
const proxyCert = certs.issue('txproxy', ['localhost', '127.0.0.1']);
const postgres = await startPostgres({
  hba: ['local all all trust', 'host all trusted 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
});
await postgres.sql('CREATE ROLE trusted LOGIN');
const { log, records } = captureLog();
const tlsContext = tls.createSecureContext({ cert: proxyCert.cert, key: proxyCert.key });
const proxy = await startProxy(postgres, {}, { tlsContext, log });
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
  certs.remove();
});

const caPem = readFileSync(certs.caFile);
const proxyFingerprint = new X509Certificate(proxyCert.cert).fingerprint256;

/** Is the proxied backend's own link TLS? (pg_stat_ssl, read over a direct connection.) */
async function upstreamSsl(pid: number): Promise<boolean | undefined> {
  const result = await postgres.sql('SELECT ssl FROM pg_stat_ssl WHERE pid = $1', [pid]);
  return result.rows[0]?.ssl;
}

/** Trusted-user startup and one query over `conn`; returns the query's value. */
async function runSession(conn: RawConnection): Promise<string> {
  conn.write(startupMessage({ user: 'trusted', database: 'postgres' }));
  const startup = await conn.readUntil('Z');
  if (!startup.some((m) => m.type === 'R' && m.body.readInt32BE(0) === 0)) throw new Error('no AuthenticationOk');
  conn.write(serialize.query("SELECT 'over tls' AS v"));
  const row = (await conn.readUntil('Z')).find((m) => m.type === 'D');
  if (row === undefined) throw new Error('no DataRow');
  conn.write(serialize.end());
  return row.body.toString('utf8', 6, 6 + row.body.readInt32BE(2));
}

function directTls(alpn: string[] | undefined): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: caPem, servername: 'localhost', ALPNProtocols: alpn });
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function run(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

t.test('node-postgres over TLS: the socket is TLS with txproxy\'s certificate, the upstream link stays plain', async (t) => {
  const client = new pg.Client(proxy.connection({ ssl: { rejectUnauthorized: false } }));
  await client.connect();
  t.teardown(() => client.end());
  const stream = (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
  t.ok(stream instanceof tls.TLSSocket, 'the client socket is a TLSSocket');
  const socket = stream as tls.TLSSocket;
  t.equal(socket.encrypted, true);
  t.match(socket.getProtocol(), /^TLSv1\.[23]$/);
  t.equal(new X509Certificate(socket.getPeerCertificate().raw).fingerprint256, proxyFingerprint, 'txproxy presented its configured certificate');
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid, 40 + 2 AS answer');
  t.equal(rows[0].answer, 42);
  t.equal(await upstreamSsl(rows[0].pid), false, 'pg_stat_ssl: txproxy → PostgreSQL is not TLS here');
});

t.test('node-postgres verifies txproxy\'s certificate against the CA and host name', async (t) => {
  const client = new pg.Client(proxy.connection({ host: 'localhost', ssl: { ca: caPem, rejectUnauthorized: true } }));
  await client.connect();
  t.teardown(() => client.end());
  t.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
});

t.test('postgres.js with ssl: require', async (t) => {
  const sql = postgresJs(proxy.url(), { ssl: { rejectUnauthorized: false }, max: 1 });
  t.teardown(() => sql.end());
  const [row] = await sql`SELECT 'postgres.js' AS who`;
  t.equal(row.who, 'postgres.js');
});

t.test('psql sslmode=verify-full: TLS to txproxy, certificate and host name checked', async (t) => {
  const result = await run(
    'psql',
    [`host=localhost port=${proxy.port} user=postgres dbname=postgres sslmode=verify-full sslrootcert=${certs.caFile}`, '-At', '-c', '\\conninfo', '-c', 'SELECT pg_backend_pid()'],
    { PGPASSWORD: postgres.password },
  );
  t.equal(result.code, 0, result.stderr);
  // \conninfo describes libpq's own connection, i.e. psql → txproxy.
  t.match(result.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
  const pid = Number(result.stdout.trim().split('\n').at(-1));
  t.ok(pid > 0);
});

t.test('psql sslmode=require through txproxy; the link behind it is separate', async (t) => {
  const result = await run('psql', [`host=127.0.0.1 port=${proxy.port} user=trusted dbname=postgres sslmode=require`, '-At', '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()']);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout.trim(), 'f', 'the server sees a plain connection from txproxy');
});

t.test('direct TLS with ALPN "postgresql", then a StartupMessage', async (t) => {
  const socket = await directTls(['postgresql']);
  t.equal(socket.alpnProtocol, 'postgresql');
  t.equal(new X509Certificate(socket.getPeerCertificate().raw).fingerprint256, proxyFingerprint);
  const conn = new RawConnection(socket);
  t.equal(await runSession(conn), 'over tls');
  await conn.closed;
});

t.test('direct TLS without ALPN gets FATAL 08P01 over TLS and a close', async (t) => {
  const socket = await directTls(undefined);
  const conn = new RawConnection(socket);
  const message = await conn.readMessage();
  t.match(errorFieldsOf(message), { severity: 'FATAL', code: '08P01', message: 'received direct SSL connection request without ALPN protocol negotiation extension' });
  await conn.closed;
});

t.test('direct TLS offering only another ALPN protocol is refused by the TLS handshake', async (t) => {
  await t.rejects(directTls(['http/1.1']), /no application protocol/);
});

t.test('plaintext pipelined behind SSLRequest is refused (CVE-2021-23214)', async (t) => {
  records.length = 0;
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(SSL_REQUEST), startupMessage({ user: 'trusted', database: 'postgres' }));
  const message = await conn.readMessage();
  t.equal(message.type, 'E', 'no S: the upgrade is not offered');
  t.match(errorFieldsOf(message), { severity: 'FATAL', code: '08P01', message: 'received unencrypted data after SSL request' });
  await conn.closed;
  t.match(
    records.find((r) => r.msg === 'client refused during startup'),
    { code: '08P01', reason: 'received unencrypted data after SSL request' },
  );
});

t.test("GSSENCRequest 'N', then SSLRequest 'S' and TLS", async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(GSSENC_REQUEST));
  t.equal(await conn.readByte(), 'N');
  conn.write(startupRequest(SSL_REQUEST));
  t.equal(await conn.readByte(), 'S');
  conn.socket.removeAllListeners('data');
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const secure = tls.connect({ socket: conn.socket, ca: caPem, servername: 'localhost' }, () => resolve(secure));
    secure.once('error', reject);
  });
  t.equal(await runSession(new RawConnection(socket)), 'over tls');
});

t.test('a client that answers S with plaintext instead of a TLS handshake is closed, not left hanging', async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupRequest(SSL_REQUEST));
  t.equal(await conn.readByte(), 'S');
  conn.write(startupMessage({ user: 'trusted', database: 'postgres' }));
  await t.resolves(Promise.race([conn.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), 5000))]));
  await eventually(() => records.some((r) => r.msg === 'client left during startup' && /TLS handshake failed/.test(String(r.reason))), 2000, 'log line');
});

t.test('every session ended', async (t) => {
  await eventually(() => proxy.app.server.sessions.size === 0, 3000, 'sessions to close');
  t.pass();
});
