/**
 * Prepared statement renaming against a real PostgreSQL: one client's
 * batches, rewritten for whichever of two server connections runs them,
 * give the client exactly what one direct connection gives.
 */
import t, { type Test } from 'tap';
import { PreparedAnswers } from '../../src/pool/prepared-answers.js';
import { PreparedStatementRewriter } from '../../src/pool/prepared-rewriter.js';
import { ClientStatements, ServerStatementCache } from '../../src/pool/prepared-statements.js';
import { messagesOf, serialize } from '../helpers/messages.js';
import { startPostgres } from '../helpers/postgres.js';
import { dataRowValues, errorOf, RawClient, type RawMessage } from '../helpers/raw-client.js';

const postgres = await startPostgres();
t.teardown(() => postgres.stop());

const connect = () => RawClient.connect({ port: postgres.port, host: postgres.host, user: postgres.user, password: postgres.password });

/** A server connection with its statement cache. */
interface Link {
  raw: RawClient;
  cache: ServerStatementCache;
}

function framed(m: RawMessage): Buffer {
  const header = Buffer.alloc(5);
  header[0] = m.type.charCodeAt(0);
  header.writeInt32BE(4 + m.body.length, 1);
  return Buffer.concat([header, m.body]);
}

/** What the client sees, compactly: data values, error code and message, transaction status. */
function render(messages: RawMessage[]): string[] {
  return messages.map((m) => {
    if (m.type === 'D') return `D:${dataRowValues(m).join(',')}`;
    if (m.type === 'E') return `E:${errorOf(m).code} ${errorOf(m).message}`;
    if (m.type === 'Z') return `Z:${String.fromCharCode(m.body[0])}`;
    if (m.type === 'C') return `C:${m.body.toString('utf8', 0, m.body.length - 1)}`;
    return m.type;
  });
}

function unframe(buf: Buffer): RawMessage[] {
  return messagesOf(buf).map(([type, b, s, e]) => ({ type: String.fromCharCode(type), body: Buffer.from(b.subarray(s + 5, e)) }));
}

/** One client whose batches are rewritten, each for the link it is given. */
function renamedClient(t: Test) {
  const statements = new ClientStatements();
  const answers = new PreparedAnswers();
  answers.onDeallocateAll = () => statements.clear();
  const rewriter = new PreparedStatementRewriter(statements, answers);
  /** Runs one batch on `link` until every message of it is answered; returns what the client gets. */
  return async (link: Link, batch: Buffer): Promise<RawMessage[]> => {
    const toServer: Buffer[] = [];
    const toClient: Buffer[] = [];
    for (const [, buf, start, end] of messagesOf(batch)) {
      const out = rewriter.rewrite(link.cache, buf, start, end);
      toServer.push(...out.toServer);
      toClient.push(...out.toClient);
    }
    link.raw.send(Buffer.concat(toServer));
    while (answers.pending > 0) {
      const f = framed(await link.raw.next(30_000));
      toClient.push(...(answers.answer(link.cache, f, 0, f.length) ?? [f]));
    }
    t.equal(answers.pending, 0, 'every expected answer arrived');
    return unframe(Buffer.concat(toClient));
  };
}

const parse = (name: string, text: string, types: number[] = []) => serialize.parse({ name, text, types });
const bind = (statement: string, values: (string | null)[] = [], portal = '') => serialize.bind({ portal, statement, values });
const describeS = (name: string) => serialize.describe({ type: 'S', name });
const describeP = () => serialize.describe({ type: 'P', name: '' });
const closeS = (name: string) => serialize.close({ type: 'S', name });
const execute = () => serialize.execute({ portal: '', rows: 0 });
const sync = () => serialize.sync();
const batch = (...messages: Buffer[]) => Buffer.concat(messages);

