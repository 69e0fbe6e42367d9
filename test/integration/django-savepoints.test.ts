/**
 * Nested savepoints exactly as Django's `transaction.atomic()` emits them
 * (quoted ids like "s1403_x1"; an inner block that fails is rolled back to
 * its savepoint, then released), sent by node-postgres through txproxy, and
 * checked in the NDJSON trace records: depths, outcomes, counts.
 */
import t from 'tap';
import type pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { checkTraceInvariants, resetRecords, sessionIdOf, statementRecords, transactionRecords } from '../helpers/trace-checks.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL)');

t.beforeEach(async () => {
  await postgres.sql('TRUNCATE orders');
  resetRecords(proxy);
});

/**
 * Django's Atomic, reduced to the SQL it sends on PostgreSQL with
 * autocommit on: the outermost block BEGINs and COMMITs (ROLLBACK on an
 * exception); a nested one uses SAVEPOINT "s<thread>_x<n>", RELEASE on
 * success, ROLLBACK TO then RELEASE on an exception, which it re-raises.
 */
class Django {
  private depth = 0;
  private savepointState = 0;
  constructor(
    private readonly client: pg.Client,
    private readonly thread = 1403,
  ) {}

  async atomic<T>(block: () => Promise<T>): Promise<T> {
    const outermost = this.depth === 0;
    let sid: string | null = null;
    if (outermost) await this.client.query('BEGIN');
    else {
      this.savepointState++;
      sid = `s${this.thread}_x${this.savepointState}`;
      await this.client.query(`SAVEPOINT "${sid}"`);
    }
    this.depth++;
    try {
      const result = await block();
      this.depth--;
      if (outermost) await this.client.query('COMMIT');
      else await this.client.query(`RELEASE SAVEPOINT "${sid}"`);
      return result;
    } catch (err) {
      this.depth--;
      if (outermost) await this.client.query('ROLLBACK');
      else {
        await this.client.query(`ROLLBACK TO SAVEPOINT "${sid}"`);
        await this.client.query(`RELEASE SAVEPOINT "${sid}"`);
      }
      throw err;
    }
  }

  query(text: string): Promise<pg.QueryResult> {
    return this.client.query(text);
  }
}

/** The server pid node-postgres learned from BackendKeyData (not in its type definitions). */
function backendPid(client: pg.Client): number {
  return (client as unknown as { processID: number }).processID;
}

async function statuses(): Promise<Record<number, string>> {
  const rows = (await postgres.sql('SELECT id, status FROM orders ORDER BY id')).rows;
  return Object.fromEntries(rows.map((r) => [r.id, r.status]));
}

/** [SQL, depth after it, SQLSTATE or null] per statement record of the session. */
function transcript(sessionId: string): [unknown, unknown, unknown][] {
  return statementRecords(proxy, sessionId).map((r) => [r['db.query.text'], r['pg.savepoint_depth'], r['db.response.status_code']]);
}

t.test('an inner block fails and is rolled back to its savepoint while the outer block commits', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const django = new Django(client);
  const sessionId = sessionIdOf(proxy, backendPid(client));

  await django.atomic(async () => {
    await django.query("INSERT INTO orders VALUES (1, 'new')");
    await django.atomic(async () => {
      await django.query("UPDATE orders SET status = 'paid' WHERE id = 1");
    });
    await t.rejects(
      django.atomic(async () => {
        await django.query("INSERT INTO orders VALUES (2, 'new')");
        await django.query("INSERT INTO orders VALUES (1, 'duplicate')");
      }),
      { code: '23505' },
    );
    await django.atomic(async () => {
      await django.query("INSERT INTO orders VALUES (3, 'new')");
      await t.rejects(
        django.atomic(async () => {
          await django.query("UPDATE orders SET status = NULL WHERE id = 3");
        }),
        { code: '23502' },
      );
    });
  });
  t.same(await statuses(), { 1: 'paid', 3: 'new' }, 'the failed inner blocks left nothing, the rest committed');
  await proxy.waitForTransactions(1);

  t.same(transcript(sessionId), [
    ['BEGIN', 0, null],
    ["INSERT INTO orders VALUES (1, 'new')", 0, null],
    ['SAVEPOINT "s1403_x1"', 1, null],
    ["UPDATE orders SET status = 'paid' WHERE id = 1", 1, null],
    ['RELEASE SAVEPOINT "s1403_x1"', 0, null],
    ['SAVEPOINT "s1403_x2"', 1, null],
    ["INSERT INTO orders VALUES (2, 'new')", 1, null],
    ["INSERT INTO orders VALUES (1, 'duplicate')", 1, '23505'],
    ['ROLLBACK TO SAVEPOINT "s1403_x2"', 1, null],
    ['RELEASE SAVEPOINT "s1403_x2"', 0, null],
    ['SAVEPOINT "s1403_x3"', 1, null],
    ["INSERT INTO orders VALUES (3, 'new')", 1, null],
    ['SAVEPOINT "s1403_x4"', 2, null],
    ['UPDATE orders SET status = NULL WHERE id = 3', 2, '23502'],
    ['ROLLBACK TO SAVEPOINT "s1403_x4"', 2, null],
    ['RELEASE SAVEPOINT "s1403_x4"', 1, null],
    ['RELEASE SAVEPOINT "s1403_x3"', 0, null],
    ['COMMIT', 0, null],
  ]);
  t.same(
    statementRecords(proxy, sessionId).map((r) => [r['pg.tx_status_before'], r['pg.tx_status_after']]).slice(6, 10),
    [
      ['T', 'T'],
      ['T', 'E'],
      ['E', 'T'],
      ['T', 'T'],
    ],
    'the error leaves the block failed until ROLLBACK TO recovers it',
  );
  const [tx] = transactionRecords(proxy, sessionId);
  t.match(tx, {
    outcome: 'commit',
    implicit: false,
    statements: 18,
    writes: 4,
    'savepoints.created': 4,
    'savepoints.released': 4,
    'savepoints.rolled_back': 2,
    'savepoints.max_depth': 2,
    first_error: { code: '23505' },
  });
  t.equal(new Set(statementRecords(proxy, sessionId).map((r) => r['transaction.id'])).size, 1, 'every statement carries the one transaction id');
  checkTraceInvariants(t, proxy);
});

