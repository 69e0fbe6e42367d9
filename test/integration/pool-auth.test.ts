/**
 * Logging in through txproxy when it pools (`pool.mode: session`), against
 * a real PostgreSQL whose pg_hba asks for scram-sha-256 (md5 for one role):
 * trust, md5 and scram-sha-256 from the auth file, SCRAM pass-through with
 * the server's own verifier (no plaintext password anywhere), auth.query as
 * an unprivileged auth.user, the same 28P01 for a wrong password and an
 * unknown user, psql, node-postgres, postgres.js and pgbench each logging in,
 * and the txproxy command with a real auth file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import { md5Hash } from '../../src/auth/md5.js';
import { parseUserlist } from '../../src/auth/userlist.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { psql } from '../helpers/cli.js';
import { pgbench, pgbenchProgram } from '../helpers/pgbench.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startCli } from '../helpers/txproxy-cli.js';

const postgres = await startPostgres({
  hba: ['host all md5_user 127.0.0.1/32 md5', 'host all all 127.0.0.1/32 scram-sha-256', 'host all all ::1/128 scram-sha-256', ''].join('\n'),
});
const scratch = mkdtempSync(path.join(os.tmpdir(), 'txproxy-pool-auth-'));
const proxies: TestProxy[] = [];
t.teardown(async () => {
  for (const proxy of proxies) await proxy.stop();
  await postgres.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const PASSWORDS = { plain_user: 'plain pw', md5_user: 'md5 pw', scram_user: 'scram "pw"', query_user: 'query pw', authenticator: 'auth pw' };
await postgres.sql(`
  CREATE ROLE plain_user LOGIN PASSWORD 'plain pw';
  CREATE ROLE scram_user LOGIN PASSWORD 'scram "pw"';
  CREATE ROLE query_user LOGIN PASSWORD 'query pw';
  CREATE ROLE authenticator LOGIN PASSWORD 'auth pw';
  SET password_encryption = 'md5';
  CREATE ROLE md5_user LOGIN PASSWORD 'md5 pw';
  RESET password_encryption;
  CREATE FUNCTION public.user_secret(name) RETURNS TABLE (usename name, passwd text)
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1';
  REVOKE ALL ON FUNCTION public.user_secret(name) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION public.user_secret(name) TO authenticator;
`);

/** The server's own SCRAM verifier of a role, as pg_authid holds it. */
async function verifierOf(role: string): Promise<string> {
  const { rows } = await postgres.sql('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
  return rows[0].rolpassword as string;
}

function userlistLine(user: string, secret: string): string {
  return `"${user}" "${secret.replaceAll('"', '""')}"`;
}

const scramVerifier = await verifierOf('scram_user');
const md5Stored = await verifierOf('md5_user');

const USERLIST_TEXT = [
  '; users txproxy logs in itself',
  userlistLine(postgres.user, postgres.password),
  userlistLine('plain_user', PASSWORDS.plain_user),
  userlistLine('md5_user', md5Stored),
  userlistLine('scram_user', scramVerifier),
  userlistLine('authenticator', PASSWORDS.authenticator),
  '',
].join('\n');

async function pooledProxy(auth: ConfigInput['auth']): Promise<TestProxy> {
  const proxy = await startProxy(postgres, { pool: { mode: 'session', default_pool_size: 2 }, auth }, { app: { userlist: parseUserlist(USERLIST_TEXT) } });
  proxies.push(proxy);
  return proxy;
}

const scram = await pooledProxy({ type: 'scram-sha-256' });
const md5 = await pooledProxy({ type: 'md5' });
const trust = await pooledProxy({ type: 'trust' });
const byQuery = await pooledProxy({ type: 'scram-sha-256', user: 'authenticator', query: 'SELECT usename, passwd FROM public.user_secret($1)' });

/** Who the server says the session is, and that it came through the pool. */
async function whoAmI(proxy: TestProxy, user: string, password: string): Promise<{ user: string; pid: number }> {
  const client = await proxy.client({ user, password });
  try {
    const { rows } = await client.query('SELECT current_user AS user, pg_backend_pid() AS pid');
    return rows[0];
  } finally {
    await client.end();
  }
}

function pooledPids(proxy: TestProxy, user: string): number[] {
  return proxy.app.pools!.manager.snapshot()
    .filter((pool) => pool.user === user)
    .flatMap((pool) => pool.links.map((link) => link.backend_pid));
}

async function loginError(proxy: TestProxy, user: string, password: string): Promise<(Error & { code?: string; severity?: string }) | null> {
  const client = new pg.Client(proxy.connection({ user, password }));
  return client.connect().then(
    async () => {
      await client.end();
      return null;
    },
    (err: Error & { code?: string }) => err,
  );
}

t.test('the auth file holds the server verifier of scram_user and the md5 hash of md5_user, no plaintext of theirs', async (t) => {
  t.match(scramVerifier, /^SCRAM-SHA-256\$/);
  t.equal(md5Stored, md5Hash('md5_user', PASSWORDS.md5_user));
  t.notOk(USERLIST_TEXT.includes(PASSWORDS.scram_user));
  t.notOk(USERLIST_TEXT.includes(PASSWORDS.md5_user));
});

t.test('scram-sha-256 with a plain password in the auth file: the client proves itself, txproxy logs in with the password', async (t) => {
  const me = await whoAmI(scram, 'plain_user', PASSWORDS.plain_user);
  t.equal(me.user, 'plain_user');
  t.ok(pooledPids(scram, 'plain_user').includes(me.pid), 'the session ran on a pooled server connection');
});

t.test('SCRAM pass-through: the server verifier in the auth file, pg_hba scram-sha-256, no plaintext anywhere', async (t) => {
  const first = await whoAmI(scram, 'scram_user', PASSWORDS.scram_user);
  t.equal(first.user, 'scram_user');
  t.ok(pooledPids(scram, 'scram_user').includes(first.pid), 'logged in to the server with the keys the client revealed');
  // A second client reuses the connection the first one's keys opened.
  const second = await whoAmI(scram, 'scram_user', PASSWORDS.scram_user);
  t.equal(second.pid, first.pid, 'the next client gets the same server connection');
  const { rows } = await postgres.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'scram_user'");
  t.equal(rows[0].n, 1, 'one backend for both');
});

t.test('md5: an md5 hash in the auth file, the server asking md5 of that role', async (t) => {
  const me = await whoAmI(md5, 'md5_user', PASSWORDS.md5_user);
  t.equal(me.user, 'md5_user');
  t.ok(pooledPids(md5, 'md5_user').includes(me.pid));
  // md5 with a plain password in the file: txproxy logs in to the scram-sha-256 server with the password.
  t.equal((await whoAmI(md5, 'plain_user', PASSWORDS.plain_user)).user, 'plain_user');
});

t.test('md5 configured, SCRAM verifier stored: the client is asked for SCRAM, as PostgreSQL does', async (t) => {
  t.equal((await whoAmI(md5, 'scram_user', PASSWORDS.scram_user)).user, 'scram_user');
});

t.test('trust: no password asked; txproxy logs in to the server with what the auth file holds', async (t) => {
  t.equal((await whoAmI(trust, 'plain_user', 'anything at all')).user, 'plain_user');
  const result = await psql({ port: trust.port, user: 'plain_user', password: '' }, ['-w', '-c', 'SELECT current_user']);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, 'plain_user\n');
});

