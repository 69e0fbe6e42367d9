/**
 * Real clients through transaction pooling on a pool of two server
 * connections, each used as its own documentation says: node-postgres with
 * named prepared statements, transactions from more clients than the pool
 * has links and a large result; postgres.js with its automatic prepared
 * statements; psql scripts; LISTEN/NOTIFY.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import pg from 'pg';
import postgresJs from 'postgres';
import type { PoolSnapshot } from '../../src/pool/pool-snapshot.js';
import { findProgram, psql } from '../helpers/cli.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { startTransactionProxy } from '../helpers/transaction-pool.js';
import { checkTraceInvariants, resetRecords } from '../helpers/trace-checks.js';

const POOL_SIZE = 2;
const postgres = await startPostgres();
const proxy = await startTransactionProxy(postgres, POOL_SIZE);
const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-txpool-clients-'));
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
});
await postgres.sql('CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)');
await postgres.sql('CREATE TABLE events (client int NOT NULL, seq int NOT NULL, backend int NOT NULL, PRIMARY KEY (client, seq))');

t.beforeEach(async () => {
  await postgres.sql('TRUNCATE counters, events');
  resetRecords(proxy);
});

const pool = (): PoolSnapshot => proxy.app.pools!.manager.snapshot()[0];
/** Waits until every client left and no link is lent. */
const settled = () => eventually(() => proxy.app.server.sessions.size === 0 && pool().servers.active === 0, 10_000, 'clients to leave');

async function clients(n: number, name: string): Promise<pg.Client[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => proxy.client({ application_name: `${name}-${i}` })));
}

