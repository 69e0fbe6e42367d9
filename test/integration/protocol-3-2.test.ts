/**
 * Protocol 3.2 (PostgreSQL 18) through txproxy, with a raw-socket client:
 * BackendKeyData carries a longer secret key, which txproxy relays and
 * matches for cancels; a newer minor version than the server speaks gets
 * the server's NegotiateProtocolVersion relayed and the session works.
 */
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { cancelRequest, errorFieldsOf, md5PasswordMessage, RawConnection, startupMessage, type RawMessage } from '../helpers/raw-connection.js';
import { serialize } from '../helpers/messages.js';

const PROTOCOL_3_0 = 196608;
const PROTOCOL_3_2 = 196610;
const PROTOCOL_3_3 = 196611;

const postgres = await startPostgres({
  hba: ['local all all trust', 'host all postgres 127.0.0.1/32 scram-sha-256', 'host all md5_user 127.0.0.1/32 md5', ''].join('\n'),
});
const setup = await postgres.direct();
await setup.query("SET password_encryption = 'md5'");
await setup.query("CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret'");
await setup.end();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

interface Session {
  conn: RawConnection;
  startup: RawMessage[];
  pid: number;
  key: Buffer;
}

/** Connects through txproxy with `version`, answers the MD5 challenge and reads up to ReadyForQuery. */
async function login(version: number, extra: Record<string, string> = {}): Promise<Session> {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(startupMessage({ user: 'md5_user', database: 'postgres', ...extra }, version));
  const before: RawMessage[] = [];
  for (;;) {
    const message = await conn.readMessage();
    before.push(message);
    if (message.type === 'E') throw new Error(`login failed: ${errorFieldsOf(message).message}`);
    if (message.type === 'R' && message.body.readInt32BE(0) === 5) break;
  }
  conn.write(md5PasswordMessage('md5_user', 'md5-secret', before.at(-1)!.body.subarray(4, 8)));
  const startup = [...before, ...(await conn.readUntil('Z'))];
  const keyData = startup.find((m) => m.type === 'K');
  if (keyData === undefined) throw new Error('no BackendKeyData');
  return { conn, startup, pid: keyData.body.readInt32BE(0), key: Buffer.from(keyData.body.subarray(4)) };
}

async function query(conn: RawConnection, sql: string): Promise<RawMessage[]> {
  conn.write(serialize.query(sql));
  return conn.readUntil('Z', 40_000);
}

function textOf(row: RawMessage): string {
  return row.body.toString('utf8', 6, 6 + row.body.readInt32BE(2));
}

async function sendCancel(pid: number, key: Buffer): Promise<void> {
  const conn = await RawConnection.connect(proxy.port);
  conn.write(cancelRequest(pid, key));
  await conn.closed;
}

t.test('protocol 3.0 for comparison: a 4-byte key', async (t) => {
  const session = await login(PROTOCOL_3_0);
  t.equal(session.key.length, 4);
  session.conn.write(serialize.end());
});

t.test('protocol 3.2: md5 login, a longer BackendKeyData key, and a query', async (t) => {
  const session = await login(PROTOCOL_3_2);
  t.notOk(session.startup.some((m) => m.type === 'v'), 'no NegotiateProtocolVersion: the server speaks 3.2');
  t.equal(session.key.length, 32, 'PostgreSQL 18 sends a 32-byte key in 3.2');
  t.same(proxy.app.server.backendKeys.get(session.pid)?.backendKey, session.key, 'txproxy recorded the long key');
  const reply = await query(session.conn, 'SELECT pg_backend_pid()::text');
  t.equal(textOf(reply.find((m) => m.type === 'D')!), String(session.pid), 'the pid in BackendKeyData is the server backend');
  await proxy.waitForTransactions(1);
  t.match(proxy.statements.at(-1), { text: 'SELECT pg_backend_pid()::text', commandTag: 'SELECT 1' });
  session.conn.write(serialize.end());
});

t.test('protocol 3.2: a CancelRequest with the long key cancels through txproxy; a short or altered key does not', async (t) => {
  const session = await login(PROTOCOL_3_2);
  const reply = query(session.conn, 'SELECT pg_sleep(30)');
  await eventually(
    async () => (await postgres.sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [session.pid])).rowCount === 1,
    5000,
    'pg_sleep to run',
  );
  await sendCancel(session.pid, session.key.subarray(0, 4));
  const altered = Buffer.from(session.key);
  altered[31] ^= 1;
  await sendCancel(session.pid, altered);
  await new Promise((r) => setTimeout(r, 300));
  const active = await postgres.sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [session.pid]);
  t.equal(active.rowCount, 1, 'still running after the wrong keys');
  await sendCancel(session.pid, session.key);
  const messages = await reply;
  const error = messages.find((m) => m.type === 'E');
  t.ok(error, 'the statement ended with an error');
  t.match(errorFieldsOf(error!), { severity: 'ERROR', code: '57014', message: 'canceling statement due to user request' });
  session.conn.write(serialize.end());
});

t.test("protocol 3.3: the server's NegotiateProtocolVersion is relayed and the session works at 3.2", async (t) => {
  const session = await login(PROTOCOL_3_3, { '_pq_.no_such_option': 'on' });
  const negotiate = session.startup.find((m) => m.type === 'v');
  t.ok(negotiate, 'NegotiateProtocolVersion reached the client');
  const body = negotiate!.body;
  t.equal(body.readInt32BE(0), PROTOCOL_3_2, 'the newest minor version the server supports');
  const count = body.readInt32BE(4);
  const options = body.toString('utf8', 8).split('\0').slice(0, count);
  t.ok(options.includes('_pq_.no_such_option'), `unrecognized options listed: ${options.join(', ')}`);
  t.equal(session.key.length, 32, 'the 3.2 key');
  const reply = await query(session.conn, "SELECT 'negotiated'");
  t.equal(textOf(reply.find((m) => m.type === 'D')!), 'negotiated');
  session.conn.write(serialize.end());
});
