/**
 * Transaction pooling, the session state txproxy cannot carry: LISTEN,
 * session advisory locks, temporary tables, WITH HOLD cursors, SQL
 * PREPARE, SET ROLE and SET SESSION AUTHORIZATION, and what a statement it
 * cannot read leaves, and LOAD. Client A takes the state on a pool of one server
 * connection: A keeps that server while idle, client B waits for it, A
 * still has its state, and once A gives it up B gets the same backend with
 * none of it left. With two servers B runs meanwhile on the other one and
 * sees none of A's state. Every pin and unpin is counted exactly.
 */
import t, { type Test } from 'tap';
import type pg from 'pg';
import type { PinReason } from '../../src/pool/session-effects.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, type TestProxy } from '../helpers/proxy.js';
import { allLinksIdle, backendPid, directClient, onePool, pinCounts, pinnedClients, pinsSince, startTransactionProxy, startWaiting } from '../helpers/transaction-pool.js';

const postgres = await startPostgres();
const proxy = await startTransactionProxy(postgres, 1);
const wide = await startTransactionProxy(postgres, 2);
t.teardown(async () => {
  await proxy.stop();
  await wide.stop();
  await postgres.stop();
});
await postgres.sql('CREATE ROLE tx_pin_other NOLOGIN');
await postgres.sql('GRANT ALL ON SCHEMA public TO tx_pin_other');
await postgres.sql('CREATE PROCEDURE tx_pin_sets_work_mem() LANGUAGE plpgsql AS $$BEGIN PERFORM set_config($q$work_mem$q$, $q$21MB$q$, false); END$$');

/** Everything a client can see of state its backend holds for it. */
const HELD =
  "SELECT (SELECT count(*)::int FROM pg_listening_channels()) AS listening, (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory, (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp, (SELECT count(*)::int FROM pg_cursors WHERE is_holdable) AS cursors, (SELECT count(*)::int FROM pg_prepared_statements WHERE from_sql) AS prepared, current_user::text AS current_user, session_user::text AS session_user, pg_backend_pid() AS pid";

interface Held {
  listening: number;
  advisory: number;
  temp: number;
  cursors: number;
  prepared: number;
  current_user: string;
  session_user: string;
  pid: number;
}

async function held(client: pg.Client): Promise<Held> {
  return (await client.query(HELD)).rows[0] as Held;
}

function nothingHeld(pid: number): Held {
  return { listening: 0, advisory: 0, temp: 0, cursors: 0, prepared: 0, current_user: postgres.user, session_user: postgres.user, pid };
}

async function clients(t: Test, on: TestProxy = proxy): Promise<{ a: pg.Client; b: pg.Client }> {
  await allLinksIdle(on);
  const a = await on.client({ application_name: 'a' });
  const b = await on.client({ application_name: 'b' });
  t.teardown(async () => {
    await a.end();
    await b.end();
  });
  return { a, b };
}

/** The session id txproxy gave the client that started as `applicationName`. */
function sessionOf(on: TestProxy, applicationName: string): string {
  const found = [...on.app.server.sessions].filter((s) => s.info.applicationName === applicationName);
  if (found.length !== 1) throw new Error(`expected one session named ${applicationName}, found ${found.length}`);
  return found[0].info.id;
}

/** A holds the pool's one server while idle, and B's query waits for it (its promise, wrapped so that awaiting this does not await it). */
async function bWaitsForA<T>(t: Test, query: () => Promise<T>): Promise<{ result: Promise<T> }> {
  const links = onePool(proxy).links;
  t.same(links.map((l) => [l.state, l.client]), [['active', sessionOf(proxy, 'a')]], 'the one server is lent to A, idle as A is');
  const { result, stillWaiting } = await startWaiting(proxy, query);
  t.ok(stillWaiting, 'B waits for it');
  return { result };
}

interface PinCase {
  name: string;
  reason: PinReason;
  take: string;
  /** What A sees of its state while pinned (a query and the answer of its first row). */
  check: [sql: string, row: Record<string, unknown>];
  /** Statements that give up only part of it: A stays pinned. */
  partly?: string;
  release: string;
}

