/**
 * `txproxy trace` end to end: the built CLI as a separate process, on a
 * trace file recorded through a real txproxy, on stdin, and following a
 * live server-sent events stream (a small local server speaking the
 * `/events` format: `data: <record>` events and `: keepalive` comments).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { blocksOf, transactionBlocks } from '../unit/trace-render/fixtures.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'src', 'main.js');

/** `npm test` builds first; a lone run of this file builds when dist/ is older than src/. */
function ensureBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  let built = 0;
  try {
    built = statSync(CLI).mtimeMs;
  } catch {
    // not built yet
  }
  if (built >= newest(path.join(ROOT, 'src'))) return;
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (tsc.status !== 0) throw new Error(`build failed:\n${tsc.stdout}${tsc.stderr}`);
}
ensureBuilt();

// Colour is decided by the environment: start every run from none of it.
const BASE_ENV: NodeJS.ProcessEnv = { ...process.env };
delete BASE_ENV.NO_COLOR;
delete BASE_ENV.FORCE_COLOR;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: { stdout: string; stderr: string }; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, 'trace', ...args], { env: { ...BASE_ENV, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, ...output })));
  return { child, output, done };
}

async function run(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const { child, done } = start(args, options.env);
  child.stdin!.end(options.input ?? '');
  return done;
}

// ------------------------------------------------------ a recorded trace

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-trace-cli-'));
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
});
await postgres.sql('CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE)');

const tag = (route: string) => `/*route='${encodeURIComponent(route)}',traceparent='00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01'*/`;

async function session(work: (c: pg.Client) => Promise<void>): Promise<void> {
  const before = proxy.trace.records.filter((r) => r.kind === 'session' && r.event === 'end').length;
  const client = await proxy.client();
  await work(client);
  await client.end();
  await eventually(() => proxy.trace.records.filter((r) => r.kind === 'session' && r.event === 'end').length > before, 5000, 'session end');
}

await session(async (c) => {
  await c.query(`INSERT INTO items (name) VALUES ('order-1') ${tag('/checkout')}`);
  await c.query(`INSERT INTO items (name) VALUES ('address-1') ${tag('/checkout')}`);
});
await session(async (c) => {
  await c.query(`BEGIN ${tag('/orders')}`);
  await c.query(`INSERT INTO items (name) VALUES ('order-2') ${tag('/orders')}`);
  await c.query(`COMMIT ${tag('/orders')}`);
});
await session(async (c) => {
  await c.query('BEGIN');
  await c.query('SELECT pg_sleep(0.2)');
  await c.query('ROLLBACK');
});
const records = [...proxy.trace.records];
const sessionIds = [...new Set(records.map((r) => r['session.id'] as string))];
t.equal(sessionIds.length, 3, 'three sessions recorded');
const ndjson = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const traceFile = path.join(dir, 'trace.ndjson');
writeFileSync(traceFile, ndjson);

const txTitles = (text: string) => transactionBlocks(text).map((b) => b.title.replace(/ · [\d.]+ m?s · /, ' · ').replace(/^── tx \S+ · /, ''));

