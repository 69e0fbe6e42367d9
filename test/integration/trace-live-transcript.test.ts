/**
 * The live transcript: txproxy's trace on stdout is rendered for people
 * when stdout is a terminal (driven here under a pseudo-terminal with
 * util-linux `script`), and stays NDJSON when stdout is a pipe;
 * `--trace-format` forces either.
 */
import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { plainText, scriptCommand, startCliOnTerminal } from '../helpers/terminal.js';
import { startCli } from '../helpers/txproxy-cli.js';

const postgres = await startPostgres();
t.teardown(() => postgres.stop());
const upstream = `${postgres.url}?sslmode=disable`;
const baseArgs = ['--upstream', upstream, '--listen', '127.0.0.1:0', '--http', 'off', '--config', '/dev/null'];

async function workload(port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: postgres.user, password: postgres.password, database: 'postgres' });
  await client.connect();
  await client.query('CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)');
  await client.query('BEGIN');
  await client.query("INSERT INTO notes (body) VALUES ('first')");
  await client.query("INSERT INTO notes (body) VALUES ('second')");
  await client.query('COMMIT');
  await client.end();
}

const onTerminal = scriptCommand() !== null;

t.test('on a terminal: transaction blocks appear as they happen, not NDJSON', { skip: onTerminal ? false : 'util-linux script is not installed' }, async (t) => {
  // Whatever the test runner's own environment says about colour.
  const cli = startCliOnTerminal(baseArgs, { NO_COLOR: '', FORCE_COLOR: '' });
  t.teardown(() => cli.stop());
  const port = await cli.port;
  await workload(port);
  // Shown while txproxy runs: the block is complete once its COMMIT record came.
  await eventually(() => /COMMIT/.test(plainText(cli.output())), 15_000, 'the transaction block on the terminal');
  const text = plainText(cli.output());
  t.match(text, /── tx \S+\.t\d+ · explicit · commit · [\d.]+ ms · 4 statements · 2 writes/, 'the block title');
  t.match(text, /BEGIN\s+BEGIN\n/);
  t.match(text, /INSERT 0 1\s+INSERT INTO notes \(body\) VALUES \('first'\)/);
  t.match(text, /COMMIT\s+COMMIT\n/);
  t.notMatch(text, /\{"kind":/, 'no NDJSON record');
  t.match(text, /trace: a transcript on this terminal/, 'it says so, and how to get NDJSON');
  // eslint-disable-next-line no-control-regex
  t.match(cli.output(), /\x1b\[/, 'in colour');
  cli.interrupt();
  t.equal(await cli.exited, 0, 'Ctrl-C stops it');
  t.match(plainText(cli.output()), /session \S+ ended/, 'the session end is shown');
});

t.test('on a terminal, --trace-format ndjson keeps NDJSON', { skip: onTerminal ? false : 'util-linux script is not installed' }, async (t) => {
  const cli = startCliOnTerminal([...baseArgs, '--trace-format', 'ndjson']);
  t.teardown(() => cli.stop());
  await workload(await cli.port);
  await eventually(() => /"kind":"transaction"/.test(cli.output()), 15_000, 'the transaction record');
  t.notMatch(plainText(cli.output()), /── tx/);
  cli.interrupt();
  t.equal(await cli.exited, 0);
});

t.test('piped: NDJSON, one record per line', async (t) => {
  const cli = await startCli(baseArgs);
  t.teardown(() => cli.kill('SIGKILL'));
  await workload(cli.port);
  await eventually(() => /"kind":"transaction"/.test(cli.stdout()), 15_000, 'the transaction record');
  cli.kill('SIGTERM');
  await cli.exited;
  const lines = cli.stdout().trim().split('\n');
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  t.ok(records.some((r) => r.kind === 'statement' && r['db.query.text'] === 'COMMIT'));
  t.doesNotThrow(() => records, 'every line is JSON');
});

t.test('piped, --trace-format transcript forces the transcript (plain, no colour)', async (t) => {
  const cli = await startCli([...baseArgs, '--trace-format', 'transcript']);
  t.teardown(() => cli.kill('SIGKILL'));
  await workload(cli.port);
  await eventually(() => /COMMIT\s+COMMIT/.test(cli.stdout()), 15_000, 'the transaction block');
  cli.kill('SIGTERM');
  await cli.exited;
  t.match(cli.stdout(), /── tx \S+ · explicit · commit/);
  t.notMatch(cli.stdout(), /\{"kind":/);
  // eslint-disable-next-line no-control-regex
  t.notMatch(cli.stdout(), /\x1b\[/, 'no colour on a pipe');
  t.notMatch(cli.stderr(), /trace: a transcript on this terminal/, 'no terminal hint when asked for explicitly');
});