const cases: PinCase[] = [
  { name: 'LISTEN until UNLISTEN *', reason: 'listen', take: 'LISTEN tx_a; LISTEN tx_b', partly: 'UNLISTEN tx_a', check: ['SELECT array_agg(c ORDER BY c)::text AS c FROM pg_listening_channels() c', { c: '{tx_b}' }], release: 'UNLISTEN *' },
  { name: 'pg_advisory_lock until pg_advisory_unlock', reason: 'advisory_lock', take: 'SELECT pg_advisory_lock(4201), pg_advisory_lock(4201)', partly: 'SELECT pg_advisory_unlock(4201)', check: ["SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4201 AND pid = pg_backend_pid()", { n: 1 }], release: 'SELECT pg_advisory_unlock(4201)' },
  { name: 'pg_advisory_lock until pg_advisory_unlock_all', reason: 'advisory_lock', take: 'SELECT pg_advisory_lock(4202), pg_try_advisory_lock_shared(4203)', check: ["SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", { n: 2 }], release: 'SELECT pg_advisory_unlock_all()' },
  { name: 'a temporary table until DROP TABLE', reason: 'temp_table', take: 'CREATE TEMP TABLE tx_tmp (x int); INSERT INTO tx_tmp VALUES (5)', partly: 'CREATE TEMP TABLE tx_tmp2 (y int); DROP TABLE tx_tmp2', check: ['SELECT x FROM tx_tmp', { x: 5 }], release: 'DROP TABLE tx_tmp' },
  { name: 'a temporary table until DISCARD TEMP', reason: 'temp_table', take: 'CREATE TEMP TABLE tx_tmp (x int); INSERT INTO tx_tmp VALUES (6)', check: ['SELECT x FROM tx_tmp', { x: 6 }], release: 'DISCARD TEMP' },
  { name: 'a WITH HOLD cursor until CLOSE', reason: 'hold_cursor', take: 'DECLARE tx_cur CURSOR WITH HOLD FOR SELECT generate_series(1, 5) AS n; FETCH tx_cur', partly: 'CLOSE ALL; DECLARE tx_cur CURSOR WITH HOLD FOR SELECT generate_series(1, 5) AS n; FETCH tx_cur', check: ['FETCH tx_cur', { n: 2 }], release: 'CLOSE tx_cur' },
  { name: 'SQL PREPARE until DEALLOCATE', reason: 'sql_prepare', take: 'PREPARE tx_p AS SELECT 7 AS x', partly: 'PREPARE tx_p2 AS SELECT 8; DEALLOCATE tx_p2', check: ['EXECUTE tx_p', { x: 7 }], release: 'DEALLOCATE tx_p' },
  { name: 'SQL PREPARE until DEALLOCATE ALL', reason: 'sql_prepare', take: 'PREPARE tx_p AS SELECT 9 AS x', check: ['EXECUTE tx_p', { x: 9 }], release: 'DEALLOCATE ALL' },
  { name: 'SET ROLE until RESET ROLE', reason: 'role', take: 'SET ROLE tx_pin_other', check: ['SELECT current_user::text AS u', { u: 'tx_pin_other' }], release: 'RESET ROLE' },
  { name: 'SET SESSION AUTHORIZATION until RESET', reason: 'role', take: 'SET SESSION AUTHORIZATION tx_pin_other', check: ['SELECT session_user::text AS u', { u: 'tx_pin_other' }], release: 'RESET SESSION AUTHORIZATION' },
  { name: "set_config('role', …, false) until SET ROLE NONE", reason: 'role', take: "SELECT set_config('role', 'tx_pin_other', false)", check: ['SELECT current_user::text AS u', { u: 'tx_pin_other' }], release: 'SET ROLE NONE' },
  { name: 'a DO block that takes a lock, until the lock is gone', reason: 'advisory_lock', take: 'DO $$BEGIN PERFORM pg_advisory_lock(4204); END$$', check: ["SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4204 AND pid = pg_backend_pid()", { n: 1 }], release: 'DO $$BEGIN PERFORM pg_advisory_unlock_all(); END$$' },
];

