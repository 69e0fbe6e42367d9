/**
 * Session and transaction ids stay unique when several txproxy processes
 * append to one trace file: two instances at once, and one restarted. Each
 * counts sessions from 1; the boot prefix keeps them apart, so the
 * transcript shows every transaction once, none as a "late record" of
 * another's.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import pg from 'pg';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { runCli, startCli, type RunningCli } from '../helpers/txproxy-cli.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'txproxy-trace-ids-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

async function startProxy(postgres: TestPostgres, file: string): Promise<RunningCli> {
  return startCli(['--listen', '127.0.0.1:0', '--http', 'off', '--upstream', `${postgres.url}?sslmode=disable`, '--trace', file, '--trace-sql', 'full']);
}

/** One session: an explicit transaction and an autocommit statement, tagged with `label`. */
async function work(postgres: TestPostgres, cli: RunningCli, label: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`SELECT '${label} in a block'`);
  await client.query('COMMIT');
  await client.query(`SELECT '${label} autocommit'`);
  await client.end();
}

async function stop(t: Test, cli: RunningCli): Promise<void> {
  cli.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);
}

t.test('two instances and a restart append to one trace file: ids never collide, the transcript shows each transaction once', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  const file = path.join(scratch, 'shared.ndjson');

  const [a, b] = await Promise.all([startProxy(postgres, file), startProxy(postgres, file)]);
  t.teardown(() => {
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  });
  await Promise.all([work(postgres, a, 'a'), work(postgres, b, 'b')]);
  await Promise.all([stop(t, a), stop(t, b)]);
  const restarted = await startProxy(postgres, file);
  t.teardown(() => restarted.kill('SIGKILL'));
  await work(postgres, restarted, 'c');
  await stop(t, restarted);

  const records = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const starts = records.filter((r) => r.kind === 'session' && r.event === 'start').map((r) => r['session.id'] as string);
  t.equal(starts.length, 3, 'three sessions');
  t.equal(new Set(starts).size, 3, `three distinct session ids: ${starts.join(', ')}`);
  for (const id of starts) t.match(id, /^[a-z0-9]{6}-\d+$/, 'a boot prefix and a counter');
  const transactions = records.filter((r) => r.kind === 'transaction').map((r) => r['transaction.id'] as string);
  t.equal(transactions.length, 6, 'two transactions per session');
  t.equal(new Set(transactions).size, 6, 'six distinct transaction ids');
  // Each session's statements carry its own ids.
  for (const label of ['a', 'b', 'c']) {
    const mine = records.filter((r) => typeof r['db.query.text'] === 'string' && (r['db.query.text'] as string).startsWith(`SELECT '${label} `));
    t.equal(new Set(mine.map((r) => r['session.id'])).size, 1, `session ${label}: one session id`);
  }

  const rendered = await runCli(['trace', file], { NO_COLOR: '1' });
  t.equal(rendered.code, 0);
  t.equal(rendered.stderr, '', 'no malformed lines');
  t.notMatch(rendered.stdout, /late record/, 'no transaction taken for another');
  const blocks = rendered.stdout.split('\n').filter((line) => line.startsWith('── tx '));
  t.equal(blocks.length, 6, 'one block per transaction');
  t.ok(blocks.every((line) => / · commit · /.test(line)), 'each committed');
  for (const label of ['a', 'b', 'c']) {
    t.match(rendered.stdout, `SELECT '${label} in a block'`);
    t.match(rendered.stdout, `SELECT '${label} autocommit'`);
  }
});
