/**
 * TLS between txproxy and PostgreSQL, per the upstream URL's sslmode and
 * sslrootcert, proven on the server side with pg_stat_ssl for the proxied
 * backend. One server has TLS on (certificate for "localhost" only) and a
 * pg_hba.conf that lets `app` in only over TLS and `plainonly` only without;
 * the other server has no TLS at all.
 */
import t from 'tap';
import pg from 'pg';
import { makeCertificates, serverTlsFlags } from '../helpers/certificates.js';
import { captureLog } from '../helpers/log-capture.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';

const certs = makeCertificates();
const otherCa = makeCertificates();
const serverCert = certs.issue('server', ['localhost']);
const tlsServer = await startPostgres({
  postgresFlags: serverTlsFlags(serverCert),
  hba: [
    'local all all trust',
    'host all postgres 127.0.0.1/32 scram-sha-256',
    'hostssl all app 127.0.0.1/32 scram-sha-256',
    'hostnossl all plainonly 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n'),
});
const plainServer = await startPostgres();
await tlsServer.sql("CREATE ROLE app LOGIN PASSWORD 'app-secret'");
await tlsServer.sql("CREATE ROLE plainonly LOGIN PASSWORD 'plain-secret'");
t.teardown(async () => {
  await tlsServer.stop();
  await plainServer.stop();
  certs.remove();
  otherCa.remove();
});

const USERS = { app: 'app-secret', plainonly: 'plain-secret', postgres: 'postgres' } as const;
type User = keyof typeof USERS;

/**
 * Starts txproxy with `upstreamUrl`, connects through it as `user`, and
 * reports what the server says about the proxied backend's own link.
 */
async function linkThrough(server: typeof tlsServer, upstreamUrl: string, user: User) {
  const { log, records } = captureLog('info');
  const proxy = await startProxy(server, {}, { upstream: upstreamUrl, log });
  try {
    const client = await proxy.client({ user, password: USERS[user] });
    try {
      const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
      const ssl = await server.sql('SELECT ssl, version FROM pg_stat_ssl WHERE pid = $1', [rows[0].pid]);
      return { ssl: ssl.rows[0].ssl as boolean, version: ssl.rows[0].version as string | null, records };
    } finally {
      await client.end();
    }
  } finally {
    await proxy.stop();
  }
}

/** Starts txproxy with `upstreamUrl` and returns the error a client gets when connecting through it. */
async function failureThrough(server: typeof tlsServer, upstreamUrl: string, user: User = 'postgres'): Promise<pg.DatabaseError> {
  const proxy = await startProxy(server, {}, { upstream: upstreamUrl });
  try {
    const client = new pg.Client(proxy.connection({ user, password: USERS[user] }));
    const err = await client.connect().then(
      () => client.end().then(() => null),
      (e: pg.DatabaseError) => e,
    );
    if (err === null) throw new Error(`connecting through ${upstreamUrl} unexpectedly worked`);
    return err;
  } finally {
    await proxy.stop();
  }
}

const at = (host: string, server: typeof tlsServer, query: string) => `postgres://${host}:${server.port}/postgres?${query}`;

t.test('sslmode=require: the proxied backend is on TLS', async (t) => {
  const link = await linkThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=require'), 'app');
  t.equal(link.ssl, true);
  t.match(link.version, /^TLSv1\.[23]$/);
});

t.test('sslmode=disable: plain, so a hostssl-only user is turned away by the server itself', async (t) => {
  const link = await linkThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=disable'), 'plainonly');
  t.equal(link.ssl, false);
  const err = await failureThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=disable'), 'app');
  t.match(err, { severity: 'FATAL', code: '28000', message: /no pg_hba\.conf entry for host "127\.0\.0\.1", user "app", database "postgres", no encryption/ });
});