for (const c of cases) {
  t.test(`${c.name}: A keeps its server, B waits, then gets it clean`, async (t) => {
    const { a, b } = await clients(t);
    const before = await pinCounts(proxy);
    const pid = await backendPid(a);
    await a.query(c.take);
    await pinnedClients(proxy, c.reason, 1);
    const { result: waiting } = await bWaitsForA(t, () => held(b));
    if (c.partly !== undefined) {
      await a.query(c.partly);
      t.same(await pinsSince(proxy, before), { taken: { [c.reason]: 1 }, pinned: { [c.reason]: 1 } }, 'giving up part of it leaves A pinned');
      t.equal(onePool(proxy).clients.waiting, 1, 'B still waits');
    }
    t.same((await a.query(c.check[0])).rows[0], c.check[1], 'A still has its state');
    await a.query(c.release);
    t.same(await waiting, nothingHeld(pid), 'B gets the same backend, with nothing of A’s left on it');
    t.same(await pinsSince(proxy, before), { taken: { [c.reason]: 1 }, pinned: {} }, 'one pin, and unpinned');
    t.same(await held(a), nothingHeld(pid), 'A goes on unpinned on the same server');
    await allLinksIdle(proxy);
  });
}

t.test('LISTEN: A receives NOTIFY while pinned and idle; B is no listener', async (t) => {
  const { a, b } = await clients(t);
  const before = await pinCounts(proxy);
  const notified: pg.Notification[] = [];
  a.on('notification', (n) => notified.push(n));
  await a.query('LISTEN tx_news');
  await pinnedClients(proxy, 'listen', 1);
  const { result: waiting } = await bWaitsForA(t, () => b.query("SELECT pg_listening_channels() AS c, pg_notify('tx_news', 'from b') AS sent"));
  const direct = await directClient(postgres);
  t.teardown(() => direct.end());
  await direct.query("NOTIFY tx_news, 'one'");
  await direct.query("NOTIFY tx_news, 'two'");
  await new Promise<void>((resolve) => {
    const poll = (): void => void (notified.length >= 2 ? resolve() : setTimeout(poll, 20));
    poll();
  });
  t.same(notified.map((n) => [n.channel, n.payload]), [['tx_news', 'one'], ['tx_news', 'two']], 'A, idle, gets both');
  await a.query('UNLISTEN *');
  t.same((await waiting).rows, [], 'B listens on no channel');
  t.same(notified.map((n) => n.payload), ['one', 'two'], 'B’s NOTIFY reached no one: A had stopped listening');
  t.same(await pinsSince(proxy, before), { taken: { listen: 1 }, pinned: {} });
});

t.test('LISTEN inside a transaction that rolls back pins nothing', async (t) => {
  const { a, b } = await clients(t);
  const before = await pinCounts(proxy);
  await a.query('BEGIN');
  await a.query('LISTEN tx_never');
  await a.query('CREATE TEMP TABLE tx_never (x int)');
  await a.query('ROLLBACK');
  t.same(await held(b), nothingHeld(await backendPid(a)));
  t.same(await pinsSince(proxy, before), { taken: {}, pinned: {} });
});

t.test('a DO block or CALL that leaves nothing pins nothing; the settings it changed are carried', async (t) => {
  const { a, b } = await clients(t);
  const before = await pinCounts(proxy);
  await a.query('DO $$BEGIN PERFORM 1; END$$');
  await a.query('CALL tx_pin_sets_work_mem()');
  const pid = await backendPid(a);
  t.same(await held(b), nothingHeld(pid), 'B runs between them, on the same backend');
  t.equal((await b.query("SELECT current_setting('work_mem') AS v")).rows[0].v, '4MB', 'B has the default work_mem');
  t.equal((await a.query("SELECT current_setting('work_mem') AS v")).rows[0].v, '21MB', 'A keeps what its CALL set');
  t.same(await pinsSince(proxy, before), { taken: {}, pinned: {} });
});

