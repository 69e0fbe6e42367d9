/**
 * The admin endpoint's bearer token (admin.token): every route requires it
 * but the probes, which then tell only the status. Regression tests for an
 * admin API that showed sessions and SQL text to anyone who could reach it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { request, Scrape, subscribe } from '../helpers/admin.js';
import { captureLog } from '../helpers/log-capture.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { environment, MAIN, runCli, startCli } from '../helpers/txproxy-cli.js';

const TOKEN = 'c2a7f0e4b19d8653e0f1a2b3c4d5e6f7';
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };

const postgres = await startPostgres();
const proxy = await startProxy(postgres, { http: '127.0.0.1:0', admin: { token: TOKEN } });
const adminPort = proxy.app.adminPort!;
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

const PROTECTED = ['/metrics', '/sessions', '/pools', '/transactions', '/events', '/no-such-route'];

t.test('without a token every route but the probes is 401 with a Bearer challenge', async (t) => {
  for (const route of PROTECTED) {
    const res = await request(adminPort, route);
    t.equal(res.status, 401, route);
    t.equal(res.headers['www-authenticate'], 'Bearer realm="txproxy"', `${route}: challenge`);
    t.match(JSON.parse(res.body), { error: 'unauthorized', message: /Authorization: Bearer/ }, `${route}: body`);
    t.notMatch(res.body, TOKEN);
  }
  // Not even which methods exist.
  t.equal((await request(adminPort, '/metrics', 'POST')).status, 401);
});

t.test('a wrong or malformed token is 401 with error="invalid_token"', async (t) => {
  const wrong = [
    `Bearer ${TOKEN.slice(0, -1)}x`,
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, 16)}`,
    `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`,
    TOKEN,
    'Bearer',
    `Bearer ${TOKEN} ${TOKEN}`,
  ];
  for (const route of PROTECTED) {
    for (const authorization of wrong) {
      const res = await request(adminPort, route, 'GET', { authorization });
      t.equal(res.status, 401, `${route} with '${authorization}'`);
      t.equal(res.headers['www-authenticate'], 'Bearer realm="txproxy", error="invalid_token"');
    }
  }
});

t.test('with the token every route answers as without authentication', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query("SELECT 'authorized'");
  await proxy.waitForTransactions(1);

  const metrics = await request(adminPort, '/metrics', 'GET', AUTHORIZED);
  t.equal(metrics.status, 200);
  t.ok(Scrape.parse(metrics.body).sum('txproxy_statements_total') >= 1, '/metrics counts the statement');
  const sessions = await request(adminPort, '/sessions', 'GET', AUTHORIZED);
  t.equal(sessions.status, 200);
  t.match(JSON.parse(sessions.body), { sessions: [{ lastStatement: { text: "SELECT 'authorized'" } }] });
  const transactions = await request(adminPort, '/transactions', 'GET', AUTHORIZED);
  t.equal(transactions.status, 200);
  t.match(JSON.parse(transactions.body).transactions[0], { statementLog: [{ text: "SELECT 'authorized'" }] });
  // The scheme is case-insensitive (RFC 9110).
  t.equal((await request(adminPort, '/sessions', 'GET', { authorization: `bearer ${TOKEN}` })).status, 200);
  t.equal((await request(adminPort, '/no-such-route', 'GET', AUTHORIZED)).status, 404);
  t.equal((await request(adminPort, '/metrics', 'POST', AUTHORIZED)).status, 405);

  const events = await subscribe(adminPort, '/events', AUTHORIZED);
  t.teardown(() => events.close());
  t.equal(events.status, 200);
  await client.query("SELECT 'streamed'");
  await events.waitFor((r) => r['db.query.text'] === "SELECT 'streamed'", 10_000, 'the statement on /events');
});

t.test('/healthz and /readyz stay open for probes but tell only the status without the token', async (t) => {
  const health = await request(adminPort, '/healthz');
  t.equal(health.status, 200);
  t.same(JSON.parse(health.body), { status: 'ok' });
  const ready = await request(adminPort, '/readyz');
  t.equal(ready.status, 200);
  t.same(JSON.parse(ready.body), { status: 'ready' }, 'no upstream address');
  const wrong = await request(adminPort, '/readyz', 'GET', { authorization: 'Bearer not-the-token-at-all' });
  t.same(JSON.parse(wrong.body), { status: 'ready' });
  const detailed = await request(adminPort, '/readyz', 'GET', AUTHORIZED);
  t.match(JSON.parse(detailed.body), { status: 'ready', upstream: `${postgres.host}:${postgres.port}` });
});

t.test('a refused /events request takes no subscriber place', async (t) => {
  for (let i = 0; i < 20; i++) t.equal((await request(adminPort, '/events')).status, 401);
  const scrape = Scrape.parse((await request(adminPort, '/metrics', 'GET', AUTHORIZED)).body);
  t.equal(scrape.value('txproxy_admin_event_subscribers'), 0);
});

t.test('an admin endpoint on a non-loopback address without a token is logged as a warning; with one it is not', async (t) => {
  const open = captureLog('warn');
  const unprotected = await startProxy(postgres, { http: '0.0.0.0:0' }, { log: open.log });
  t.teardown(() => unprotected.stop());
  t.match(open.records, [{ msg: 'admin endpoint open without admin.token on a non-loopback address: whoever reaches it sees sessions and SQL text', address: '0.0.0.0' }]);

  const closed = captureLog('warn');
  const protectedProxy = await startProxy(postgres, { http: '0.0.0.0:0', admin: { token: TOKEN } }, { log: closed.log });
  t.teardown(() => protectedProxy.stop());
  const loopback = captureLog('warn');
  const local = await startProxy(postgres, { http: '127.0.0.1:0' }, { log: loopback.log });
  t.teardown(() => local.stop());
  t.same([...closed.records, ...loopback.records].filter((r) => /admin endpoint/.test(r.msg)), []);
});

t.test('an App given admin.token_file whose token was not read refuses to start open', async (t) => {
  const err = await startProxy(postgres, { http: '127.0.0.1:0', admin: { token_file: '/run/secrets/txproxy-admin' } }).catch((e: unknown) => e);
  t.match(err, { message: 'admin.token_file /run/secrets/txproxy-admin was not read: pass its token as admin.token' });
});

t.test('the txproxy command reads the token from TXPROXY_ADMIN_TOKEN_FILE', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'txproxy-admin-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = path.join(dir, 'admin-token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const env = {
    TXPROXY_UPSTREAM: `${postgres.url}?sslmode=disable`,
    TXPROXY_LISTEN: '127.0.0.1:0',
    TXPROXY_HTTP: '127.0.0.1:0',
    TXPROXY_TRACE: 'off',
    TXPROXY_ADMIN_TOKEN_FILE: tokenFile,
  };
  const cli = await startCli([], env);
  t.teardown(async () => {
    cli.kill('SIGTERM');
    await cli.exited;
  });
  await eventually(() => /^admin: http:\/\/127\.0\.0\.1:\d+\//m.test(cli.stderr()), 10_000, 'the admin address');
  const port = Number(/^admin: http:\/\/127\.0\.0\.1:(\d+)\//m.exec(cli.stderr())![1]);
  t.match(cli.stderr(), /^admin: http:\/\/127\.0\.0\.1:\d+\/ \(metrics at \/metrics; every route but \/healthz and \/readyz requires the admin token\)$/m);
  t.notMatch(cli.stderr(), TOKEN, 'the token is not printed');
  t.equal((await request(port, '/sessions')).status, 401);
  t.equal((await request(port, '/sessions', 'GET', AUTHORIZED)).status, 200);
  t.equal((await request(port, '/healthz')).status, 200);
});

t.test('the txproxy command refuses an empty or unreadable token file with exit code 2', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'txproxy-admin-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const empty = path.join(dir, 'empty');
  await writeFile(empty, '\n');
  const base = { TXPROXY_UPSTREAM: `${postgres.url}?sslmode=disable`, TXPROXY_LISTEN: '127.0.0.1:0', TXPROXY_HTTP: '127.0.0.1:0' };

  const emptyFile = await runCli([], { ...base, TXPROXY_ADMIN_TOKEN_FILE: empty });
  t.equal(emptyFile.code, 2);
  t.match(emptyFile.stderr, `txproxy: invalid value for 'admin.token_file': ${empty} must hold only the token`);

  const missing = await runCli([], { ...base, TXPROXY_ADMIN_TOKEN_FILE: path.join(dir, 'missing') });
  t.equal(missing.code, 2);
  t.match(missing.stderr, `txproxy: invalid value for 'admin.token_file': cannot read ${path.join(dir, 'missing')}: ENOENT`);

  const emptyVariable = await runCli([], { ...base, TXPROXY_ADMIN_TOKEN: '' });
  t.equal(emptyVariable.code, 2);
  t.match(emptyVariable.stderr, "txproxy: invalid value for 'admin.token' from TXPROXY_ADMIN_TOKEN: expected at least 16");
});

/** `txproxy trace --follow` as a child process; its output so far. */
function follow(url: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN, 'trace', '--follow', url], { env: environment({ NO_COLOR: '1', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk));
  const exited = new Promise((resolve) => child.once('close', resolve));
  return { output, stop: async () => (child.kill('SIGKILL'), await exited) };
}

t.test('txproxy trace --follow sends the token from TXPROXY_ADMIN_TOKEN, and says what is missing without it', async (t) => {
  const url = `http://127.0.0.1:${adminPort}`;
  const without = follow(url, {});
  t.teardown(() => without.stop());
  await eventually(() => without.output.stderr.includes('HTTP 401'), 10_000, 'the refusal');
  t.match(without.output.stderr, `cannot follow ${url}/events (HTTP 401: the admin endpoint requires a token; set TXPROXY_ADMIN_TOKEN or TXPROXY_ADMIN_TOKEN_FILE to its admin.token)`);

  const withToken = follow(url, { TXPROXY_ADMIN_TOKEN: TOKEN });
  t.teardown(() => withToken.stop());
  await eventually(() => withToken.output.stderr.includes(`following ${url}/events`), 10_000, 'the stream to be followed');
  const client = await proxy.client();
  t.teardown(() => client.end());
  await client.query("SELECT 'followed with a token'");
  await eventually(() => withToken.output.stdout.includes("SELECT 'followed with a token'"), 10_000, 'the statement in the transcript');
  t.pass('the transcript shows the statement');
});