t.test('an error that escapes the outermost block: ROLLBACK, outcome failed', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const django = new Django(client, 77);
  const sessionId = sessionIdOf(proxy, backendPid(client));
  await t.rejects(
    django.atomic(async () => {
      await django.query("INSERT INTO orders VALUES (5, 'new')");
      await django.atomic(async () => {
        await django.query("INSERT INTO orders VALUES (5, 'again')");
      });
    }),
    { code: '23505' },
  );
  t.same(await statuses(), {});
  await proxy.waitForTransactions(1);
  t.same(transcript(sessionId), [
    ['BEGIN', 0, null],
    ["INSERT INTO orders VALUES (5, 'new')", 0, null],
    ['SAVEPOINT "s77_x1"', 1, null],
    ["INSERT INTO orders VALUES (5, 'again')", 1, '23505'],
    ['ROLLBACK TO SAVEPOINT "s77_x1"', 1, null],
    ['RELEASE SAVEPOINT "s77_x1"', 0, null],
    ['ROLLBACK', 0, null],
  ]);
  // The inner error was recovered by ROLLBACK TO: the final ROLLBACK is the application's choice.
  t.match(transactionRecords(proxy, sessionId)[0], { outcome: 'rollback', 'savepoints.rolled_back': 1, first_error: { code: '23505' } });
  checkTraceInvariants(t, proxy);
});

t.test('an error in the outermost block itself: the transaction is failed, ROLLBACK ends it', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const django = new Django(client);
  const sessionId = sessionIdOf(proxy, backendPid(client));
  await t.rejects(
    django.atomic(async () => {
      await django.query("INSERT INTO orders VALUES (6, 'new')");
      await django.query("INSERT INTO orders VALUES (6, 'again')");
    }),
    { code: '23505' },
  );
  await proxy.waitForTransactions(1);
  t.match(transactionRecords(proxy, sessionId)[0], { outcome: 'failed', statements: 4, first_error: { code: '23505' } });
  checkTraceInvariants(t, proxy);
});

t.test('quoted names are case-sensitive, unquoted ones fold: "A" and a are two savepoints', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const sessionId = sessionIdOf(proxy, backendPid(client));
  await client.query('BEGIN');
  await client.query('SAVEPOINT "A"');
  await client.query('SAVEPOINT A'); // folds to a
  await client.query('SAVEPOINT "a"'); // the same name as the previous one: the newest wins
  await client.query('ROLLBACK TO SAVEPOINT a'); // the newest "a": depth stays 3
  await client.query('RELEASE SAVEPOINT "A"'); // drops "A" and everything newer
  await t.rejects(client.query('RELEASE SAVEPOINT a'), { code: '3B001' }, 'no savepoint a is left');
  await client.query('ROLLBACK');
  await proxy.waitForTransactions(1);
  t.same(transcript(sessionId), [
    ['BEGIN', 0, null],
    ['SAVEPOINT "A"', 1, null],
    ['SAVEPOINT A', 2, null],
    ['SAVEPOINT "a"', 3, null],
    ['ROLLBACK TO SAVEPOINT a', 3, null],
    ['RELEASE SAVEPOINT "A"', 0, null],
    ['RELEASE SAVEPOINT a', 0, '3B001'],
    ['ROLLBACK', 0, null],
  ]);
  t.match(transactionRecords(proxy, sessionId)[0], { outcome: 'failed', 'savepoints.created': 3, 'savepoints.released': 3, 'savepoints.max_depth': 3 });
  checkTraceInvariants(t, proxy);
});
