/**
 * Replication connections (the `replication` startup parameter) pass
 * through txproxy untouched: replication commands, and a logical
 * replication stream in CopyBoth mode with the client's standby status
 * updates flowing back. The tracker records no statements for them.
 */
import t from 'tap';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { findProgram, libpqEnv, psql, run } from '../helpers/cli.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { RawClient, transcript, type RawMessage } from '../helpers/raw-client.js';
import { resetRecords } from '../helpers/trace-checks.js';

const postgres = await startPostgres({ postgresFlags: ['-c', 'wal_level=logical', '-c', 'max_replication_slots=8', '-c', 'max_wal_senders=8'] });
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE events (id int PRIMARY KEY, kind text)');
const endpoint = { port: proxy.port, user: postgres.user, password: postgres.password };

t.beforeEach(() => resetRecords(proxy));

t.test('psql with replication=database runs IDENTIFY_SYSTEM through txproxy', async (t) => {
  const result = await psql(endpoint, ['-d', 'dbname=postgres replication=database', '-c', 'IDENTIFY_SYSTEM']);
  t.equal(result.code, 0, result.stderr);
  const [systemId, timeline, lsn, dbname] = result.stdout.trim().split('|');
  const control = await postgres.sql('SELECT system_identifier::text AS id FROM pg_control_system()');
  t.equal(systemId, control.rows[0].id, 'the system identifier of the server behind txproxy');
  t.equal(timeline, '1');
  t.match(lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  t.equal(dbname, 'postgres');
  const physical = await psql(endpoint, ['-d', 'dbname=postgres replication=true', '-c', 'IDENTIFY_SYSTEM']);
  t.equal(physical.code, 0, physical.stderr);
  t.equal(physical.stdout.split('|')[0], systemId, 'physical replication connections too');
  t.same(proxy.statements, [], 'replication commands are not traced as statements');
  t.same(proxy.transactions, []);
});

interface XLogData {
  start: bigint;
  text: string;
}

/** The XLogData ('w') messages inside CopyData; keepalives ('k') skipped. */
function xlogData(messages: RawMessage[]): XLogData[] {
  return messages
    .filter((m) => m.type === 'd' && m.body[0] === 0x77)
    .map((m) => ({ start: m.body.readBigUInt64BE(1), text: m.body.subarray(25).toString('utf8') }));
}

/** Standby status update ('r'): written, flushed and applied up to `lsn`. */
function standbyStatus(lsn: bigint): Buffer {
  const body = Buffer.alloc(34);
  body[0] = 0x72;
  body.writeBigUInt64BE(lsn, 1);
  body.writeBigUInt64BE(lsn, 9);
  body.writeBigUInt64BE(lsn, 17);
  body.writeBigUInt64BE(0n, 25);
  body[33] = 0;
  return serialize.copyData(body);
}

function lsnText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Streams `slot` until the XLogData of `changes` changes has arrived, confirms it, then ends the stream. */
async function streamSlot(port: number, slot: string, changes: number): Promise<{ data: XLogData[]; ending: string[]; raw: RawClient }> {
  const raw = await RawClient.connect({ port, user: postgres.user, password: postgres.password, params: { replication: 'database' } });
  raw.send(serialize.query(`START_REPLICATION SLOT ${slot} LOGICAL 0/0`));
  const messages = await raw.until((m) => m.type === 'd' && m.body[0] === 0x77, changes);
  if (messages.find((m) => m.type === 'W') === undefined) throw new Error('no CopyBothResponse');
  const data = xlogData(messages);
  raw.send(standbyStatus(data.at(-1)!.start), serialize.copyDone());
  const ending = transcript(await raw.readyForQuery(), (m) => m.type !== 'd');
  return { data, ending, raw };
}

t.test('a logical replication stream (test_decoding, CopyBoth) passes through byte for byte', async (t) => {
  // Two slots at the same point: one read directly, one through txproxy.
  await postgres.sql("SELECT pg_create_logical_replication_slot('via_proxy', 'test_decoding'), pg_create_logical_replication_slot('direct', 'test_decoding')");
  await postgres.sql("INSERT INTO events VALUES (1, 'created'), (2, 'paid')");
  await postgres.sql("UPDATE events SET kind = 'shipped' WHERE id = 2");
  // BEGIN, two INSERTs, COMMIT; BEGIN, UPDATE, COMMIT.
  const proxied = await streamSlot(proxy.port, 'via_proxy', 7);
  const direct = await streamSlot(postgres.port, 'direct', 7);
  t.teardown(() => Promise.all([proxied.raw.close(), direct.raw.close()]));

  t.match(proxied.data.map((d) => d.text), [
    /^BEGIN \d+$/,
    "table public.events: INSERT: id[integer]:1 kind[text]:'created'",
    "table public.events: INSERT: id[integer]:2 kind[text]:'paid'",
    /^COMMIT \d+$/,
    /^BEGIN \d+$/,
    "table public.events: UPDATE: id[integer]:2 kind[text]:'shipped'",
    /^COMMIT \d+$/,
  ]);
  t.same(proxied.data, direct.data, 'the same changes at the same WAL positions as read directly');
  t.same(proxied.ending, direct.ending, 'CopyDone ends the stream the same way');
  t.equal(proxied.ending.at(-1), 'Z:I');

  // The standby status update the client sent through txproxy reached the server.
  const slots = await postgres.sql("SELECT slot_name, confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name IN ('via_proxy', 'direct') ORDER BY slot_name");
  t.same(
    slots.rows.map((r) => r.lsn),
    [lsnText(direct.data.at(-1)!.start), lsnText(proxied.data.at(-1)!.start)],
    "the client's confirmed position moved the slot",
  );

  // The replication session goes on after the stream.
  const identify = await proxied.raw.query('IDENTIFY_SYSTEM');
  t.same(transcript(identify, (m) => m.type !== 'D'), ['T', 'C:IDENTIFY_SYSTEM', 'Z:I']);
  t.same(proxy.statements, [], 'nothing in a replication session is traced as a statement');
  t.equal([...proxy.app.server.sessions].find((s) => s.backendPid === proxied.raw.backendPid)?.info.replication, true);
});

t.test('pg_recvlogical through txproxy', { skip: findProgram('pg_recvlogical') === null ? 'pg_recvlogical is not installed' : false }, async (t) => {
  const program = findProgram('pg_recvlogical')!;
  const env = libpqEnv(endpoint);
  const created = await run(program, ['-d', 'postgres', '--slot', 'recv', '--plugin', 'test_decoding', '--create-slot'], { env });
  t.equal(created.code, 0, created.stderr);
  await postgres.sql("INSERT INTO events VALUES (3, 'refunded')");
  // The insert position: with synchronous_commit=off the write position can still be behind the commit.
  const end = (await postgres.sql('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn;
  const streamed = await run(program, ['-d', 'postgres', '--slot', 'recv', '--start', '--endpos', end, '--no-loop', '-f', '-'], { env, timeoutMs: 30_000 });
  t.equal(streamed.code, 0, streamed.stderr);
  t.match(streamed.stdout, /table public\.events: INSERT: id\[integer\]:3 kind\[text\]:'refunded'/);
  const dropped = await run(program, ['-d', 'postgres', '--slot', 'recv', '--drop-slot'], { env });
  t.equal(dropped.code, 0, dropped.stderr);
  t.same(proxy.statements, []);
});