t.test('renders a recorded trace file', async (t) => {
  const result = await run([traceFile]);
  t.equal(result.code, 0);
  t.equal(result.stderr, '');
  t.same(txTitles(result.stdout), [
    'implicit (autocommit) · commit · 1 statement · 1 write',
    'implicit (autocommit) · commit · 1 statement · 1 write',
    'explicit · commit · 3 statements · 1 write',
    'explicit · rollback · 3 statements · 0 writes',
  ]);
  const blocks = transactionBlocks(result.stdout);
  t.match(blocks[1].lines.join('\n'), /route \/checkout[\s\S]*WARNING not atomic/);
  t.same(blocks[2].statements.map((s) => s.sql), ['BEGIN', "INSERT INTO items (name) VALUES ('order-2')", 'COMMIT'], 'sqlcommenter comments are not shown');
  t.match(blocks[3].lines.join('\n'), /NOTICE read-only/);
  t.match(result.stdout, /── request \S+ · session \S+ · route \/checkout\n {3}WARNING not atomic: 2 separate autocommit transactions/);
  t.notMatch(result.stdout, /\x1b\[/, 'no colour into a pipe');
});

t.test('reads standard input with - or no FILE', async (t) => {
  const fromFile = await run([traceFile]);
  for (const args of [['-'], []]) {
    const result = await run(args, { input: ndjson });
    t.equal(result.code, 0, `trace ${args.join(' ')}`);
    t.equal(result.stdout, fromFile.stdout, `trace ${args.join(' ')}`);
  }
});

t.test('filters: --session, --route, --min-ms', async (t) => {
  const bySession = await run([traceFile, '--session', sessionIds[1]]);
  t.same(txTitles(bySession.stdout), ['explicit · commit · 3 statements · 1 write']);
  t.same(
    blocksOf(bySession.stdout).map((b) => b.title.split(' · ')[0]),
    [`── session ${sessionIds[1]} started`, transactionBlocks(bySession.stdout)[0].title.split(' · ')[0], `── session ${sessionIds[1]} ended`],
  );
  const byRoute = await run([traceFile, '--route', '/checkout']);
  t.same(txTitles(byRoute.stdout), ['implicit (autocommit) · commit · 1 statement · 1 write', 'implicit (autocommit) · commit · 1 statement · 1 write']);
  t.equal(blocksOf(byRoute.stdout).filter((b) => b.title.startsWith('── request')).length, 1, 'the request summary has the route too');
  const slow = await run([traceFile, '--min-ms', '150']);
  t.same(txTitles(slow.stdout), ['explicit · rollback · 3 statements · 0 writes'], 'only the transaction with pg_sleep(0.2)');
  const none = await run([traceFile, '--route', '/nowhere']);
  t.equal(none.code, 0);
  t.equal(none.stdout, '');
});

t.test('malformed lines are reported on stderr with their line number and skipped', async (t) => {
  const lines = ndjson.trimEnd().split('\n');
  const broken = [lines[0], '{"kind":"statement",', lines[1], 'garbage', '{"kind":"transaction","session.id":"x"}', ...lines.slice(2)].join('\n');
  const result = await run(['-'], { input: broken });
  t.equal(result.code, 0, 'not a crash');
  t.match(result.stderr, /^txproxy trace: line 2: not valid JSON .*; skipped$/m);
  t.match(result.stderr, /^txproxy trace: line 4: not valid JSON .*; skipped$/m);
  t.match(result.stderr, /^txproxy trace: line 5: transaction record without a valid "transaction.id"; skipped$/m);
  t.match(result.stderr, /^txproxy trace: 3 malformed lines skipped$/m);
  t.equal(transactionBlocks(result.stdout).length, 4, 'every transaction still rendered');
});

t.test('usage errors exit 2 with a message; an unreadable file exits 1', async (t) => {
  for (const [args, message] of [
    [['--min-ms', 'soon'], /invalid value for '--min-ms'/],
    [['a.ndjson', 'b.ndjson'], /expected at most one FILE/],
    [['--follow', 'ftp://127.0.0.1/'], /expected an http:\/\/ or https:\/\/ URL/],
    [[traceFile, '--follow', 'http://127.0.0.1:9'], /either FILE or --follow URL/],
    [['--colour'], /Unknown option '--colour'/],
  ] as [string[], RegExp][]) {
    const result = await run(args);
    t.equal(result.code, 2, args.join(' '));
    t.match(result.stderr, message, args.join(' '));
  }
  const missing = await run([path.join(dir, 'missing.ndjson')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^txproxy trace: cannot read .*missing\.ndjson: ENOENT/);
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: txproxy trace \[FILE\|-\]/);
});

t.test('colour: FORCE_COLOR asks for it, NO_COLOR wins', async (t) => {
  const forced = await run([traceFile], { env: { FORCE_COLOR: '1' } });
  t.match(forced.stdout, /\x1b\[1m── tx /);
  const plain = await run([traceFile]);
  t.equal(forced.stdout.replace(/\x1b\[\d+m/g, ''), plain.stdout, 'the same transcript underneath');
  const both = await run([traceFile], { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
  t.notMatch(both.stdout, /\x1b\[/);
});

t.test('a reader that stops early (| head) ends the command quietly', async (t) => {
  const big = path.join(dir, 'big.ndjson');
  writeFileSync(big, ndjson.repeat(300));
  const result = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${CLI}" trace "${big}" | head -n 1`], { env: BASE_ENV, encoding: 'utf8' });
  t.equal(result.status, 0);
  t.equal(result.stdout.split('\n').length, 2);
  t.equal(result.stderr, '');
});

t.test('transaction pooling: a LISTEN pins the session to its backend, UNLISTEN lets it go, a line each in its session', async (t) => {
  const pooled = await startProxy(
    postgres,
    { pool: { mode: 'transaction', default_pool_size: 1 }, auth: { type: 'scram-sha-256' } },
    { app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
  );
  t.teardown(() => pooled.stop());
  const client = await pooled.client();
  await client.query('LISTEN jobs');
  await eventually(() => pooled.trace.records.some((r) => r.kind === 'pin'), 5000, 'the pin record');
  await client.query('UNLISTEN *');
  await eventually(() => pooled.trace.records.some((r) => r.kind === 'unpin'), 5000, 'the unpin record');
  await client.end();
  await eventually(() => pooled.trace.records.some((r) => r.kind === 'session' && r.event === 'end'), 5000, 'session end');
  const recorded = pooled.trace.records;
  const pid = recorded.find((r) => r.kind === 'pin')!['pg.backend_pid'] as number;
  const id = recorded.find((r) => r.kind === 'pin')!['session.id'] as string;
  const file = path.join(dir, 'pins.ndjson');
  // Another session's lines around it, for --session to leave out.
  writeFileSync(file, ndjson + recorded.map((r) => JSON.stringify(r)).join('\n') + '\n');

  const result = await run([file, '--session', id]);
  t.equal(result.code, 0);
  t.equal(result.stderr, '');
  const blocks = blocksOf(result.stdout);
  const lines = blocks.map((b) => b.title.split(' · ')[0]);
  t.same(
    lines.filter((l) => !l.startsWith('── tx ')),
    [`── session ${id} started`, `── pinned to backend ${pid}: listen`, `── unpinned from backend ${pid}: listen`, `── session ${id} ended`],
  );
  const listen = blocks.findIndex((b) => b.statements.some((st) => st.sql === 'LISTEN jobs'));
  const unlisten = blocks.findIndex((b) => b.statements.some((st) => st.sql === 'UNLISTEN *'));
  t.ok(listen >= 0 && listen < lines.indexOf(`── pinned to backend ${pid}: listen`), 'the pin after the LISTEN that made it');
  t.ok(unlisten >= 0 && unlisten < lines.indexOf(`── unpinned from backend ${pid}: listen`), 'the unpin after the UNLISTEN');
  t.match(result.stdout, new RegExp(`^── pinned to backend ${pid}: listen · session ${id} · \\S+ \\S+ UTC$`, 'm'));
  const everyone = await run([file]);
  t.equal(everyone.stdout.match(/^── (pinned to|unpinned from) backend /gm)?.length, 2, 'only the pooled session was pinned');
});

// ------------------------------------------------------------ --follow

interface EventServer {
  url: string;
  /** Each connection's response, in order. */
  connections: http.ServerResponse[];
  paths: string[];
  close(): Promise<void>;
}

async function eventServer(): Promise<EventServer> {
  const connections: http.ServerResponse[] = [];
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    if (req.url !== '/events') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(': keepalive\n\n');
    connections.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    paths,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const send = (res: http.ServerResponse, recs: Record<string, unknown>[]) => res.write(recs.map((r) => `data: ${JSON.stringify(r)}\n\n`).join(''));

t.test('--follow: blocks appear as transactions complete; a lost stream is reconnected with a clear message', async (t) => {
  const server = await eventServer();
  t.teardown(() => server.close());
  const cli = start(['--follow', server.url]);
  t.teardown(() => cli.child.kill('SIGKILL'));
  await eventually(() => server.connections.length === 1, 5000, 'first connection');
  t.same(server.paths, ['/events'], '/events added to the admin address');
  await eventually(() => cli.output.stderr.includes(`following ${server.url}/events`), 5000, 'following message');

  const [autocommitSession, explicitSession] = sessionIds;
  const first = records.filter((r) => r['session.id'] === autocommitSession);
  send(server.connections[0], first);
  await eventually(() => transactionBlocks(cli.output.stdout).length === 2, 5000, 'the two autocommit blocks');
  t.match(cli.output.stdout, /── request \S+ · session \S+ · route \/checkout/, 'and the request summary at its session end');

  // The explicit transaction: BEGIN and INSERT, then the stream breaks before the transaction record.
  const second = records.filter((r) => r['session.id'] === explicitSession);
  const txIndex = second.findIndex((r) => r.kind === 'transaction');
  send(server.connections[0], second.slice(0, txIndex));
  // Another session's finished transaction after it: once that one is shown, the open one was read too.
  send(server.connections[0], records.filter((r) => r['session.id'] === sessionIds[2]));
  await eventually(() => transactionBlocks(cli.output.stdout).length === 3, 5000, 'the rolled-back block sent after the open one');
  t.match(transactionBlocks(cli.output.stdout)[2].title, /· explicit · rollback ·/, 'an open transaction is not shown yet');
  server.connections[0].end();
  await eventually(() => /lost the event stream from \S+\/events \(the server closed the stream\); reconnecting in 1 s/.test(cli.output.stderr), 5000, 'lost message');
  await eventually(() => server.connections.length === 2, 5000, 'reconnection');
  await eventually(() => cli.output.stderr.includes('reconnected to'), 5000, 'reconnected message');

  // The transaction record and then, as txproxy writes them, its COMMIT's record: sent apart.
  send(server.connections[1], second.slice(txIndex, txIndex + 1));
  await new Promise((r) => setTimeout(r, 50));
  send(server.connections[1], second.slice(txIndex + 1));
  await eventually(() => transactionBlocks(cli.output.stdout).length === 4, 5000, 'the explicit block');
  const explicit = transactionBlocks(cli.output.stdout)[3];
  t.match(explicit.title, /· explicit · commit ·/);
  t.same(explicit.statements.map((s) => s.tag), ['BEGIN', 'INSERT 0 1', 'COMMIT'], 'statements from before and after the reconnection, COMMIT included');
  t.notMatch(cli.output.stdout, /late record/);

  server.connections[1].write(': keepalive\n\n');
  cli.child.kill('SIGINT');
  const result = await cli.done;
  t.equal(result.code, 0, 'Ctrl-C ends it cleanly');
  t.notMatch(result.stderr, /Error|at .*\.js/, 'no stack trace');
});

t.test('--follow: an unfinished transaction is shown at Ctrl-C', async (t) => {
  const server = await eventServer();
  t.teardown(() => server.close());
  const cli = start(['--follow', `${server.url}/events`]);
  t.teardown(() => cli.child.kill('SIGKILL'));
  await eventually(() => server.connections.length === 1, 5000, 'connection');
  const explicit = records.filter((r) => r['session.id'] === sessionIds[1] && r.kind === 'statement').slice(0, 2);
  send(server.connections[0], explicit);
  // A finished transaction sent after it: once that one is shown, the unfinished one was read too.
  send(server.connections[0], records.filter((r) => r['session.id'] === sessionIds[2]));
  await eventually(() => transactionBlocks(cli.output.stdout).length === 1, 5000, 'the block sent after the unfinished one');
  t.same(txTitles(cli.output.stdout), ['explicit · rollback · 3 statements · 0 writes'], 'nothing of the unfinished transaction before Ctrl-C');
  cli.child.kill('SIGINT');
  const result = await cli.done;
  t.equal(result.code, 0);
  t.match(result.stdout, /── tx \S+ · unfinished · /);
});

t.test('--follow: an address with nothing listening, or the wrong path, is retried with a clear message', async (t) => {
  const server = await eventServer();
  const closedUrl = server.url;
  await server.close();
  const refused = start(['--follow', closedUrl]);
  t.teardown(() => refused.child.kill('SIGKILL'));
  await eventually(
    () => new RegExp(`cannot follow ${closedUrl}/events \\(connect ECONNREFUSED [^)]*\\); retrying in 1 s`).test(refused.output.stderr),
    5000,
    'refused message',
  );
  await eventually(() => /retrying in 2 s/.test(refused.output.stderr), 5000, 'backoff doubles');
  refused.child.kill('SIGINT');
  t.equal((await refused.done).code, 0);

  const other = await eventServer();
  t.teardown(() => other.close());
  const wrong = start(['--follow', `${other.url}/metrics`]);
  t.teardown(() => wrong.child.kill('SIGKILL'));
  await eventually(() => /HTTP 404: is this txproxy's admin address \(--http\)\?\); retrying in 1 s/.test(wrong.output.stderr), 5000, '404 message');
  wrong.child.kill('SIGINT');
  t.equal((await wrong.done).code, 0);
});
