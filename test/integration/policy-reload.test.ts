/**
 * The built txproxy command: policies validated at start (exit 2 naming the
 * key) and reloaded on SIGHUP — a changed rule applies to new requests, a
 * broken file keeps the rules in force.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { configHead, MAIN, runCli, startCli, type RunningCli } from '../helpers/txproxy-cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `npm test` builds first; a run of this file alone builds when dist is missing or older than src. */
function ensureBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs)));
  let built = 0;
  try {
    built = statSync(MAIN).mtimeMs;
  } catch {
    // not built yet
  }
  if (built < newest(path.join(ROOT, 'src'))) execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: ROOT });
}
ensureBuilt();

const server = await startPostgres();
const dir = mkdtempSync(path.join(tmpdir(), 'txproxy-reload-'));
const configFile = path.join(dir, 'txproxy.yaml');
t.teardown(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** With TXPROXY_TEST_POOL_MODE=session the command pools too, knowing the server's password from an auth file. */
function poolingSection(): string {
  if (process.env.TXPROXY_TEST_POOL_MODE !== 'session') return '';
  const authFile = path.join(dir, 'users.txt');
  writeFileSync(authFile, `"${server.user}" "${server.password}"\n`);
  return `pool:\n  mode: session\nauth:\n  file: ${JSON.stringify(authFile)}\n`;
}

function writeConfig(policies: string): void {
  writeFileSync(
    configFile,
    `${poolingSection()}${configHead(server)}${policies}`,
  );
}

async function startTxproxy(): Promise<RunningCli> {
  const proxy = await startCli(['--config', configFile]);
  if (process.env.TXPROXY_TEST_POOL_MODE === 'session' && !proxy.stderr().includes('pooling: session mode')) throw new Error(`txproxy does not pool: ${proxy.stderr()}`);
  return proxy;
}

async function connect(port: number, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: server.user, password: server.password, database: 'postgres', application_name: applicationName });
  await client.connect();
  return client;
}

/** What the policy does to an INSERT inside BEGIN … COMMIT: null when it runs, else the SQLSTATE. */
async function insertInBlock(client: pg.Client): Promise<string | null> {
  try {
    await client.query('BEGIN');
    await client.query("INSERT INTO items (name) VALUES ('x')");
    await client.query('COMMIT');
    return null;
  } catch (err) {
    await client.query('ROLLBACK');
    return (err as pg.DatabaseError).code ?? 'unknown';
  }
}

const ATOMIC = `policies:
  rules:
    - name: app
      match: { application_name: app }
      mode: atomic
`;
const READ_ONLY = `policies:
  rules:
    - name: app
      match: { application_name: app }
      mode: read-only
`;

await server.sql('CREATE TABLE items (id serial PRIMARY KEY, name text)');

t.test('a broken policies section stops txproxy at start with exit code 2 and the key named', async (t) => {
  writeConfig(`policies:
  rules:
    - name: office
      match: { client_address: 10.0.0.0/40 }
      mode: read-only
`);
  const { code, stderr } = await runCli(['--config', configFile]);
  t.equal(code, 2);
  t.match(stderr, /invalid value for 'policies\.rules\.0\.match\.client_address' in \S+txproxy\.yaml: invalid address or CIDR '10\.0\.0\.0\/40'/);
});

t.test('SIGHUP: a changed rule applies to new requests; a broken file keeps the old rules', async (t) => {
  writeConfig(ATOMIC);
  const proxy = await startTxproxy();
  t.teardown(async () => {
    proxy.kill('SIGTERM');
    await proxy.exited;
  });

  const before = await connect(proxy.port, 'app');
  t.teardown(() => before.end());
  await t.rejects(before.query("INSERT INTO items (name) VALUES ('x')"), { code: '25P01' }, 'atomic at start');
  t.equal(await insertInBlock(before), null);

  writeConfig(READ_ONLY);
  proxy.kill('SIGHUP');
  await eventually(() => proxy.stderr().includes('"msg":"policies reloaded"'), 10_000, 'the reload');
  t.match(proxy.stderr(), /"rules":\["app"\]/);

  t.equal(await insertInBlock(before), null, 'the request under way keeps its rule');
  const after = await connect(proxy.port, 'app');
  t.teardown(() => after.end());
  t.equal(await insertInBlock(after), '25006', 'a new request gets the new rule');

  writeConfig(`policies:
  rules:
    - name: app
      match: { application_name: app }
      mode: read-only
      limits: { idle_in_transaction_timeout: never }
`);
  proxy.kill('SIGHUP');
  await eventually(() => proxy.stderr().includes('configuration reload failed'), 10_000, 'the failed reload');
  t.match(proxy.stderr(), /"msg":"configuration reload failed: keeping the current policies"/);
  t.match(proxy.stderr(), /policies\.rules\.0\.limits\.idle_in_transaction_timeout/, 'the log names the key');

  const third = await connect(proxy.port, 'app');
  t.teardown(() => third.end());
  t.equal(await insertInBlock(third), '25006', 'the rules in force stay');

  writeFileSync(configFile, 'policies: [unclosed');
  proxy.kill('SIGHUP');
  await eventually(() => proxy.stderr().split('configuration reload failed').length === 3, 10_000, 'the second failed reload');
  t.match(proxy.stderr(), /invalid YAML/);
  t.equal(proxy.child.exitCode, null, 'still running');
  const fourth = await connect(proxy.port, 'app');
  t.teardown(() => fourth.end());
  t.equal(await insertInBlock(fourth), '25006');
  t.equal((await server.sql('SELECT count(*)::int AS n FROM items')).rows[0].n, 2);
});
