/**
 * CancelRequest through txproxy: a client's cancel reaches the server
 * backend it names (txproxy relays BackendKeyData unchanged, so the client
 * holds the server's own pid and key) and the statement ends with 57014;
 * a cancel with a wrong key or an unknown pid is ignored, as the server
 * itself would ignore it.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import { captureLog } from '../helpers/log-capture.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { cancelRequest, RawConnection } from '../helpers/raw-connection.js';

const postgres = await startPostgres();
const { log, records } = captureLog();
const proxy = await startProxy(postgres, {}, { log });
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

/** Sends a raw CancelRequest to txproxy and waits until txproxy has closed that connection (it has then acted on it). */
async function sendCancel(pid: number, key: Buffer): Promise<void> {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(cancelRequest(pid, key));
  await conn.closed;
}

function keyOf(secret: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeInt32BE(secret);
  return key;
}

/** True once the backend `pid` is running pg_sleep (seen over a direct connection). */
async function sleeping(pid: number): Promise<boolean> {
  const { rows } = await postgres.sql("SELECT state, query FROM pg_stat_activity WHERE pid = $1", [pid]);
  return rows[0]?.state === 'active' && /pg_sleep/.test(rows[0]?.query);
}

t.test('postgres.js query.cancel() cancels a running pg_sleep through txproxy', async (t) => {
  const sql = postgresJs(proxy.url(), { max: 1 });
  t.teardown(() => sql.end());
  const [{ pid }] = await sql`SELECT pg_backend_pid() AS pid`;
  const started = Date.now();
  const query = sql`SELECT pg_sleep(30)`;
  const outcome = query.then(
    () => null,
    (e: { code: string; message: string }) => e,
  );
  await eventually(() => sleeping(pid), 5000, 'pg_sleep to run');
  query.cancel();
  const err = await outcome;
  t.match(err, { code: '57014', message: 'canceling statement due to user request' });
  t.ok(Date.now() - started < 15_000, 'ended long before the 30 s sleep');
  const [{ ok }] = await sql`SELECT 'still usable' AS ok`;
  t.equal(ok, 'still usable', 'the session goes on after the cancel');
});

t.test("a raw CancelRequest with node-postgres' processID and secretKey cancels through txproxy", async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  t.equal(processID, rows[0].pid, 'the client holds the server backend pid, relayed unchanged');
  const outcome = client.query('SELECT pg_sleep(30)').then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  await eventually(() => sleeping(processID), 5000, 'pg_sleep to run');
  await sendCancel(processID, keyOf(secretKey));
  t.match(await outcome, { severity: 'ERROR', code: '57014', message: 'canceling statement due to user request' });
});

t.test('a cancel with a wrong key, or for an unknown pid, is ignored: the statement keeps running', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  records.length = 0;
  const started = Date.now();
  const outcome = client.query('SELECT pg_sleep(1.5) AS slept').then(
    (r) => r,
    (e: pg.DatabaseError) => e,
  );
  await eventually(() => sleeping(processID), 5000, 'pg_sleep to run');
  await sendCancel(processID, keyOf(secretKey ^ 0x5a5a5a5a));
  await sendCancel(processID + 100_000, keyOf(secretKey));
  await sendCancel(processID, Buffer.concat([keyOf(secretKey), Buffer.alloc(28)]));
  t.ok(await sleeping(processID), 'still running after the wrong cancels');
  const result = await outcome;
  t.notOk(result instanceof Error, `the statement completed: ${(result as Error).message ?? ''}`);
  t.ok(Date.now() - started >= 1400, 'it slept its full time');
  t.equal(records.filter((r) => r.msg === 'cancel request for unknown backend ignored').length, 3, 'each ignored cancel is logged');
});

t.test('psql: Ctrl-C (SIGINT) cancels the running statement through txproxy', async (t) => {
  const child = spawn('psql', [`host=127.0.0.1 port=${proxy.port} user=postgres dbname=postgres sslmode=disable`, '-c', 'SELECT pg_sleep(30)'], {
    env: { ...process.env, PGPASSWORD: postgres.password, PGAPPNAME: 'psql-cancel' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await eventually(
    async () => (await postgres.sql("SELECT 1 FROM pg_stat_activity WHERE application_name = 'psql-cancel' AND state = 'active' AND query LIKE '%pg_sleep%'")).rowCount === 1,
    10_000,
    'psql to run pg_sleep',
  );
  child.kill('SIGINT');
  t.not(await exited, 0);
  t.match(stderr, /canceling statement due to user request/);
});
