/**
 * What traces keep of SQL and of server messages, against a real server:
 * the string syntax follows the session's standard_conforming_strings,
 * passwords never appear in clear in any trace.sql mode, and in redacted
 * mode the values the server quotes in error messages are blanked too.
 */
import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { extended, rawClient, serialize } from '../helpers/exact-client.js';

// Roles created here log in with a password; everyone else is trusted.
const server = await startPostgres({ hba: 'host all /^pw_ 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\nlocal all all trust\n' });
const redacted = await startProxy(server, {
  trace: { sql: 'redacted' },
  policies: { rules: [{ name: 'reports-read-only', match: { application_name: 'reports' }, mode: 'read-only' }] },
});
const full = await startProxy(server, { trace: { sql: 'full' } });
t.teardown(async () => {
  await redacted.stop();
  await full.stop();
  await server.stop();
});
await server.sql('CREATE TABLE items (id int PRIMARY KEY, name text)');

t.beforeEach(async () => {
  await server.sql('TRUNCATE items');
  for (const proxy of [redacted, full]) {
    proxy.trace.records.length = 0;
    proxy.statements.length = 0;
    proxy.transactions.length = 0;
  }
});

const traceText = (proxy: typeof redacted) => proxy.trace.records.map((r) => JSON.stringify(r)).join('\n');
const statementRecords = (proxy: typeof redacted) => proxy.trace.records.filter((r) => r.kind === 'statement');

async function canLogIn(user: string, password: string): Promise<boolean> {
  const client = new pg.Client({ host: server.host, port: server.port, user, password, database: 'postgres' });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

t.test('redacted: with standard_conforming_strings off, a password with a backslash-escaped quote is blanked whole', async (t) => {
  await server.sql('DROP ROLE IF EXISTS pw_escaped');
  await server.sql('CREATE ROLE pw_escaped LOGIN');
  const client = await redacted.client();
  t.teardown(() => client.end());
  await client.query('SET standard_conforming_strings = off');
  await client.query("ALTER ROLE pw_escaped PASSWORD 'ab\\'secret'");
  await client.query("SELECT 'it\\'s', 42 AS n");
  await redacted.waitForTransactions(3);
  t.ok(await canLogIn('pw_escaped', "ab'secret"), 'the server read one string: the password is ab\'secret');
  t.same(
    statementRecords(redacted).map((r) => r['db.query.text']),
    ['SET standard_conforming_strings = off', 'ALTER ROLE pw_escaped PASSWORD ?', 'SELECT ?, ? AS n'],
  );
  t.notMatch(traceText(redacted), /secret/, 'no part of the password in the trace');
});

t.test('redacted: a SET and a Parse pipelined in one batch read the Parse with the new setting', async (t) => {
  const raw = await rawClient(redacted.port, { user: server.user, database: 'postgres' });
  t.teardown(() => raw.end());
  const answers = await raw.exchange([...extended('SET standard_conforming_strings = off', [], false), ...extended("SELECT 'x\\'hidden' AS s")], 1);
  t.same(
    answers.filter((a) => a.startsWith('CC') || a.startsWith('E')),
    ['CC(SET)', 'CC(SELECT 1)'],
    'the server read one string',
  );
  await redacted.waitForTransactions(1);
  t.same(
    statementRecords(redacted).map((r) => r['db.query.text']),
    ['SET standard_conforming_strings = off', 'SELECT ? AS s'],
  );
  t.notMatch(traceText(redacted), /hidden/);
});

t.test('read-only: with standard_conforming_strings off, a write behind an escaped quote is refused', async (t) => {
  await server.sql("INSERT INTO items VALUES (1, 'keep')");
  const client = await redacted.client({ application_name: 'reports' });
  t.teardown(() => client.end());
  await client.query('SET standard_conforming_strings = off');
  // Read with the setting on, this is one SELECT of one string; the server, with it off, also runs the DELETE.
  await t.rejects(client.query("SELECT 'a\\''; DELETE FROM items; --'"), { code: '25006' });
  t.same((await server.sql('SELECT count(*)::int AS n FROM items')).rows, [{ n: 1 }], 'the row is still there');
});

t.test('redacted: values quoted in server error messages are blanked in statement and transaction records', async (t) => {
  const client = await redacted.client();
  t.teardown(() => client.end());
  await t.rejects(client.query("SELECT 'secret133'::int"), { message: 'invalid input syntax for type integer: "secret133"' }, 'the client gets the message whole');
  await client.query("INSERT INTO items VALUES (1, 'a')");
  await t.rejects(client.query("INSERT INTO items VALUES (1, 'b')"), { code: '23505' });
  await t.rejects(client.query({ text: 'SELECT $1::int', values: ['secret134'] }), { code: '22P02' });
  await redacted.waitForTransactions(4);
  const errors = statementRecords(redacted)
    .filter((r) => r['error.message'] !== undefined)
    .map((r) => r['error.message']);
  t.same(errors, [
    'invalid input syntax for type integer: "?"',
    'duplicate key value violates unique constraint "items_pkey"',
    'invalid input syntax for type integer: "?"',
  ]);
  t.match(redacted.trace.records.filter((r) => r.kind === 'transaction' && r.first_error !== undefined), [
    { first_error: { code: '22P02', message: 'invalid input syntax for type integer: "?"' } },
    { first_error: { code: '23505', message: 'duplicate key value violates unique constraint "items_pkey"' } },
    { first_error: { code: '22P02', message: 'invalid input syntax for type integer: "?"' } },
  ]);
  t.notMatch(traceText(redacted), /secret13/);
});

t.test('full: CREATE/ALTER ROLE passwords are never written in clear, simple or extended protocol', async (t) => {
  await server.sql('DROP ROLE IF EXISTS pw_simple');
  await server.sql('DROP ROLE IF EXISTS pw_extended');
  const client = await full.client();
  t.teardown(() => client.end());
  await client.query("CREATE ROLE pw_simple LOGIN PASSWORD 'hunter2'");
  await client.query({ text: "CREATE ROLE pw_extended LOGIN ENCRYPTED PASSWORD 'hunter3'", queryMode: 'extended' } as pg.QueryConfig);
  await client.query("ALTER USER pw_simple WITH PASSWORD 'hunter4' VALID UNTIL 'infinity'");
  await t.rejects(client.query('ALTER ROLE pw_simple PASSWORD hunter5'), { code: '42601' });
  await client.query("SELECT 'hunter6' AS kept");
  await full.waitForTransactions(5);
  t.ok(await canLogIn('pw_simple', 'hunter4'));
  t.ok(await canLogIn('pw_extended', 'hunter3'));
  t.same(
    statementRecords(full).map((r) => [r['db.query.text'], r['pg.protocol'], r['error.message'] ?? null]),
    [
      ['CREATE ROLE pw_simple LOGIN PASSWORD ?', 'simple', null],
      ['CREATE ROLE pw_extended LOGIN ENCRYPTED PASSWORD ?', 'extended', null],
      ["ALTER USER pw_simple WITH PASSWORD ? VALID UNTIL 'infinity'", 'simple', null],
      ['ALTER ROLE pw_simple PASSWORD ?', 'simple', 'syntax error at or near "?"'],
      ["SELECT 'hunter6' AS kept", 'simple', null],
    ],
    'everything else as sent',
  );
  t.notMatch(traceText(full), /hunter[2-5]/);
});
