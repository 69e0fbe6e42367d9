/**
 * `txproxy` with no upstream configured starts an embedded PostgreSQL in a
 * temporary directory and proxies to it; on SIGTERM or SIGINT it stops that
 * server and removes the directory — also when the server is already gone
 * (Ctrl-C in a terminal reaches it too) and when the signal comes while the
 * server is still starting.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import pg from 'pg';
import { environment, MAIN, startCli } from '../helpers/txproxy-cli.js';
import { eventually } from '../helpers/proxy.js';

/** A fresh TMPDIR for one txproxy, readable by the `postgres` user the server runs as. */
function scratchTmpdir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-embedded-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** PostgreSQL processes whose data directory lies under `dir`. */
function postgresProcessesUnder(dir: string): string[] {
  return execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes(dir) && line.includes('postgres'));
}

/** The postmaster: the one PostgreSQL process started with `-D <data directory>`. */
function postmasterPid(dir: string): number {
  const line = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.includes(` -D ${dir}`));
  if (line === undefined) throw new Error(`no postmaster running under ${dir}`);
  return Number(line.trim().split(/\s+/)[0]);
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

const ARGS = ['--listen', '127.0.0.1:0', '--http', 'off', '--trace', 'off'];

t.test('starts an embedded PostgreSQL, serves clients through DATABASE_URL, and removes it on SIGTERM', async (t) => {
  const tmpdir = scratchTmpdir();
  const cli = await startCli(ARGS, { TMPDIR: tmpdir }, 60_000);
  t.match(cli.listeningLine, /proxying to 127\.0\.0\.1:\d+ \(embedded PostgreSQL\)/);
  const embeddedPort = Number(/proxying to 127\.0\.0\.1:(\d+)/.exec(cli.listeningLine)![1]);
  t.equal(readdirSync(tmpdir).filter((name) => name.startsWith('txproxy-pg-')).length, 1, 'its data directory is under TMPDIR');

  // The printed URL works as it is: it carries the embedded server's credentials.
  const client = new pg.Client({ connectionString: cli.databaseUrl });
  await client.connect();
  const result = await client.query('SELECT current_setting($1) AS port, 6 * 7 AS answer', ['port']);
  t.same(result.rows[0], { port: String(embeddedPort), answer: 42 });
  await client.end();

  cli.kill('SIGTERM');
  const exit = await cli.exited;
  t.same([exit.code, exit.signal], [0, null], 'exit code 0');
  t.ok(await refused(embeddedPort), 'the embedded server is stopped');
  t.same(readdirSync(tmpdir), [], 'the temporary data directory is removed');
  t.same(postgresProcessesUnder(tmpdir), []);
});

t.test('Ctrl-C in a terminal stops PostgreSQL too: txproxy still exits cleanly when its server is already gone', async (t) => {
  const tmpdir = scratchTmpdir();
  const cli = await startCli(ARGS, { TMPDIR: tmpdir }, 60_000);
  const embeddedPort = Number(/proxying to 127\.0\.0\.1:(\d+)/.exec(cli.listeningLine)![1]);
  // A terminal's Ctrl-C signals the whole process group; the order in which
  // the processes act on it is up to the scheduler. Here PostgreSQL is first.
  process.kill(postmasterPid(tmpdir), 'SIGINT');
  await eventually(() => refused(embeddedPort), 10_000, 'PostgreSQL to stop');
  cli.kill('SIGINT');
  const exit = await Promise.race([cli.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
  if (exit === null) cli.kill('SIGKILL');
  t.not(exit, null, 'txproxy exited');
  t.same([exit?.code, exit?.signal], [0, null], 'exit code 0');
  t.same(readdirSync(tmpdir), [], 'the temporary data directory is removed');
});

t.test('a SIGTERM while the embedded server is still starting stops it and removes its directory', async (t) => {
  const tmpdir = scratchTmpdir();
  const child = spawn(process.execPath, [MAIN, ...ARGS], { env: environment({ TMPDIR: tmpdir }), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  await eventually(() => stderr.includes('starting embedded PostgreSQL'), 30_000, 'the embedded start to begin');
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
  if (code === 'hung') child.kill('SIGKILL');
  t.equal(code, 0, 'exit code 0');
  t.notMatch(stderr, /DATABASE_URL=/, 'it never started serving');
  await eventually(() => postgresProcessesUnder(tmpdir).length === 0, 5000, 'no PostgreSQL left running');
  t.same(readdirSync(tmpdir), [], 'the temporary data directory is removed');
});
