/**
 * The message length guard: a client message whose length field is
 * nonsense (below 4, or above max_message_length) gets FATAL 08P01 and the
 * connection is closed; when the client was inside a transaction, the
 * server backend is gone and nothing it wrote stays.
 */
import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { errorFieldsOf, messageWithLength, RawConnection, startupMessage } from '../helpers/raw-connection.js';
import { serialize } from '../helpers/messages.js';

const postgres = await startPostgres({
  hba: ['local all all trust', 'host all postgres 127.0.0.1/32 scram-sha-256', 'host all trusted 127.0.0.1/32 trust', ''].join('\n'),
});
await postgres.sql('CREATE ROLE trusted LOGIN');
await postgres.sql('CREATE TABLE guarded (note text)');
await postgres.sql('GRANT INSERT, SELECT ON guarded TO trusted');
const LIMIT = 64 * 1024;
const proxy = await startProxy(postgres);
const limited = await startProxy(postgres, { max_message_length: LIMIT });
t.teardown(async () => {
  await proxy.stop();
  await limited.stop();
  await postgres.stop();
});

/** Logs in as `trusted`, opens a transaction and inserts `note`; returns the connection and its backend pid. */
async function openTransaction(port: number, note: string): Promise<{ conn: RawConnection; pid: number }> {
  const conn = await RawConnection.connect(port);
  conn.write(startupMessage({ user: 'trusted', database: 'postgres' }));
  const startup = await conn.readUntil('Z');
  const pid = startup.find((m) => m.type === 'K')!.body.readInt32BE(0);
  conn.write(serialize.query('BEGIN'));
  await conn.readUntil('Z');
  conn.write(serialize.query(`INSERT INTO guarded VALUES ('${note}')`));
  const ready = (await conn.readUntil('Z')).at(-1)!;
  if (ready.body[0] !== 0x54) throw new Error('not in a transaction block');
  return { conn, pid };
}

async function backendGone(pid: number): Promise<void> {
  await eventually(async () => (await postgres.sql('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0, 5000, `backend ${pid} to exit`);
}

async function noteCount(note: string): Promise<number> {
  return (await postgres.sql('SELECT count(*)::int AS n FROM guarded WHERE note = $1', [note])).rows[0].n;
}

const NONSENSE: [string, number][] = [
  ['0x7fffffff', 0x7fffffff],
  ['3', 3],
  ['0', 0],
  ['-1', -1],
];

for (const [label, length] of NONSENSE) {
  t.test(`a Query claiming ${label} bytes inside a transaction: FATAL 08P01, close, backend gone, no row`, async (t) => {
    const note = `length ${label}`;
    const { conn, pid } = await openTransaction(proxy.port, note);
    t.equal((await postgres.sql("SELECT state FROM pg_stat_activity WHERE pid = $1", [pid])).rows[0]?.state, 'idle in transaction');
    conn.write(messageWithLength('Q', length, Buffer.from('SELECT 1\0')));
    const error = await conn.readMessage();
    t.equal(error.type, 'E');
    t.match(errorFieldsOf(error), { severity: 'FATAL', code: '08P01', message: /^invalid message: / , hint: /rolled back/ });
    await conn.closed;
    await backendGone(pid);
    t.equal(await noteCount(note), 0, 'the insert was rolled back');
  });
}

t.test('the same when the bad header arrives split across two packets', async (t) => {
  const note = 'split header';
  const { conn, pid } = await openTransaction(proxy.port, note);
  const bad = messageWithLength('Q', 0x7fffffff);
  conn.write(bad.subarray(0, 2));
  await new Promise((r) => setTimeout(r, 50));
  conn.write(bad.subarray(2));
  t.match(errorFieldsOf(await conn.readMessage()), { severity: 'FATAL', code: '08P01' });
  await conn.closed;
  await backendGone(pid);
  t.equal(await noteCount(note), 0);
});

t.test('a nonsense length during authentication: FATAL 08P01 and close', async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupMessage({ user: 'postgres', database: 'postgres' }));
  const sasl = await conn.readMessage();
  t.equal(sasl.type, 'R');
  conn.write(messageWithLength('p', 0x7fffffff));
  t.match(errorFieldsOf(await conn.readMessage()), { severity: 'FATAL', code: '08P01' });
  await conn.closed;
});

t.test('max_message_length is configurable: a message over it is refused, one under it passes', async (t) => {
  const client = new pg.Client(limited.connection());
  await client.connect();
  const under = 'u'.repeat(LIMIT - 1024);
  t.equal((await client.query(`SELECT length('${under}') AS n`)).rows[0].n, under.length);
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  await client.query('BEGIN');
  await client.query("INSERT INTO guarded VALUES ('over the limit')");
  client.on('error', () => undefined);
  const over = 'o'.repeat(LIMIT + 1);
  const err = await client.query(`SELECT length('${over}')`).then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  t.match(err, {
    severity: 'FATAL',
    code: '08P01',
    message: `invalid message: message type 'Q' of ${over.length + 'SELECT length(\'\')'.length + 5} bytes exceeds the limit of ${LIMIT} bytes`,
    hint: /Raise max_message_length/,
  });
  await backendGone(rows[0].pid);
  t.equal(await noteCount('over the limit'), 0);
  await limited.waitForTransactions(3);
  t.equal(limited.transactions.at(-1)?.outcome, 'disconnect', 'txproxy recorded the open transaction as ended by the disconnect');
});

t.test('a server message over max_message_length: FATAL 08P01 naming the limit, not a lost connection', async (t) => {
  const client = new pg.Client(limited.connection());
  await client.connect();
  client.on('error', () => undefined);
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  await client.query('BEGIN');
  await client.query("INSERT INTO guarded VALUES ('big answer')");
  const err = await client.query(`SELECT repeat('x', ${2 * LIMIT})`).then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
  t.match(err, {
    severity: 'FATAL',
    code: '08P01',
    message: new RegExp(`^invalid message from the upstream server at 127\\.0\\.0\\.1:\\d+: message type 'D' of \\d+ bytes exceeds the limit of ${LIMIT} bytes$`),
    hint: /Raise max_message_length/,
  });
  await backendGone(rows[0].pid);
  t.equal(await noteCount('big answer'), 0);
});

t.test('the default limit is PostgreSQL\'s own: a 5 MB parameter passes', async (t) => {
  const client = await proxy.client();
  t.teardown(() => client.end());
  const big = 'b'.repeat(5 * 1024 * 1024);
  t.equal((await client.query('SELECT length($1::text) AS n', [big])).rows[0].n, big.length);
});

t.test("a 'p' declaring 1 GB before login is refused on its header at once, nothing of it held", async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  t.teardown(() => conn.destroy());
  conn.write(startupMessage({ user: 'postgres', database: 'postgres' }));
  t.equal((await conn.readMessage()).type, 'R', 'the server asks for SCRAM');
  // The header alone (1 GB is within max_message_length): a txproxy that waited for the body would never answer.
  conn.write(messageWithLength('p', 1_000_000_000));
  const refusal = await conn.readMessage(2000);
  t.match(errorFieldsOf(refusal), {
    severity: 'FATAL',
    code: '08P01',
    message: "invalid message: message type 'p' of 1000000000 bytes exceeds the limit of 65535 bytes that PostgreSQL sets before authentication",
    hint: /PostgreSQL refuses a message this long too/,
  });
  await conn.closed;
});

