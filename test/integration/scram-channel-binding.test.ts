/**
 * SCRAM-SHA-256 through txproxy when the upstream link is TLS.
 *
 * The server offers SCRAM-SHA-256-PLUS over TLS; channel binding binds the
 * client's TLS session, which ends at txproxy. So txproxy withholds -PLUS,
 * unless it presents the server's own certificate, in which case binding
 * holds end to end and is passed through. A client that supports binding
 * but is not offered it says so (gs2 flag `y`), which a TLS server must
 * reject as a downgrade; txproxy refuses that case itself with a clear error.
 */
import { execFile } from 'node:child_process';
import tls from 'node:tls';
import t from 'tap';
import pg from 'pg';
import { makeCertificates, serverTlsFlags } from '../helpers/certificates.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy, type TestProxy } from '../helpers/proxy.js';
import { RawConnection, startupMessage, startupRequest } from '../helpers/raw-connection.js';

const certs = makeCertificates();
const serverCert = certs.issue('server', ['localhost', '127.0.0.1']);
const proxyCert = certs.issue('txproxy', ['localhost', '127.0.0.1']);
const postgres = await startPostgres({
  postgresFlags: serverTlsFlags(serverCert),
  hba: ['local all all trust', 'host all postgres 127.0.0.1/32 scram-sha-256', 'hostssl all app 127.0.0.1/32 scram-sha-256', ''].join('\n'),
});
await postgres.sql("CREATE ROLE app LOGIN PASSWORD 'app-secret'");
const upstream = `postgres://127.0.0.1:${postgres.port}/postgres?sslmode=require`;
/** txproxy with its own certificate: binding cannot hold, -PLUS is withheld. */
const ownCert = await startProxy(postgres, {}, { upstream, tlsContext: tls.createSecureContext({ cert: proxyCert.cert, key: proxyCert.key }) });
/** txproxy presenting the server's certificate: binding holds end to end. */
const serversCert = await startProxy(postgres, {}, { upstream, tlsContext: tls.createSecureContext({ cert: serverCert.cert, key: serverCert.key }) });
t.teardown(async () => {
  await ownCert.stop();
  await serversCert.stop();
  await postgres.stop();
  certs.remove();
});

/** The mechanisms an AuthenticationSASL offers to `user` on `conn` after its StartupMessage. */
async function offeredMechanisms(conn: RawConnection): Promise<string[]> {
  conn.write(startupMessage({ user: 'app', database: 'postgres' }));
  const message = await conn.readMessage();
  if (message.type !== 'R' || message.body.readInt32BE(0) !== 10) throw new Error(`expected AuthenticationSASL, got ${message.type}`);
  conn.destroy();
  return message.body.toString('latin1', 4).split('\0').filter((m) => m !== '');
}

async function tlsRaw(port: number): Promise<RawConnection> {
  const plain = await RawConnection.connect(port);
  plain.write(startupRequest(80877103));
  if ((await plain.readByte()) !== 'S') throw new Error('TLS refused');
  plain.socket.removeAllListeners('data');
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const secure = tls.connect({ socket: plain.socket, rejectUnauthorized: false }, () => resolve(secure));
    secure.once('error', reject);
  });
  return new RawConnection(socket);
}

/** A node-postgres client whose SASLInitialResponse (mechanism and gs2 header) is recorded. */
function spiedClient(proxy: TestProxy, config: Partial<pg.ClientConfig>) {
  const client = new pg.Client(proxy.connection({ user: 'app', password: 'app-secret', ssl: { rejectUnauthorized: false }, ...config }));
  const sent: { mechanism: string; gs2: string }[] = [];
  const connection = (client as unknown as { connection: { sendSASLInitialResponseMessage(m: string, r: string): void } }).connection;
  const original = connection.sendSASLInitialResponseMessage.bind(connection);
  connection.sendSASLInitialResponseMessage = (mechanism, response) => {
    sent.push({ mechanism, gs2: response.slice(0, response.indexOf(',,')) });
    original(mechanism, response);
  };
  return { client, sent };
}