/** Batches and the link (0 or 1) each runs on in the renamed run; a count: the batch ends with Flush, that many answers. */
const script: ([number, Buffer] | [number, Buffer, number])[] = [
  [0, batch(parse('s1', 'SELECT $1::int + 1', [23]), bind('s1', ['41']), describeP(), execute(), sync())],
  // Without Sync: a Parse the server has is answered at once, the rest as the server answers.
  [0, batch(parse('f1', 'SELECT $1::int + 1', [23]), serialize.flush()), 1],
  [0, batch(bind('f1', ['5']), execute(), closeS('f1'), serialize.flush()), 4],
  [0, sync()],
  // A portal outlives the Close of its statement, directly as through the rename (the server copy stays).
  [0, batch(parse('pc', 'SELECT 7'), bind('pc', [], 'p1'), closeS('pc'), serialize.execute({ portal: 'p1', rows: 0 }), sync())],
  [1, batch(bind('s1', ['1']), describeP(), execute(), sync())],
  [0, batch(parse('s2', 'SELECT $1::text || $2::text'), describeS('s2'), sync())],
  // A failed transaction refuses a Parse even of a statement the server has.
  [0, serialize.query('BEGIN')],
  [0, batch(bind('s1', ['x']), execute(), sync())],
  [0, batch(parse('s2b', 'SELECT $1::text || $2::text'), sync())],
  [0, serialize.query('ROLLBACK')],
  [1, batch(parse('s2b', 'SELECT $1::text || $2::text'), bind('s2b', ['p', 'q']), execute(), closeS('s2b'), sync())],
  [1, batch(describeS('s2'), bind('s2', ['a', 'b']), execute(), closeS('s1'), sync())],
  [0, batch(bind('s1', ['1']), execute(), parse('s3', 'SELECT 3'), sync())],
  [1, batch(parse('s1', 'SELECT 42'), bind('s1'), execute(), sync())],
  [0, batch(parse('s3', 'SELECT 1/0'), bind('s3'), execute(), parse('s4', 'SELECT 4'), sync())],
  [1, batch(bind('s4'), execute(), sync())],
  [0, batch(bind('s3'), execute(), sync())],
  [1, batch(parse('s1', 'SELECT 1'), sync())],
  [1, serialize.query('BEGIN')],
  [1, batch(bind('s2', ['x', 'y']), execute(), parse('s2', 'SELECT 2'), bind('s2', ['z', 'w']), execute(), sync())],
  [1, serialize.query('ROLLBACK')],
  // More statements than the caches hold (capacity 2): evicted and prepared again in turn.
  ...[5, 6, 7, 8].map((i): [number, Buffer] => [i % 2, batch(parse(`e${i}`, `SELECT ${i} AS n, $1::int AS v`, [23]), bind(`e${i}`, [String(i)]), execute(), sync())]),
  ...[5, 6, 7, 8].map((i): [number, Buffer] => [(i + 1) % 2, batch(bind(`e${i}`, [String(i * 10)]), execute(), closeS(`e${i}`), sync())]),
  [0, batch(bind('s2', ['after', 'eviction']), execute(), sync())],
  [0, serialize.query('DISCARD ALL')],
  [1, batch(bind('s2', ['gone', '?']), execute(), sync())],
  [1, batch(parse('s2', 'SELECT $1::text || $2::text'), bind('s2', ['back', '!']), execute(), sync())],
];

t.test('batches rewritten onto two server connections in turn answer as one direct connection does', async (t) => {
  const direct = await connect();
  const links: Link[] = [
    { raw: await connect(), cache: new ServerStatementCache(2) },
    { raw: await connect(), cache: new ServerStatementCache(2) },
  ];
  t.teardown(async () => {
    await direct.close();
    for (const link of links) await link.raw.close();
  });
  t.not(links[0].raw.backendPid, links[1].raw.backendPid, 'two backends');
  const run = renamedClient(t);
  for (const [i, [linkIndex, messages, answerCount]] of script.entries()) {
    direct.send(messages);
    const expected = render(answerCount === undefined ? await direct.readyForQuery(1, 30_000) : await direct.until(() => true, answerCount, 30_000));
    const got = render(await run(links[linkIndex], messages));
    t.same(got, expected, `batch ${i} on link ${linkIndex}: ${expected.join(' ')}`);
  }

  for (const [i, link] of links.entries()) {
    const rows = await link.raw.query('SELECT name FROM pg_prepared_statements ORDER BY name');
    const serverNames = rows.filter((m) => m.type === 'D').map((m) => dataRowValues(m)[0]!);
    t.ok(serverNames.every((name) => name.startsWith('txp_')), `link ${i} has only server names: ${serverNames.join(',')}`);
    t.same([...serverNames].sort(), [...link.cache.serverNames()].sort(), `link ${i}: the cache says what the server has`);
  }
});
