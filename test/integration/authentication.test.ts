/**
 * Authentication is relayed untouched: txproxy never knows a password, and
 * trust, cleartext password, md5 and scram-sha-256 all work with real
 * passwords on a real server; a wrong password gets the server's own
 * FATAL 28P01, field for field what a direct connection gets.
 */
import { execFile } from 'node:child_process';
import t from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres({
  hba: [
    'local all all trust',
    'host all postgres 127.0.0.1/32 scram-sha-256',
    'host all trust_user 127.0.0.1/32 trust',
    'host all cleartext_user 127.0.0.1/32 password',
    'host all md5_user 127.0.0.1/32 md5',
    'host all scram_user 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n'),
});
const setup = await postgres.direct();
await setup.query('CREATE ROLE trust_user LOGIN');
await setup.query("CREATE ROLE cleartext_user LOGIN PASSWORD 'clear-secret'");
await setup.query("CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret'");
// The server stores an MD5 hash only when asked to (md5 is deprecated in PostgreSQL 18).
await setup.query("SET password_encryption = 'md5'");
await setup.query("CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret'");
await setup.end();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

/** Which authentication request the client answered, per node-postgres' Connection events. */
const AUTH_EVENTS = ['authenticationCleartextPassword', 'authenticationMD5Password', 'authenticationSASL', 'authenticationOk'];

function watchedClient(config: pg.ClientConfig) {
  const client = new pg.Client(config);
  const seen: string[] = [];
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  for (const event of AUTH_EVENTS) connection.on(event, () => seen.push(event));
  return { client, seen };
}

const CASES = [
  { user: 'trust_user', password: undefined, auth: ['authenticationOk'] },
  { user: 'cleartext_user', password: 'clear-secret', auth: ['authenticationCleartextPassword', 'authenticationOk'] },
  { user: 'md5_user', password: 'md5-secret', auth: ['authenticationMD5Password', 'authenticationOk'] },
  { user: 'scram_user', password: 'scram-secret', auth: ['authenticationSASL', 'authenticationOk'] },
] as const;

t.test('the stored passwords are what each method needs', async (t) => {
  const { rows } = await postgres.sql("SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('md5_user', 'scram_user') ORDER BY rolname");
  t.match(rows[0], { rolname: 'md5_user', rolpassword: /^md5[0-9a-f]{32}$/ });
  t.match(rows[1], { rolname: 'scram_user', rolpassword: /^SCRAM-SHA-256\$4096:/ });
});

for (const { user, password, auth } of CASES) {
  t.test(`node-postgres: ${user} authenticates through txproxy`, async (t) => {
    const { client, seen } = watchedClient(proxy.connection({ user, password }));
    await client.connect();
    t.teardown(() => client.end());
    t.same(seen, auth, 'the server asked for exactly this method');
    const { rows } = await client.query('SELECT current_user AS who');
    t.equal(rows[0].who, user);
  });
}

for (const { user } of CASES.filter((c) => c.password !== undefined)) {
  t.test(`node-postgres: a wrong password for ${user} gets the server's own FATAL 28P01`, async (t) => {
    const direct = await new pg.Client({ host: postgres.host, port: postgres.port, user, password: 'wrong', database: 'postgres' }).connect().catch((e: pg.DatabaseError) => e);
    const proxied = await new pg.Client(proxy.connection({ user, password: 'wrong' })).connect().catch((e: pg.DatabaseError) => e);
    t.match(proxied, { severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${user}"` });
    const fields = (e: unknown) => {
      const { severity, code, message, detail, hint, routine } = e as pg.DatabaseError;
      return { severity, code, message, detail, hint, routine };
    };
    t.same(fields(proxied), fields(direct), 'the same error as a direct connection gets');
  });
}

t.test('postgres.js: md5 and scram-sha-256 through txproxy', async (t) => {
  for (const [user, password] of [
    ['md5_user', 'md5-secret'],
    ['scram_user', 'scram-secret'],
  ]) {
    const sql = postgresJs(proxy.url(user, password), { max: 1 });
    const [row] = await sql`SELECT current_user AS who`;
    t.equal(row.who, user);
    await sql.end();
  }
  const wrong = postgresJs(proxy.url('scram_user', 'nope'), { max: 1 });
  await t.rejects(wrong`SELECT 1`, { code: '28P01' });
  await wrong.end();
});

function psql(user: string, password: string | undefined): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env, PGPASSWORD: password };
  if (password === undefined) delete env.PGPASSWORD;
  return new Promise((resolve) => {
    execFile('psql', [`host=127.0.0.1 port=${proxy.port} user=${user} dbname=postgres sslmode=disable`, '-w', '-At', '-c', 'SELECT current_user'], { env }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

t.test('psql (libpq): every method through txproxy, and a wrong password', async (t) => {
  for (const { user, password } of CASES) {
    const result = await psql(user, password);
    t.equal(result.code, 0, `${user}: ${result.stderr}`);
    t.equal(result.stdout.trim(), user);
  }
  const wrong = await psql('scram_user', 'wrong');
  t.not(wrong.code, 0);
  t.match(wrong.stderr, /FATAL:\s+password authentication failed for user "scram_user"/);
});

t.test('failed logins leave no session behind', async (t) => {
  await eventually(() => proxy.app.server.sessions.size === 0, 3000, 'sessions to close');
  t.pass();
});