t.test('auth.query as an unprivileged auth.user (SECURITY DEFINER function), then SCRAM pass-through', async (t) => {
  t.equal((await whoAmI(byQuery, 'query_user', PASSWORDS.query_user)).user, 'query_user');
  t.equal((await whoAmI(byQuery, 'query_user', PASSWORDS.query_user)).user, 'query_user', 'again, from the cache');
  t.equal((await whoAmI(byQuery, 'scram_user', PASSWORDS.scram_user)).user, 'scram_user', 'the auth file still comes first');
});

t.test('a wrong password and an unknown user get the same FATAL 28P01, with every method', async (t) => {
  const cases: [TestProxy, string, string][] = [
    [scram, 'plain_user', 'wrong'],
    [scram, 'scram_user', 'wrong'],
    [scram, 'nobody', 'wrong'],
    [md5, 'md5_user', 'wrong'],
    [md5, 'nobody', 'wrong'],
    [byQuery, 'query_user', 'wrong'],
    [byQuery, 'nobody', 'wrong'],
  ];
  for (const [proxy, user, password] of cases) {
    const err = await loginError(proxy, user, password);
    t.equal(err?.code, '28P01', `${user} via ${proxy === md5 ? 'md5' : 'scram-sha-256'}`);
    t.equal(err?.message, `password authentication failed for user "${user}"`);
  }
});

