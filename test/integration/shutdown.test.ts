/**
 * SIGTERM / SIGINT on the real txproxy process: it stops accepting at once,
 * closes idle sessions with FATAL 57P01, lets an open transaction finish
 * within drain_timeout, closes (and so rolls back) what is still open when
 * it expires, flushes the trace file and exits 0. A second signal exits at
 * once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import pg from 'pg';
import { startCli, type RunningCli } from '../helpers/txproxy-cli.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';

const postgres = await startPostgres();
const scratch = mkdtempSync(path.join(os.tmpdir(), 'txproxy-shutdown-'));
t.teardown(async () => {
  await postgres.stop();
  rmSync(scratch, { recursive: true, force: true });
});
await postgres.sql('CREATE TABLE marks (name text PRIMARY KEY)');

let traceFiles = 0;

async function startTxproxy(drainTimeout: string): Promise<{ cli: RunningCli; traceFile: string }> {
  const traceFile = path.join(scratch, `trace-${++traceFiles}.ndjson`);
  const cli = await startCli(
    ['--upstream', `${postgres.url}?sslmode=disable`, '--listen', '127.0.0.1:0', '--http', 'off', '--trace', traceFile],
    { TXPROXY_DRAIN_TIMEOUT: drainTimeout },
  );
  t.teardown(() => {
    if (cli.child.exitCode === null && cli.child.signalCode === null) cli.kill('SIGKILL');
  });
  return { cli, traceFile };
}

interface WatchedClient {
  client: pg.Client;
  errors: (Error & { code?: string })[];
  /** When the connection ended (ms epoch). */
  ended: Promise<number>;
}

async function connect(cli: RunningCli): Promise<WatchedClient> {
  // The printed DATABASE_URL leaves the password out; the client brings its own.
  const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  const errors: Error[] = [];
  client.on('error', (err) => errors.push(err));
  const ended = new Promise<number>((resolve) => client.once('end', () => resolve(Date.now())));
  await client.connect();
  return { client, errors, ended };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function rowExists(name: string): Promise<boolean> {
  return (await postgres.sql('SELECT 1 FROM marks WHERE name = $1', [name])).rowCount === 1;
}

function readTrace(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: idle sessions close at once, an open transaction may commit, the rest is rolled back at drain_timeout`, async (t) => {
    const drainMs = 3000;
    const { cli, traceFile } = await startTxproxy(`${drainMs}ms`);
    const idle = await connect(cli);
    await idle.client.query('SELECT 1');
    const committer = await connect(cli);
    await committer.client.query('BEGIN');
    await committer.client.query('INSERT INTO marks VALUES ($1)', [`${signal}-committed-1`]);
    const stuck = await connect(cli);
    await stuck.client.query('BEGIN');
    await stuck.client.query('INSERT INTO marks VALUES ($1)', [`${signal}-stuck`]);

    const signalledAt = Date.now();
    cli.kill(signal);

    // Stops accepting at once.
    await eventually(() => refused(cli.port), 1000, 'new connections to be refused');
    // The idle session is told why and closed.
    const idleEndedAt = await idle.ended;
    t.ok(idleEndedAt - signalledAt < drainMs / 2, `idle session closed at once (${idleEndedAt - signalledAt} ms)`);
    t.match(idle.errors, [{ code: '57P01', severity: 'FATAL', message: 'terminating connection because txproxy is shutting down' }]);

    // The open transaction goes on and commits; then its session is closed.
    await committer.client.query('INSERT INTO marks VALUES ($1)', [`${signal}-committed-2`]);
    await committer.client.query('COMMIT');
    const committerEndedAt = await committer.ended;
    t.ok(committerEndedAt - signalledAt < drainMs, `closed right after its COMMIT (${committerEndedAt - signalledAt} ms)`);
    t.match(committer.errors, [{ code: '57P01' }]);

    // The transaction still open at drain_timeout is closed and rolled back.
    const stuckEndedAt = await stuck.ended;
    t.ok(stuckEndedAt - signalledAt >= drainMs - 100, `kept until drain_timeout (${stuckEndedAt - signalledAt} ms)`);
    t.match(stuck.errors, [{ code: '57P01' }]);

    const exit = await cli.exited;
    t.same([exit.code, exit.signal], [0, null], 'exit code 0');
    t.ok(await rowExists(`${signal}-committed-1`));
    t.ok(await rowExists(`${signal}-committed-2`));
    t.notOk(await rowExists(`${signal}-stuck`), 'the stuck transaction was rolled back');

    // Every record reached the trace file, up to the last ones written during shutdown.
    const trace = readTrace(traceFile);
    const explicit = trace.filter((r) => r.kind === 'transaction' && r.implicit === false);
    t.match(
      explicit.map((r) => [r.outcome, r.writes]).sort(),
      [
        ['commit', 2],
        ['disconnect', 1],
      ],
    );
    const ends = trace.filter((r) => r.kind === 'session' && r.event === 'end');
    t.equal(ends.length, 3, 'three session end records');
  });
}

t.test('a second signal exits at once', async (t) => {
  const { cli } = await startTxproxy('30s');
  const open = await connect(cli);
  await open.client.query('BEGIN');
  await open.client.query("INSERT INTO marks VALUES ('second-signal')");

  cli.kill('SIGTERM');
  await eventually(() => refused(cli.port), 1000, 'the first signal to take effect');
  const secondAt = Date.now();
  cli.kill('SIGTERM');
  const exit = await cli.exited;
  t.ok(exit.at - secondAt < 2000, `exited at once (${exit.at - secondAt} ms), not after drain_timeout`);
  t.not(exit.code, 0, 'a forced exit is not a clean one');
  await open.ended;
  // The server saw its connection close and rolled back.
  await eventually(async () => !(await rowExists('second-signal')) && (await postgres.sql("SELECT 1 FROM pg_stat_activity WHERE state = 'idle in transaction'")).rowCount === 0, 5000, 'the transaction to be rolled back');
  t.notOk(await rowExists('second-signal'));
});