t.test('sslmode=prefer: TLS when the server has it', async (t) => {
  t.equal((await linkThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=prefer'), 'app')).ssl, true);
});

t.test('sslmode=prefer: falls back to plain when the server rejects the TLS connection', async (t) => {
  const link = await linkThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=prefer'), 'plainonly');
  t.equal(link.ssl, false);
  t.match(link.records.find((r) => r.msg === 'upstream rejected the first encryption choice: retrying'), { sslmode: 'prefer' });
});

t.test('sslmode=prefer against a server without TLS: plain', async (t) => {
  t.equal((await linkThrough(plainServer, at('127.0.0.1', plainServer, 'sslmode=prefer'), 'postgres')).ssl, false);
});

t.test('sslmode=allow: plain first', async (t) => {
  const link = await linkThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=allow'), 'plainonly');
  t.equal(link.ssl, false);
  t.equal(link.records.filter((r) => r.msg === 'upstream rejected the first encryption choice: retrying').length, 0);
});

t.test('sslmode=allow: TLS when the server rejects the plain connection', async (t) => {
  const link = await linkThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=allow'), 'app');
  t.equal(link.ssl, true);
  t.match(link.records.find((r) => r.msg === 'upstream rejected the first encryption choice: retrying'), {
    sslmode: 'allow',
    reason: /^server rejected the StartupMessage: no pg_hba\.conf entry for host "127\.0\.0\.1", user "app", database "postgres", no encryption$/,
  });
});

t.test('sslmode=verify-ca: the chain is checked against sslrootcert, not the host name', async (t) => {
  t.equal((await linkThrough(tlsServer, at('127.0.0.1', tlsServer, `sslmode=verify-ca&sslrootcert=${certs.caFile}`), 'app')).ssl, true);
  const err = await failureThrough(tlsServer, at('127.0.0.1', tlsServer, `sslmode=verify-ca&sslrootcert=${otherCa.caFile}`));
  t.match(err, { severity: 'FATAL', code: '08001', message: /^txproxy could not connect to the upstream server at 127\.0\.0\.1:\d+: TLS handshake failed \(sslmode=verify-ca\): .*certificate/ });
});

t.test('sslmode=verify-full: works for the name on the certificate', async (t) => {
  t.equal((await linkThrough(tlsServer, at('localhost', tlsServer, `sslmode=verify-full&sslrootcert=${certs.caFile}`), 'app')).ssl, true);
});

t.test('sslmode=verify-full: a host name the certificate does not carry fails with 08001', async (t) => {
  const err = await failureThrough(tlsServer, at('127.0.0.1', tlsServer, `sslmode=verify-full&sslrootcert=${certs.caFile}`));
  t.match(err, {
    severity: 'FATAL',
    code: '08001',
    message: /^txproxy could not connect to the upstream server at 127\.0\.0\.1:\d+: TLS handshake failed \(sslmode=verify-full\): .*127\.0\.0\.1 is not in the cert's list/,
    hint: /sslmode and sslrootcert/,
  });
});

t.test('sslmode=require with an sslrootcert checks the chain, as libpq does', async (t) => {
  t.equal((await linkThrough(tlsServer, at('127.0.0.1', tlsServer, `sslmode=require&sslrootcert=${certs.caFile}`), 'app')).ssl, true);
  const err = await failureThrough(tlsServer, at('127.0.0.1', tlsServer, `sslmode=require&sslrootcert=${otherCa.caFile}`));
  t.match(err, { code: '08001', message: /TLS handshake failed \(sslmode=require\)/ });
});

t.test('an unreadable sslrootcert fails with 08001 naming the file', async (t) => {
  const err = await failureThrough(tlsServer, at('127.0.0.1', tlsServer, 'sslmode=verify-ca&sslrootcert=/nonexistent/root.crt'));
  t.match(err, { code: '08001', message: /cannot read sslrootcert \/nonexistent\/root\.crt/ });
});

t.test('sslmode=require against a server without TLS fails with 08001', async (t) => {
  for (const mode of ['require', 'verify-ca', 'verify-full']) {
    const err = await failureThrough(plainServer, at('127.0.0.1', plainServer, `sslmode=${mode}&sslrootcert=${certs.caFile}`));
    t.match(
      err,
      { severity: 'FATAL', code: '08001', message: new RegExp(`^txproxy could not connect to the upstream server at 127\\.0\\.0\\.1:\\d+: server does not support SSL, but sslmode=${mode} requires it$`) },
      mode,
    );
  }
});
