/**
 * A client that vanishes (socket closed without Terminate) inside a
 * transaction must never leave it open on the server: txproxy closes the
 * server connection at once, cancelling a statement still running, so the
 * backend is gone within moments — checked through pg_stat_activity on a
 * direct connection — and the transaction is rolled back and traced as
 * `disconnect`. Outside a transaction block it is the other way round, as
 * with PostgreSQL directly: a statement the client left running still
 * finishes and commits, and the trace says `commit`.
 */
import net from 'node:net';
import t from 'tap';
import type pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { socketOf } from '../helpers/wire.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
const observer = await postgres.direct();
t.teardown(async () => {
  await observer.end();
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE marks (name text PRIMARY KEY)');

/** How quickly the backend must be gone after the client vanished. */
const GONE_WITHIN_MS = 2000;

t.beforeEach(() => {
  proxy.trace.records.length = 0;
});

async function backendState(pid: number): Promise<string | null> {
  const result = await observer.query('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]);
  return result.rowCount === 0 ? null : (result.rows[0].state as string);
}

async function rowExists(name: string): Promise<boolean> {
  return (await observer.query('SELECT 1 FROM marks WHERE name = $1', [name])).rowCount === 1;
}

/** A client through txproxy with its backend pid; errors from the vanished socket are ignored. */
async function clientWithPid(): Promise<{ client: pg.Client; pid: number }> {
  const client = await proxy.client();
  client.on('error', () => undefined);
  const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  return { client, pid };
}

function explicitTransaction() {
  return proxy.trace.records.find((r) => r.kind === 'transaction' && r.implicit === false);
}

t.test('idle in transaction: the backend is gone at once and the insert rolled back', async (t) => {
  const { client, pid } = await clientWithPid();
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('vanished-idle')");
  t.equal(await backendState(pid), 'idle in transaction');

  const vanishedAt = Date.now();
  socketOf(client).destroy();
  await eventually(async () => (await backendState(pid)) === null, GONE_WITHIN_MS, 'the backend to exit');
  t.ok(Date.now() - vanishedAt < GONE_WITHIN_MS, 'gone quickly');

  t.notOk(await rowExists('vanished-idle'), 'the insert was rolled back');
  const idleInTransaction = await observer.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'");
  t.equal(idleInTransaction.rows[0].n, 0, 'no idle-in-transaction backend remains');
  await eventually(() => explicitTransaction() !== undefined, 2000, 'the transaction record');
  t.match(explicitTransaction(), { outcome: 'disconnect', writes: 1, statements: 2 });
  t.match(proxy.trace.records.find((r) => r.kind === 'session' && r.event === 'end'), { clean: false });
});

t.test('while a long statement runs: it is cancelled and the backend gone at once', async (t) => {
  const { client, pid } = await clientWithPid();
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('vanished-busy')");
  const sleeping = client.query('SELECT pg_sleep(30)').catch(() => undefined);
  await eventually(async () => (await backendState(pid)) === 'active', 5000, 'pg_sleep to start');

  const vanishedAt = Date.now();
  socketOf(client).destroy();
  await eventually(async () => (await backendState(pid)) === null, GONE_WITHIN_MS, 'the backend to exit');
  t.ok(Date.now() - vanishedAt < GONE_WITHIN_MS, 'gone long before pg_sleep(30) would end');
  await sleeping;

  t.notOk(await rowExists('vanished-busy'), 'the insert was rolled back');
  await eventually(() => explicitTransaction() !== undefined, 2000, 'the transaction record');
  t.match(explicitTransaction(), { outcome: 'disconnect', writes: 1 });
  const sleep = proxy.trace.records.find((r) => r.kind === 'statement' && r['db.query.text'] === 'SELECT pg_sleep(30)');
  t.match(sleep, { 'pg.interrupted': true, 'pg.tx_status_after': null });
});

t.test('while a large result streams to a client that stopped reading: the blocked backend is gone at once', async (t) => {
  // How a blocked backend reacts to a cancel or a FIN depends on timing;
  // several rounds make a slow exit show up reliably.
  for (let round = 1; round <= 10; round++) {
    proxy.trace.records.length = 0;
    const { client, pid } = await clientWithPid();
    await client.query('BEGIN');
    await client.query('INSERT INTO marks VALUES ($1)', [`vanished-streaming-${round}`]);
    const socket = socketOf(client);
    const streaming = client.query("SELECT repeat('x', 100) FROM generate_series(1, 2000000)").catch(() => undefined);
    // The client stops reading: txproxy pauses the server side and the server blocks writing.
    socket.pause();
    await eventually(
      async () => (await observer.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'ClientWrite'", [pid])).rowCount === 1,
      10_000,
      'the server to block writing the result',
    );

    const vanishedAt = Date.now();
    socket.destroy();
    await eventually(async () => (await backendState(pid)) === null, GONE_WITHIN_MS, `round ${round}: the backend to exit`);
    t.ok(Date.now() - vanishedAt < GONE_WITHIN_MS, `round ${round}: gone quickly (${Date.now() - vanishedAt} ms)`);
    await streaming;
    t.notOk(await rowExists(`vanished-streaming-${round}`), `round ${round}: rolled back`);
    await eventually(() => explicitTransaction() !== undefined, 2000, 'the transaction record');
    t.match(explicitTransaction(), { outcome: 'disconnect' });
  }
});

t.test('Terminate sent while the server is blocked writing a large result: the backend is gone at once', async (t) => {
  const { client, pid } = await clientWithPid();
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('terminated-while-streaming')");
  const socket = socketOf(client);
  const streaming = client.query("SELECT repeat('x', 100) FROM generate_series(1, 2000000)").catch(() => undefined);
  socket.pause();
  await eventually(
    async () => (await observer.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'ClientWrite'", [pid])).rowCount === 1,
    10_000,
    'the server to block writing the result',
  );

  const leftAt = Date.now();
  socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate, then close
  await eventually(async () => (await backendState(pid)) === null, GONE_WITHIN_MS, 'the backend to exit');
  t.ok(Date.now() - leftAt < GONE_WITHIN_MS, `gone quickly (${Date.now() - leftAt} ms)`);
  socket.destroy();
  await streaming;
  t.notOk(await rowExists('terminated-while-streaming'));
  await eventually(() => proxy.trace.records.some((r) => r.kind === 'session' && r.event === 'end'), 2000, 'the session end record');
  t.match(proxy.trace.records.find((r) => r.kind === 'session' && r.event === 'end'), { clean: true });
});

t.test('in the middle of sending a message: the server connection is dropped, not fed half a message', async (t) => {
  const { client, pid } = await clientWithPid();
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('vanished-mid-message')");
  // The start of a Query message that announces 1000 bytes and never delivers them.
  const partial = Buffer.alloc(20);
  partial[0] = 0x51; // Q
  partial.writeInt32BE(1000, 1);
  const socket: net.Socket = socketOf(client);
  await new Promise<void>((resolve) => socket.write(partial, () => resolve()));
  await new Promise((r) => setTimeout(r, 50));
  socket.destroy();

  await eventually(async () => (await backendState(pid)) === null, GONE_WITHIN_MS, 'the backend to exit');
  t.notOk(await rowExists('vanished-mid-message'));
  await eventually(() => explicitTransaction() !== undefined, 2000, 'the transaction record');
  t.match(explicitTransaction(), { outcome: 'disconnect' });
});

t.test('sessions of other clients are not disturbed', async (t) => {
  const other = await proxy.client();
  await other.query('BEGIN');
  await other.query("INSERT INTO marks VALUES ('kept')");
  const { client } = await clientWithPid();
  await client.query('BEGIN');
  socketOf(client).destroy();
  await other.query('COMMIT');
  t.ok(await rowExists('kept'));
  await other.end();
});

/** Runs `sql` on `client` and destroys its socket once the server is busy with it. */
async function vanishWhileRunning(client: pg.Client, pid: number, sql: string, values?: unknown[]): Promise<void> {
  client.on('error', () => undefined);
  const running = client.query(sql, values).catch(() => undefined);
  await eventually(async () => (await backendState(pid)) === 'active', 5000, 'the statement to start');
  socketOf(client).destroy();
  await running;
}

t.test('while an autocommit statement runs: the server finishes and commits it, as directly', async (t) => {
  // Directly: PostgreSQL runs the statement to its end and commits.
  const direct = await postgres.direct();
  const directPid = (await direct.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  await vanishWhileRunning(direct, directPid, "INSERT INTO marks SELECT 'direct-autocommit' FROM pg_sleep(1)");
  await eventually(async () => (await backendState(directPid)) === null, 10_000, 'the direct backend to exit');
  t.ok(await rowExists('direct-autocommit'), 'directly, the write commits');

  for (const [name, sql, values] of [
    ['simple protocol', "INSERT INTO marks SELECT 'vanished-autocommit' FROM pg_sleep(1)", undefined],
    ['extended protocol', 'INSERT INTO marks SELECT $1::text FROM pg_sleep(1)', ['vanished-autocommit-extended']],
  ] as const) {
    proxy.trace.records.length = 0;
    const { client, pid } = await clientWithPid();
    proxy.trace.records.length = 0;
    await vanishWhileRunning(client, pid, sql, values ? [...values] : undefined);
    await eventually(async () => (await backendState(pid)) === null, 10_000, `${name}: the backend to exit`);
    t.ok(await rowExists(values ? values[0] : 'vanished-autocommit'), `${name}: through txproxy too`);
    await eventually(() => proxy.trace.records.some((r) => r.kind === 'transaction'), 2000, 'the transaction record');
    t.match(
      proxy.trace.records.filter((r) => r.kind === 'transaction'),
      [{ implicit: true, outcome: 'commit', writes: 1 }],
      `${name}: the trace says what the server did`,
    );
    t.match(proxy.trace.records.find((r) => r.kind === 'statement'), { 'pg.command_tag': 'INSERT 0 1' });
    // The session ends when txproxy reads the server's close, which may come after the backend is gone from pg_stat_activity.
    await eventually(() => proxy.trace.records.some((r) => r.kind === 'session' && r.event === 'end'), 5000, 'the session end record');
    t.match(proxy.trace.records.find((r) => r.kind === 'session' && r.event === 'end'), { clean: false });
  }
});

t.test('inside a block with its COMMIT already sent: the server commits, as directly', async (t) => {
  const { client, pid } = await clientWithPid();
  await client.query('BEGIN');
  await client.query("INSERT INTO marks VALUES ('vanished-before-commit')");
  await vanishWhileRunning(client, pid, 'SELECT pg_sleep(1); COMMIT');
  await eventually(async () => (await backendState(pid)) === null, 10_000, 'the backend to exit');
  t.ok(await rowExists('vanished-before-commit'), 'the COMMIT the client sent ran');
  await eventually(() => explicitTransaction() !== undefined, 2000, 'the transaction record');
  t.match(explicitTransaction(), { outcome: 'commit', writes: 1 });
});