t.test('an authentication response within PostgreSQL\'s limit reaches the server, which judges it', async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  t.teardown(() => conn.destroy());
  conn.write(startupMessage({ user: 'postgres', database: 'postgres' }));
  await conn.readMessage();
  conn.write(messageWithLength('p', 65535, Buffer.alloc(65531, 0x61)));
  const answer = errorFieldsOf(await conn.readMessage());
  t.equal(answer.severity, 'FATAL');
  t.notMatch(answer.message, /^invalid message/, `the server's own answer: ${answer.message}`);
});

/** Types PostgreSQL reads with PQ_SMALL_MESSAGE_LIMIT (10000) once a client is logged in. */
const SMALL: [string, string][] = [
  ['S', 'Sync'],
  ['H', 'Flush'],
  ['C', 'Close'],
  ['D', 'Describe'],
  ['E', 'Execute'],
  ['X', 'Terminate'],
];

for (const [type, name] of SMALL) {
  t.test(`a ${name} over PostgreSQL's 10000-byte limit inside a transaction: FATAL 08P01 from txproxy, not a lost upstream`, async (t) => {
    const note = `oversized ${name}`;
    const { conn, pid } = await openTransaction(proxy.port, note);
    conn.write(messageWithLength(type, 10001, Buffer.alloc(9997)));
    t.match(errorFieldsOf(await conn.readMessage()), {
      severity: 'FATAL',
      code: '08P01',
      message: `invalid message: message type '${type}' of 10001 bytes exceeds the limit of 10000 bytes that PostgreSQL sets for it`,
      hint: /rolled back. PostgreSQL refuses a message this long too/,
    });
    await conn.closed;
    await backendGone(pid);
    t.equal(await noteCount(note), 0, 'the insert was rolled back');
  });
}

t.test('a Sync of exactly 10000 bytes is PostgreSQL\'s to judge: txproxy forwards it', async (t) => {
  const { conn } = await openTransaction(proxy.port, 'sync at the limit');
  t.teardown(() => conn.destroy());
  conn.write(messageWithLength('S', 10000, Buffer.alloc(9996)));
  const answer = await conn.readUntil('Z');
  t.match(errorFieldsOf(answer[0]), { severity: 'ERROR', code: '08P01', message: 'invalid message format' }, "the server's own complaint");
});

t.test('a CopyDone over the limit during COPY FROM STDIN: FATAL 08P01, nothing copied', async (t) => {
  const conn = await RawConnection.connect(proxy.port);
  t.teardown(() => conn.destroy());
  conn.write(startupMessage({ user: 'trusted', database: 'postgres' }));
  await conn.readUntil('Z');
  conn.write(serialize.query('COPY guarded FROM STDIN'));
  t.equal((await conn.readMessage()).type, 'G', 'CopyInResponse');
  conn.write(serialize.copyData(Buffer.from('copied over the limit\n')), messageWithLength('c', 10001, Buffer.alloc(9997)));
  t.match(errorFieldsOf(await conn.readMessage()), { severity: 'FATAL', code: '08P01', message: /'c' of 10001 bytes exceeds the limit of 10000 bytes that PostgreSQL sets for it/ });
  await conn.closed;
  await eventually(async () => (await noteCount('copied over the limit')) === 0);
  t.equal(await noteCount('copied over the limit'), 0);
});

t.test('Query, Parse and Bind keep the large limit once logged in', async (t) => {
  const client = await proxy.client({ user: 'trusted' });
  t.teardown(() => client.end());
  const long = 'q'.repeat(20000);
  t.equal((await client.query(`SELECT length('${long}') AS n`)).rows[0].n, 20000, 'a 20 kB Query');
  t.equal((await client.query(`SELECT length($1::text) AS n, '${long}' AS parsed`, [long])).rows[0].n, 20000, 'a 20 kB Parse and Bind');
});
