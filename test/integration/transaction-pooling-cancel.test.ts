/**
 * Cancel in transaction pooling. A client keeps the BackendKeyData it got
 * at login (the pid of the server it logged in on, a secret txproxy minted)
 * while its transactions run on whichever server is free: its cancel must
 * reach the server running its query at that moment, and nothing else —
 * not a query of another client that now runs on the server it used before.
 */
import t, { type Test } from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { onePool, startTransactionProxy } from '../helpers/transaction-pool.js';
import { cancelRequest, RawConnection } from '../helpers/raw-connection.js';

const postgres = await startPostgres();
const proxy = await startTransactionProxy(postgres, 2);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

/** node-postgres keeps BackendKeyData on the client without typing it. */
function keyOf(client: pg.Client): { pid: number; secret: number } {
  const c = client as unknown as { processID: number; secretKey: number };
  return { pid: c.processID, secret: c.secretKey };
}

/** Sends a raw CancelRequest to txproxy and waits until txproxy closed that connection (it has acted on it then). */
async function sendCancel(pid: number, secret: number): Promise<void> {
  const key = Buffer.alloc(4);
  key.writeInt32BE(secret);
  const conn = await RawConnection.connect(proxy.port);
  conn.write(cancelRequest(pid, key));
  await conn.closed;
}

/** The backend running pg_sleep for `application`, seen over a direct connection; 0 while there is none. */
async function sleeper(application: string): Promise<number> {
  const { rows } = await postgres.sql(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
    [application],
  );
  return rows[0]?.pid ?? 0;
}

const outcomeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (err: pg.DatabaseError) => err,
  );

/**
 * Two other clients take both server connections in transactions; the one
 * on backend `pid` keeps it, so the next transaction of anyone else runs on
 * the other. Returns the release of the one kept.
 */