async function upstreamSsl(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return (await postgres.sql('SELECT ssl FROM pg_stat_ssl WHERE pid = $1', [rows[0].pid])).rows[0].ssl;
}

function psql(port: number, conninfo: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('psql', [`host=127.0.0.1 port=${port} user=app dbname=postgres ${conninfo}`, '-At', '-c', 'SELECT 1'], { env: { ...process.env, PGPASSWORD: 'app-secret' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

t.test('the server offers SCRAM-SHA-256-PLUS over TLS; txproxy with its own certificate withholds it', async (t) => {
  t.same(await offeredMechanisms(await tlsRaw(postgres.port)), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], 'straight to the server');
  t.same(await offeredMechanisms(await RawConnection.connect(ownCert.port)), ['SCRAM-SHA-256'], 'through txproxy, plain client link');
  t.same(await offeredMechanisms(await tlsRaw(ownCert.port)), ['SCRAM-SHA-256'], 'through txproxy, TLS client link');
  t.same(await offeredMechanisms(await tlsRaw(serversCert.port)), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], "through txproxy presenting the server's certificate");
});

t.test("channel binding end to end: node-postgres with enableChannelBinding through txproxy presenting the server's certificate", async (t) => {
  const { client, sent } = spiedClient(serversCert, { enableChannelBinding: true });
  await client.connect();
  t.teardown(() => client.end());
  t.same(sent, [{ mechanism: 'SCRAM-SHA-256-PLUS', gs2: 'p=tls-server-end-point' }], 'the client bound the channel, and the server accepted the binding');
  t.equal(await upstreamSsl(client), true);
});

t.test('node-postgres without channel binding authenticates with SCRAM-SHA-256 over TLS on both links', async (t) => {
  const { client, sent } = spiedClient(ownCert, {});
  await client.connect();
  t.teardown(() => client.end());
  t.same(sent, [{ mechanism: 'SCRAM-SHA-256', gs2: 'n' }]);
  t.equal(await upstreamSsl(client), true);
});

t.test('a client that wants channel binding where it cannot hold gets a clear FATAL, and no backend stays', async (t) => {
  const { client, sent } = spiedClient(ownCert, { enableChannelBinding: true });
  const err = await client.connect().then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  t.same(sent, [{ mechanism: 'SCRAM-SHA-256', gs2: 'y' }], 'the client supports binding but was not offered it');
  t.match(err, {
    severity: 'FATAL',
    code: '28000',
    message: 'SCRAM channel binding cannot pass through txproxy: its TLS session with the server is not the one the client sees',
    hint: /channel_binding=disable.*enableChannelBinding: false.*tls\.cert and tls\.key/,
  });
  await eventually(async () => (await postgres.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app'")).rows[0].n === 0, 5000, 'no backend for app');
  await eventually(() => ownCert.app.server.sessions.size === 0, 3000, 'session closed');
});

t.test('psql over TLS: channel_binding=prefer (the default) is refused clearly, disable works', async (t) => {
  const refused = await psql(ownCert.port, 'sslmode=require');
  t.not(refused.code, 0);
  t.match(refused.stderr, /SCRAM channel binding cannot pass through txproxy/);
  const works = await psql(ownCert.port, 'sslmode=require channel_binding=disable');
  t.equal(works.code, 0, works.stderr);
  t.equal(works.stdout.trim(), '1');
});

t.test('psql without TLS to txproxy authenticates (it does not claim channel binding)', async (t) => {
  const works = await psql(ownCert.port, 'sslmode=disable');
  t.equal(works.code, 0, works.stderr);
});

t.test("psql channel_binding=require through txproxy presenting the server's certificate", async (t) => {
  const works = await psql(serversCert.port, 'sslmode=require channel_binding=require');
  t.equal(works.code, 0, works.stderr);
  t.equal(works.stdout.trim(), '1');
});