t.test('a DO block run while pinned: the server is asked what it released', async (t) => {
  const { a, b } = await clients(t);
  const before = await pinCounts(proxy);
  await a.query('LISTEN tx_first; SELECT pg_advisory_lock(4205)');
  await pinnedClients(proxy, 'advisory_lock', 1);
  await a.query('DO $$BEGIN PERFORM pg_advisory_unlock_all(); END$$');
  await pinnedClients(proxy, 'advisory_lock', 0);
  t.same(await pinsSince(proxy, before), { taken: { listen: 1, advisory_lock: 1 }, pinned: { listen: 1 } }, 'still pinned by LISTEN alone; a DO block is no pin of its own');
  const { result: waiting } = await bWaitsForA(t, () => held(b));
  await a.query('UNLISTEN *');
  t.same(await waiting, nothingHeld(await backendPid(a)));
  t.same(await pinsSince(proxy, before), { taken: { listen: 1, advisory_lock: 1 }, pinned: {} });
});

t.test('LOAD pins to the end of the session: that server is closed, never handed on', async (t) => {
  await allLinksIdle(proxy);
  const before = await pinCounts(proxy);
  const a = await proxy.client({ application_name: 'a' });
  const b = await proxy.client({ application_name: 'b' });
  t.teardown(() => b.end());
  const pid = await backendPid(a);
  await a.query("LOAD 'plpgsql'");
  await pinnedClients(proxy, 'load', 1);
  await a.query('SELECT 1');
  t.same(await pinsSince(proxy, before), { taken: { load: 1 }, pinned: { load: 1 } }, 'no statement releases it');
  const { result: waiting } = await bWaitsForA(t, () => held(b));
  await a.end();
  const seen = await waiting;
  t.not(seen.pid, pid, 'B gets a new backend');
  t.same(seen, nothingHeld(seen.pid));
  t.same(await pinsSince(proxy, before), { taken: { load: 1 }, pinned: {} });
  await eventually(async () => (await postgres.sql('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n === 0, 10_000, 'A’s backend gone');
});

t.test('RESET ALL while pinned returns A to its own startup values', async (t) => {
  const { a } = await clients(t);
  await a.query('CREATE TEMP TABLE tx_reset (x int)');
  await a.query("SET application_name = 'renamed'");
  await a.query('RESET ALL');
  t.equal((await a.query("SELECT current_setting('application_name') AS v")).rows[0].v, 'a');
  await a.query('DROP TABLE tx_reset');
});

t.test('two servers: B runs while A holds every kind of state, and sees none of it', async (t) => {
  const { a, b } = await clients(t, wide);
  const before = await pinCounts(wide);
  await a.query('LISTEN tx_wide; SELECT pg_advisory_lock(4301); CREATE TEMP TABLE tx_wide (x int)');
  await a.query('DECLARE tx_wide_c CURSOR WITH HOLD FOR SELECT 1; PREPARE tx_wide_p AS SELECT 1');
  await a.query('SET ROLE tx_pin_other');
  const aPid = (await held(a)).pid;
  for (const reason of ['listen', 'advisory_lock', 'temp_table', 'hold_cursor', 'sql_prepare', 'role'] as const) await pinnedClients(wide, reason, 1);
  const seen = await held(b);
  t.not(seen.pid, aPid, 'B runs on the other server');
  t.same(seen, nothingHeld(seen.pid), 'B has none of A’s state as its own');
  t.same((await b.query("SELECT to_regclass('tx_wide') AS r, (SELECT array_agg(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4301) AS holders, pg_try_advisory_xact_lock(4301) AS free")).rows[0], { r: null, holders: [aPid], free: false }, 'A’s lock is A’s backend’s: B cannot take it');
  t.same(await held(a), { listening: 1, advisory: 1, temp: 1, cursors: 1, prepared: 1, current_user: 'tx_pin_other', session_user: postgres.user, pid: aPid }, 'A has it all');
  await a.query('DISCARD ALL');
  for (const reason of ['listen', 'advisory_lock', 'temp_table', 'hold_cursor', 'sql_prepare', 'role'] as const) await pinnedClients(wide, reason, 0);
  t.same(await pinsSince(wide, before), { taken: { listen: 1, advisory_lock: 1, temp_table: 1, hold_cursor: 1, sql_prepare: 1, role: 1 }, pinned: {} }, 'DISCARD ALL unpins every reason');
  await allLinksIdle(wide);
});