t.test('psql logs in with SCRAM pass-through and works', async (t) => {
  const result = await psql({ port: scram.port, user: 'scram_user', password: PASSWORDS.scram_user }, [
    '-c',
    'CREATE TEMP TABLE t (id int)',
    '-c',
    'INSERT INTO t VALUES (1), (2)',
    '-c',
    'SELECT current_user, sum(id) FROM t',
  ]);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, 'scram_user|3\n');
  const wrong = await psql({ port: scram.port, user: 'scram_user', password: 'wrong' }, ['-c', 'SELECT 1']);
  t.not(wrong.code, 0);
  t.match(wrong.stderr, /password authentication failed for user "scram_user"/);
});

t.test('postgres.js logs in with SCRAM pass-through and works', async (t) => {
  const sql = postgresJs({ host: '127.0.0.1', port: scram.port, user: 'scram_user', password: PASSWORDS.scram_user, database: 'postgres', max: 2, onnotice: () => undefined });
  t.teardown(() => sql.end());
  const [row] = await sql`SELECT current_user AS "user", ${41}::int + 1 AS answer`;
  t.same({ ...row }, { user: 'scram_user', answer: 42 });
  const rows = await sql.begin(async (tx) => {
    await tx`CREATE TEMP TABLE pj (id int)`;
    await tx`INSERT INTO pj VALUES (1), (2), (3)`;
    return tx`SELECT count(*)::int AS n FROM pj`;
  });
  t.equal(rows[0].n, 3);
});

t.test('node-postgres logs in with md5 and runs prepared statements', async (t) => {
  const client = await md5.client({ user: 'md5_user', password: PASSWORDS.md5_user });
  t.teardown(() => client.end());
  const { rows } = await client.query({ name: 'sum', text: 'SELECT $1::int + $2::int AS n', values: [40, 2] });
  t.equal(rows[0].n, 42);
  t.equal((await client.query({ name: 'sum', text: 'SELECT $1::int + $2::int AS n', values: [1, 2] })).rows[0].n, 3);
});

t.test('pgbench logs in, a new connection per transaction (-C), through a pool of 2', { skip: pgbenchProgram() === null ? 'pgbench is not installed' : false }, async (t) => {
  const script = path.join(scratch, 'select.sql');
  writeFileSync(script, 'SELECT current_user;\n');
  const backends = async () => (await postgres.sql("SELECT pid FROM pg_stat_activity WHERE usename = 'scram_user'")).rows.map((r) => r.pid as number);
  const before = new Set(await backends());
  const report = await pgbench({ port: scram.port, user: 'scram_user', password: PASSWORDS.scram_user }, ['-n', '-C', '-c', '4', '-j', '4', '-t', '25', '-f', script]);
  t.equal(report.processed, 100);
  t.equal(report.failed, 0);
  const pooled = pooledPids(scram, 'scram_user');
  t.ok(pooled.length <= 2, `the pool holds ${pooled.length} backends`);
  const opened = (await backends()).filter((pid) => !before.has(pid));
  t.ok(opened.every((pid) => pooled.includes(pid)), 'every backend opened for 100 connections is one of the pool');
});

t.test('the txproxy command with a real auth file: SCRAM pass-through and md5, pooled', async (t) => {
  const authFile = path.join(scratch, 'users.txt');
  writeFileSync(authFile, USERLIST_TEXT);
  const cli = await startCli(['--upstream', `${postgres.url}?sslmode=disable`, '--listen', '127.0.0.1:0', '--http', 'off'], {
    TXPROXY_POOL_MODE: 'session',
    TXPROXY_AUTH_FILE: authFile,
    TXPROXY_AUTH_TYPE: 'md5',
    TXPROXY_POOL_DEFAULT_POOL_SIZE: '1',
  });
  t.teardown(async () => {
    cli.kill('SIGTERM');
    await cli.exited;
  });
  const pids = new Set<number>();
  for (let i = 0; i < 3; i++) {
    const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: 'scram_user', password: PASSWORDS.scram_user, database: 'postgres' });
    await client.connect();
    const { rows } = await client.query('SELECT current_user AS user, pg_backend_pid() AS pid');
    t.equal(rows[0].user, 'scram_user');
    pids.add(rows[0].pid);
    await client.end();
  }
  t.equal(pids.size, 1, 'three clients, one pooled backend');
  const wrong = new pg.Client({ host: '127.0.0.1', port: cli.port, user: 'scram_user', password: 'wrong', database: 'postgres' });
  const err = await wrong.connect().then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, '28P01');
  const result = await psql({ port: cli.port, user: 'md5_user', password: PASSWORDS.md5_user }, ['-c', 'SELECT current_user']);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, 'md5_user\n');
});