t.test('node-postgres: named prepared statements, used by many clients on whichever server is free', async (t) => {
  const all = await clients(8, 'named');
  t.teardown(() => Promise.all(all.map((c) => c.end())));
  const add = (values: unknown[]) => ({ name: 'add', text: 'SELECT $1::int + $2::int AS sum, pg_backend_pid() AS pid', values });
  const upsert = (values: unknown[]) => ({ name: 'upsert', text: 'INSERT INTO counters VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = counters.n + 1 RETURNING n', values });
  const pids = new Set<number>();
  await Promise.all(
    all.map(async (client, i) => {
      for (let round = 0; round < 10; round++) {
        // node-postgres parses a named statement once per connection, then only binds it.
        const { rows } = await client.query(add([i, round]));
        t.equal(rows[0].sum, i + round);
        pids.add(rows[0].pid);
        await client.query('BEGIN');
        await client.query(upsert([i]));
        await client.query(upsert([100 + (round % 3)]));
        await client.query('COMMIT');
      }
    }),
  );
  t.equal(pids.size, POOL_SIZE, 'the statements ran on both servers');
  const counters = (await postgres.sql('SELECT id, n FROM counters ORDER BY id')).rows;
  t.same(counters, [...all.map((_, i) => ({ id: i, n: 10 })), { id: 100, n: 32 }, { id: 101, n: 24 }, { id: 102, n: 24 }]);
  const names = new Set(proxy.statements.filter((s) => s.protocol === 'extended').map((s) => s.statementName));
  t.same([...names].sort(), ['add', 'upsert'], 'traced under the names the clients gave');
  t.same(proxy.statements.filter((s) => s.error !== null).map((s) => s.error!.message), [], 'no statement failed');
  for (const link of pool().links) {
    const { rows } = await postgres.sql('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [link.backend_pid]);
    t.equal(rows[0].n, 1, `link ${link.backend_pid} is alive`);
  }
  checkTraceInvariants(t, proxy);
});

t.test('node-postgres: twelve clients in transactions on a pool of two; each transaction stays on one server', async (t) => {
  const all = await clients(12, 'tx');
  t.teardown(() => Promise.all(all.map((c) => c.end())));
  let rolledBack = 0;
  await Promise.all(
    all.map(async (client, i) => {
      for (let seq = 0; seq < 15; seq++) {
        await client.query('BEGIN');
        const first = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        await client.query('INSERT INTO events VALUES ($1, $2, pg_backend_pid())', [i, seq]);
        await client.query("SET LOCAL application_name = 'inside'");
        const last = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        t.equal(last, first, 'one server for the whole transaction');
        if (seq % 5 === 4) {
          await client.query('ROLLBACK');
          rolledBack++;
        } else await client.query('COMMIT');
        const app = (await client.query("SELECT current_setting('application_name') AS app")).rows[0].app;
        if (app !== `tx-${i}`) t.fail(`client ${i} sees application_name ${app}`);
      }
    }),
  );
  t.equal(rolledBack, 12 * 3);
  const rows = (await postgres.sql('SELECT client, count(*)::int AS n, count(DISTINCT backend)::int AS backends FROM events GROUP BY client ORDER BY client')).rows;
  t.same(rows.map((r) => r.n), Array(12).fill(12), 'every committed insert is there, no rolled-back one');
  t.ok(rows.some((r) => r.backends === POOL_SIZE), "a client's transactions ran on both servers");
  const explicit = proxy.transactions.filter((x) => !x.implicit);
  t.equal(explicit.filter((x) => x.outcome === 'commit').length, 12 * 12);
  t.equal(explicit.filter((x) => x.outcome === 'rollback').length, 12 * 3);
  checkTraceInvariants(t, proxy);
});

t.test('node-postgres: a large result arrives whole while other clients share the other server', async (t) => {
  const [big, ...others] = await clients(5, 'large');
  t.teardown(() => Promise.all([big, ...others].map((c) => c.end())));
  const large = big.query("SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 150000) AS g");
  let small = 0;
  const busy = others.map(async (client) => {
    for (let i = 0; i < 20; i++) {
      t.equal((await client.query('SELECT $1::int * 2 AS v', [i])).rows[0].v, i * 2);
      small++;
    }
  });
  const result = await large;
  await Promise.all(busy);
  t.equal(result.rowCount, 150000);
  t.equal(result.rows.at(-1).g, 150000);
  t.ok(result.rows.every((r, i) => r.g === i + 1 && r.pad.length === 200), 'every row whole and in order');
  t.equal(small, 80);
  t.equal((await big.query('SELECT 1 AS one')).rows[0].one, 1, 'the client goes on after it');
  await eventually(() => pool().servers.active === 0, 5000, 'the links back in the pool');
});

t.test('postgres.js with prepare: true (its default): many clients on a pool of two', async (t) => {
  const instances = Array.from({ length: 6 }, () => postgresJs(proxy.url(), { max: 2, prepare: true, onnotice: () => undefined }));
  t.teardown(() => Promise.all(instances.map((sql) => sql.end({ timeout: 5 }))));
  await Promise.all(
    instances.flatMap((sql, i) =>
      Array.from({ length: 2 }, async (_, lane) => {
        for (let round = 0; round < 12; round++) {
          const [row] = await sql`SELECT ${i}::int * 100 + ${round}::int AS v, ${'t' + lane}::text AS lane`;
          t.same(row, { v: i * 100 + round, lane: 't' + lane });
          const id = i * 10 + lane;
          await sql.begin(async (tx) => {
            await tx`INSERT INTO counters VALUES (${id}, 1) ON CONFLICT (id) DO UPDATE SET n = counters.n + 1`;
            const [{ n }] = await tx`SELECT n FROM counters WHERE id = ${id}`;
            t.equal(n, round + 1);
          });
        }
      }),
    ),
  );
  const counters = (await postgres.sql('SELECT count(*)::int AS rows, sum(n)::int AS total FROM counters')).rows[0];
  t.same(counters, { rows: 12, total: 144 });
  const named = proxy.statements.filter((s) => s.protocol === 'extended' && s.statementName !== '' && s.statementName !== null);
  t.ok(named.length >= 3 * 144, `postgres.js ran its statements prepared under names (${named.length})`);
  t.same(proxy.statements.filter((s) => s.error !== null).map((s) => `${s.error!.code} ${s.error!.message}`), [], 'no statement failed');
  t.equal(proxy.transactions.filter((x) => !x.implicit && x.outcome === 'commit').length, 144);
  checkTraceInvariants(t, proxy);
});

t.test('psql: scripts with \\set variables, BEGIN/COMMIT and several statements, four at once', { skip: findProgram('psql') === null }, async (t) => {
  const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };
  writeFileSync(
    path.join(dir, 'script.sql'),
    `\\set base 1000
\\set step 7
BEGIN;
INSERT INTO counters VALUES (:base + :client, :step);
UPDATE counters SET n = n * 2 WHERE id = :base + :client;
SELECT n FROM counters WHERE id = :base + :client;
COMMIT;
SELECT 'a' AS x; SELECT 'b' AS y;
BEGIN;
INSERT INTO counters VALUES (:base + :client + 100, 1);
ROLLBACK;
SELECT count(*) FROM counters WHERE id = :base + :client + 100;
SET statement_timeout = '4s';
SHOW statement_timeout;
`,
  );
  const results = await Promise.all([0, 1, 2, 3].map((client) => psql(endpoint, ['-v', `client=${client}`, '-f', 'script.sql'], { cwd: dir })));
  for (const result of results) {
    t.equal(result.code, 0, result.stderr);
    t.equal(result.stdout, '14\na\nb\n0\n4s\n');
  }
  const multi = await psql(endpoint, ['-c', 'INSERT INTO counters VALUES (1, 1); INSERT INTO counters VALUES (2, 2); SELECT sum(n) FROM counters WHERE id < 3']);
  t.equal(multi.code, 0, multi.stderr);
  t.equal(multi.stdout, '3\n', 'a multi-statement -c runs as one implicit transaction');
  const rows = (await postgres.sql('SELECT id, n FROM counters ORDER BY id')).rows;
  t.same(rows, [{ id: 1, n: 1 }, { id: 2, n: 2 }, ...[0, 1, 2, 3].map((c) => ({ id: 1000 + c, n: 14 }))]);
  await settled();
  checkTraceInvariants(t, proxy);
});