async function occupy(pid: number): Promise<() => Promise<void>> {
  const holders = [await proxy.client(), await proxy.client()];
  const pids: number[] = [];
  for (const holder of holders) {
    await holder.query('BEGIN');
    pids.push((await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
  }
  const keep = pids.indexOf(pid);
  if (keep === -1 || pids[0] === pids[1]) throw new Error(`holders on ${pids.join(', ')}, wanted one on ${pid}`);
  await holders[1 - keep].query('COMMIT');
  await holders[1 - keep].end();
  return async () => {
    await holders[keep].query('COMMIT');
    await holders[keep].end();
  };
}

t.test("a raw CancelRequest with the client's key cancels its query on a backend other than the one it was given", async (t) => {
  const client = await proxy.client({ application_name: 'moved' });
  t.teardown(() => client.end());
  const given = keyOf(client);
  const release = await occupy(given.pid);
  t.teardown(release);
  const started = Date.now();
  const outcome = outcomeOf(client.query('SELECT pg_sleep(30)'));
  let running = 0;
  await eventually(async () => (running = await sleeper('moved')) !== 0, 10_000, 'pg_sleep to run');
  t.not(running, given.pid, `the query runs on backend ${running}, not on ${given.pid} of the client's BackendKeyData`);
  await sendCancel(given.pid, given.secret);
  t.match(await outcome, { code: '57014', message: 'canceling statement due to user request' });
  t.ok(Date.now() - started < 15_000, 'ended long before the 30 s sleep');
  t.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1, 'the session goes on');
});

t.test("node-postgres' own cancel reaches the backend running the query", async (t) => {
  const client = await proxy.client({ application_name: 'pg-cancel' });
  t.teardown(() => client.end());
  const release = await occupy(keyOf(client).pid);
  t.teardown(release);
  const query = new pg.Query('SELECT pg_sleep(30)');
  const outcome = new Promise((resolve) => {
    query.on('error', resolve);
    query.on('end', () => resolve(null));
  });
  client.query(query);
  await eventually(async () => (await sleeper('pg-cancel')) !== 0, 10_000, 'pg_sleep to run');
  // The documented form: a second client object (never connected) sends the cancel for the first.
  const canceller = new pg.Client(proxy.connection());
  (canceller as unknown as { cancel(client: pg.Client, query: pg.Query): void }).cancel(client, query);
  t.match(await outcome, { code: '57014' });
});

t.test('postgres.js query.cancel() through transaction pooling', async (t) => {
  const sql = postgresJs(proxy.url(), { max: 1, connection: { application_name: 'js-cancel' } });
  t.teardown(() => sql.end({ timeout: 5 }));
  await sql`SELECT 1`;
  const query = sql`SELECT pg_sleep(30)`;
  const outcome = query.then(
    () => null,
    (err: { code: string }) => err,
  );
  await eventually(async () => (await sleeper('js-cancel')) !== 0, 10_000, 'pg_sleep to run');
  query.cancel();
  t.match(await outcome, { code: '57014' });
});

t.test("a late cancel does not touch the query another client now runs on that backend", async (t) => {
  const early = await proxy.client({ application_name: 'early' });
  const other = await proxy.client({ application_name: 'other' });
  t.teardown(async () => {
    await early.end();
    await other.end();
  });
  // The early client's query ran on `used`, and its transaction is over.
  const used = (await early.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  // The other client's next query lands on `used`: the second server is held meanwhile.
  const holders = [await proxy.client(), await proxy.client()];
  const pids: number[] = [];
  for (const holder of holders) {
    await holder.query('BEGIN');
    pids.push((await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
  }
  const onUsed = pids.indexOf(used);
  t.not(onUsed, -1, 'a holder got the backend the early client used');
  await holders[onUsed].query('COMMIT');
  const started = Date.now();
  const outcome = outcomeOf(other.query('SELECT pg_sleep(2) AS slept'));
  let running = 0;
  await eventually(async () => (running = await sleeper('other')) !== 0, 10_000, 'pg_sleep to run');
  t.equal(running, used, "the other client's query runs on the backend the early client used");

  const { pid, secret } = keyOf(early);
  await sendCancel(pid, secret);
  t.equal(await outcome, null, 'the other client\'s query was not cancelled');
  t.ok(Date.now() - started >= 1900, 'it slept its full time');
  for (const holder of holders) {
    if (holders.indexOf(holder) !== onUsed) await holder.query('COMMIT');
    await holder.end();
  }
  t.equal((await early.query('SELECT 2 AS two')).rows[0].two, 2, 'the early client goes on');
});

t.test('two clients given the same backend pid: each cancel stops only its own query', async (t) => {
  const first = await proxy.client({ application_name: 'first' });
  const second = await proxy.client({ application_name: 'second' });
  t.teardown(async () => {
    await first.end();
    await second.end();
  });
  const [a, b] = [keyOf(first), keyOf(second)];
  if (a.pid === b.pid) t.not(a.secret, b.secret, `both were given pid ${a.pid}, with different secrets`);
  else t.comment(`the clients logged in on different servers (${a.pid}, ${b.pid})`);
  const firstOutcome = outcomeOf(first.query('SELECT pg_sleep(30)'));
  const secondStarted = Date.now();
  const secondOutcome = outcomeOf(second.query('SELECT pg_sleep(2)'));
  await eventually(async () => (await sleeper('first')) !== 0 && (await sleeper('second')) !== 0, 10_000, 'both to sleep');
  await sendCancel(a.pid, a.secret);
  t.match(await firstOutcome, { code: '57014' }, 'the first is cancelled');
  t.equal(await secondOutcome, null, 'the second is not');
  t.ok(Date.now() - secondStarted >= 1900, 'the second slept its full time');
});

/**
 * A server cancels a query it has received even before it starts on it. A
 * lone Query queued for a server is answered 57014 at once and never runs;
 * a queued batch is answered 57014 when a server is lent for it, which
 * keeps the batch's answers in step, and never runs either.
 */
async function queuedBehindBusyServers(t: Test): Promise<{ waiting: pg.Client; release: () => Promise<void> }> {
  await postgres.sql('CREATE TABLE IF NOT EXISTS cancel_marks (what text)');
  await postgres.sql('TRUNCATE cancel_marks');
  const waiting = await proxy.client({ application_name: 'queued' });
  t.teardown(() => waiting.end());
  const holders = [await proxy.client(), await proxy.client()];
  for (const holder of holders) await holder.query('BEGIN');
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    for (const holder of holders) await holder.query('COMMIT');
  };
  t.teardown(async () => {
    await release();
    for (const holder of holders) await holder.end();
  });
  return { waiting, release };
}

const pool = () => onePool(proxy);

t.test('a cancel while the client waits for a server ends its queued query with 57014 at once, as a server would; it never runs', async (t) => {
  const { waiting, release } = await queuedBehindBusyServers(t);
  const outcome = outcomeOf(waiting.query("INSERT INTO cancel_marks VALUES ('simple')"));
  await eventually(() => pool().clients.waiting === 1, 10_000, 'the client to wait for a server');
  const { pid, secret } = keyOf(waiting);
  await sendCancel(pid, secret);
  const early = await Promise.race([outcome, new Promise((r) => setTimeout(r, 3000)).then(() => 'no answer yet')]);
  t.match(early, { code: '57014', message: 'canceling statement due to user request' }, 'answered while every server was still busy');
  t.equal(pool().clients.waiting, 0, 'the client left the line');
  t.match(proxy.statements.at(-1), { text: "INSERT INTO cancel_marks VALUES ('simple')", error: { code: '57014' } }, 'traced as the server would have failed it');
  await release();
  t.same((await waiting.query('SELECT 1 AS next')).rows, [{ next: 1 }], 'the session goes on');
  t.same((await postgres.sql('SELECT count(*)::int AS n FROM cancel_marks')).rows, [{ n: 0 }], 'the query never ran');
});

t.test('a cancel while a batch waits for a server: its statement is answered 57014 when a server is lent, and never runs', async (t) => {
  const { waiting, release } = await queuedBehindBusyServers(t);
  // A parameterized query: Parse, Bind, Describe, Execute and Sync in one write.
  const outcome = outcomeOf(waiting.query('INSERT INTO cancel_marks VALUES ($1)', ['batch']));
  await eventually(() => pool().clients.waiting === 1, 10_000, 'the client to wait for a server');
  const { pid, secret } = keyOf(waiting);
  await sendCancel(pid, secret);
  await release();
  t.match(await outcome, { code: '57014' }, 'cancelled');
  t.same((await waiting.query('SELECT 1 AS next')).rows, [{ next: 1 }], 'the session goes on');
  t.same((await postgres.sql('SELECT count(*)::int AS n FROM cancel_marks')).rows, [{ n: 0 }], 'the query never ran');
});
