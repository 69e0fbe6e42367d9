/**
 * The trace file of a running txproxy (the built CLI): log rotation renames
 * it and signals SIGHUP or SIGUSR1, after which records go to a new file at
 * the path, none lost or torn; a disk that refuses every write (/dev/full)
 * costs one warning per interval and is counted in
 * txproxy_trace_records_dropped_total; a FIFO is never waited on.
 */
import { execFileSync } from 'node:child_process';
import { constants, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import pg from 'pg';
import { Scrape } from '../helpers/admin.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/deadlines.js';
import { runCli, startCli } from '../helpers/txproxy-cli.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'txproxy-trace-file-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

function records(file: string): Record<string, unknown>[] {
  const text = readFileSync(file, 'utf8');
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} ends inside a line`);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

t.test('SIGHUP and SIGUSR1 reopen a renamed trace file: new records at the path, none lost or torn', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  const file = path.join(scratch, 'rotated.ndjson');
  const cli = await startCli(['--listen', '127.0.0.1:0', '--http', 'off', '--upstream', `${postgres.url}?sslmode=disable`, '--trace', file]);
  t.teardown(() => cli.kill('SIGKILL'));
  const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  await client.connect();

  // Queries run all along, so that records are being written at each rotation.
  let n = 0;
  let running = true;
  const load = (async () => {
    while (running) await client.query(`SELECT ${++n} AS marker`);
  })();
  const waitForQueries = async (count: number) => {
    const target = n + count;
    await eventually(() => n >= target, 30_000, `${count} more queries`);
  };

  await waitForQueries(50);
  renameSync(file, `${file}.1`);
  cli.kill('SIGHUP');
  await eventually(() => existsSync(file), 10_000, 'a new file after SIGHUP');
  await waitForQueries(50);
  renameSync(file, `${file}.2`);
  cli.kill('SIGUSR1');
  await eventually(() => existsSync(file), 10_000, 'a new file after SIGUSR1');
  await waitForQueries(50);
  running = false;
  await load;
  await client.end();
  cli.kill('SIGTERM');
  t.equal((await cli.exited).code, 0, 'still the same process: SIGUSR1 did not start a debugger or stop it');

  const markers = (f: string) =>
    records(f)
      .filter((r) => r.kind === 'statement' && typeof r['db.query.text'] === 'string' && r['db.query.text'].endsWith('AS marker'))
      .map((r) => Number(/^SELECT (\d+)/.exec(r['db.query.text'] as string)![1]));
  const [first, second, third] = [markers(`${file}.1`), markers(`${file}.2`), markers(file)];
  t.ok(first.length >= 50 && second.length > 0 && third.length > 0, `records in each file (${first.length}, ${second.length}, ${third.length})`);
  t.same([...first, ...second, ...third], Array.from({ length: n }, (_, i) => i + 1), 'every query once, in order, across the files');
  t.ok(Math.max(...second) < Math.min(...third), 'the files follow each other');
  t.notMatch(cli.stderr(), /Debugger listening/, 'SIGUSR1 does not start the inspector');
});

t.test('/dev/full as the trace: records counted as dropped, one warning per interval, the proxy unharmed', { skip: !existsSync('/dev/full') && 'no /dev/full' }, async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  const cli = await startCli(['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--upstream', `${postgres.url}?sslmode=disable`, '--trace', '/dev/full']);
  t.teardown(() => cli.kill('SIGKILL'));
  const adminLine = /admin: http:\/\/[^:]+:(\d+)\//;
  await eventually(() => adminLine.test(cli.stderr()), 10_000, 'the admin address');
  const adminPort = Number(adminLine.exec(cli.stderr())![1]);
  const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  await client.connect();
  // Enough time for several flushes (one per 100 ms while traffic goes on).
  const until = Date.now() + 1500;
  let queries = 0;
  let answered = 0;
  while (Date.now() < until) {
    const result = await client.query('SELECT 1 AS one');
    if (result.rows[0].one === 1) answered++;
    queries++;
  }
  t.equal(answered, queries, 'every query answered');
  await client.end();
  let dropped = 0;
  await (async () => {
    const deadline = Date.now() + 10_000;
    // Every statement and transaction record (and the session's) is dropped.
    while (dropped < queries * 2 && Date.now() < deadline) {
      dropped = (await Scrape.of(adminPort)).value('txproxy_trace_records_dropped_total', { reason: 'write_error' }) ?? 0;
      if (dropped < queries * 2) await new Promise((r) => setTimeout(r, 100));
    }
  })();
  t.ok(dropped >= queries * 2, `${dropped} records counted as dropped for ${queries} queries`);
  t.equal((await Scrape.of(adminPort)).value('txproxy_trace_records_dropped_total', { reason: 'backlog' }), 0);
  const warnings = cli.stderr().split('\n').filter((line) => line.includes('trace records dropped'));
  t.equal(warnings.length, 1, 'one warning, not one per write');
  t.match(JSON.parse(warnings[0]), { level: 40, reason: 'write_error', error: /ENOSPC/ });
  cli.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);
});

t.test('a FIFO as the trace: never waited on, at start or at a reopen', async (t) => {
  const fifo = path.join(scratch, 'trace.fifo');
  execFileSync('mkfifo', [fifo]);
  // Opening a FIFO for writing would wait for a reader, and the event loop with it.
  const alone = await runCli(['--listen', '127.0.0.1:0', '--http', 'off', '--upstream', 'postgres://nobody@127.0.0.1:9/none?sslmode=disable', '--trace', fifo], {}, 10_000);
  t.equal(alone.code, 2, 'no reader at start: exit 2, not a wait');
  t.match(alone.stderr, `'${fifo}' is a FIFO that no process reads: start its reader first`);

  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  // A reader that opens without waiting for the writer.
  const reader = new net.Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  let read = '';
  reader.on('data', (chunk: Buffer) => (read += chunk.toString()));
  reader.on('error', () => undefined);
  const cli = await startCli(['--listen', '127.0.0.1:0', '--http', 'off', '--upstream', `${postgres.url}?sslmode=disable`, '--trace', fifo]);
  t.teardown(() => cli.kill('SIGKILL'));
  const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  await client.connect();
  t.teardown(() => client.end());
  await client.query('SELECT 4242 AS marker');
  await eventually(() => read.includes('SELECT 4242 AS marker'), 10_000, 'the statement record through the FIFO');
  t.ok(read.split('\n').filter((line) => line !== '').every((line) => typeof JSON.parse(line) === 'object'), 'whole NDJSON lines');

  reader.destroy();
  cli.kill('SIGHUP');
  await eventually(() => cli.stderr().includes('trace file reopen failed'), 10_000, 'the failed reopen');
  t.match(cli.stderr(), /is a FIFO that no process reads/);
  const started = Date.now();
  const { rows } = await client.query('SELECT 7 AS after_reopen');
  t.equal(rows[0].after_reopen, 7, 'queries are answered after the reopen');
  t.ok(Date.now() - started < 5000, 'at once');
  t.equal(cli.child.exitCode, null, 'still running');
});