t.test('LISTEN/NOTIFY: a listening client gets what other clients send through txproxy and directly', async (t) => {
  const listener = await proxy.client({ application_name: 'listener' });
  const senders = await clients(3, 'sender');
  t.teardown(() => Promise.all([listener, ...senders].map((c) => c.end())));
  const received: string[] = [];
  listener.on('notification', (n) => received.push(`${n.channel}:${n.payload}`));
  await listener.query('LISTEN jobs');
  await eventually(() => pool().links.some((link) => link.state === 'active'), 5000, 'the listener to keep its server');
  await Promise.all(senders.map((sender, i) => sender.query("SELECT pg_notify('jobs', $1)", [`proxied-${i}`])));
  await postgres.sql("NOTIFY jobs, 'direct'");
  // Sent inside a transaction: delivered at its COMMIT, not before. (The
  // listener and that transaction hold both servers of the pool meanwhile.)
  await senders[0].query('BEGIN');
  await senders[0].query("NOTIFY jobs, 'committed'");
  await postgres.sql("NOTIFY jobs, 'during'");
  await eventually(() => received.includes('jobs:during'), 5000, 'the notification sent meanwhile');
  t.notOk(received.includes('jobs:committed'), 'nothing before COMMIT');
  await senders[0].query('COMMIT');
  await eventually(() => received.length === 6, 5000, 'six notifications');
  t.same([...received].sort(), ['jobs:committed', 'jobs:direct', 'jobs:during', 'jobs:proxied-0', 'jobs:proxied-1', 'jobs:proxied-2']);
  t.equal((await listener.query('SELECT 5 AS five')).rows[0].five, 5, 'the listener still runs queries');
  await listener.query('UNLISTEN *');
  await eventually(() => pool().servers.active === 0, 5000, 'the listener to give its server back after UNLISTEN');
  received.length = 0;
  await senders[2].query("NOTIFY jobs, 'too late'");
  await postgres.sql("NOTIFY jobs, 'too late'");
  await listener.query('SELECT 1');
  await new Promise((r) => setTimeout(r, 200));
  t.same(received, [], 'nothing after UNLISTEN');
});
