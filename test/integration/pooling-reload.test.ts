/**
 * The built txproxy command, pooling, on SIGHUP (as PgBouncer's RELOAD):
 * - it re-reads its auth file: a user added logs in, a user removed is
 *   refused at the next login while its open session goes on, and a file
 *   that cannot be parsed keeps the users already loaded;
 * - it applies the pool sizes and timeouts of the configuration file, and
 *   names the keys that only a restart changes (pool.mode).
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { configHead, startCli } from '../helpers/txproxy-cli.js';

const server = await startPostgres();
const dir = mkdtempSync(path.join(tmpdir(), 'txproxy-auth-reload-'));
const authFile = path.join(dir, 'users.txt');
const configFile = path.join(dir, 'txproxy.yaml');
t.teardown(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const BOB = { user: 'reload_bob', password: 'bob-secret-1' };
await server.sql(`CREATE ROLE ${BOB.user} LOGIN PASSWORD '${BOB.password}'`);

const line = (user: string, secret: string) => `"${user}" "${secret}"\n`;
writeFileSync(authFile, line(server.user, server.password));
function writeConfig(pool: string): void {
  writeFileSync(
    configFile,
    `${configHead(server)}pool:
${pool}
auth:
  type: scram-sha-256
  file: ${JSON.stringify(authFile)}
`,
  );
}
/** The server's own user gets a pool of `size` (reload-bob's is the default, 5). */
const poolSection = (mode: string, size: number) => `  mode: ${mode}\n  default_pool_size: 5\n  query_wait_timeout: 0\n  users:\n    ${JSON.stringify(server.user)}: { pool_size: ${size} }`;
writeConfig(poolSection('session', 1));

const proxy = await startCli(['--config', configFile]);
t.teardown(async () => {
  proxy.kill('SIGTERM');
  await proxy.exited;
});
const { port } = proxy;
t.match(proxy.stderr(), /pooling: session mode/);

/** Sends SIGHUP and waits for its `n`th log line matching `done`. */
async function reload(done: string, n: number): Promise<void> {
  proxy.kill('SIGHUP');
  await eventually(() => proxy.stderr().split(done).length > n, 10_000, done);
}

async function loginAsBob(password = BOB.password): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: BOB.user, password, database: 'postgres' });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

const currentUser = async (client: pg.Client) => (await client.query<{ u: string }>('SELECT current_user AS u')).rows[0].u;

t.test('a user is added, kept through a broken file, then removed', async (t) => {
  await t.rejects(loginAsBob(), { code: '28P01', message: `password authentication failed for user "${BOB.user}"` }, 'not in the file at start');

  writeFileSync(authFile, line(server.user, server.password) + line(BOB.user, BOB.password));
  await reload('"msg":"auth file reloaded"', 1);
  t.match(proxy.stderr(), /"users":2,.*"msg":"auth file reloaded"/);
  const bob = await loginAsBob();
  t.teardown(() => bob.end());
  t.equal(await currentUser(bob), BOB.user, 'added: logs in');

  writeFileSync(authFile, line(server.user, server.password) + '"reload_bob "unclosed\n');
  await reload('auth file reload failed', 1);
  t.match(proxy.stderr(), /"msg":"auth file reload failed: keeping the users already loaded"/);
  const again = await loginAsBob();
  t.equal(await currentUser(again), BOB.user, 'a broken file keeps the users loaded');
  await again.end();

  writeFileSync(authFile, line(server.user, server.password));
  await reload('"msg":"auth file reloaded"', 2);
  await t.rejects(loginAsBob(), { code: '28P01' }, 'removed: refused at the next login');
  t.equal(await currentUser(bob), BOB.user, 'the session already logged in goes on');

  const owner = new pg.Client({ host: '127.0.0.1', port, user: server.user, password: server.password, database: 'postgres' });
  await owner.connect();
  t.equal(await currentUser(owner), server.user, 'the users still in the file log in');
  await owner.end();
  t.equal(proxy.child.exitCode, null, 'still running');
});

t.test('a changed secret applies to the next login', async (t) => {
  writeFileSync(authFile, line(server.user, server.password) + line(BOB.user, BOB.password));
  await reload('"msg":"auth file reloaded"', 3);
  const before = await loginAsBob();
  t.teardown(() => before.end());
  await server.sql(`ALTER ROLE ${BOB.user} PASSWORD 'bob-secret-2'`);
  writeFileSync(authFile, line(server.user, server.password) + line(BOB.user, 'bob-secret-2'));
  await reload('"msg":"auth file reloaded"', 4);
  await t.rejects(loginAsBob(BOB.password), { code: '28P01' }, 'the old password no longer logs in');
  // txproxy logs in to the server with the file's secret: the new one.
  const after = await loginAsBob('bob-secret-2');
  t.equal(await currentUser(after), BOB.user, 'the new one does');
  t.equal(await currentUser(before), BOB.user, 'the session logged in with the old one goes on');
  await after.end();
});

t.test('pool settings: a larger pool_size lets a waiting client in; a change of mode waits for a restart', async (t) => {
  const owner = () => new pg.Client({ host: '127.0.0.1', port, user: server.user, password: server.password, database: 'postgres' });
  const first = owner();
  await first.connect();
  t.teardown(() => first.end());
  const second = owner();
  t.teardown(() => second.end());
  let connected = false;
  const connecting = second.connect().then(() => (connected = true));
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.notOk(connected, 'the pool of 1 is held by the first session: the second waits');

  writeConfig(poolSection('session', 2));
  await reload('"msg":"pool settings reloaded"', 6);
  await connecting;
  t.equal(await currentUser(second), server.user, 'in, once the pool has room for it');

  writeConfig(poolSection('transaction', 3));
  await reload('pool settings not reloaded', 1);
  t.match(proxy.stderr(), /"keys":\["pool\.mode"\],.*"msg":"pool settings not reloaded: these keys change only with a restart"/);
  t.equal(await currentUser(first), server.user, 'sessions go on');
});
