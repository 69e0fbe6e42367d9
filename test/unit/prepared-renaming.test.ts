import t from 'tap';
import { decodeErrorFields } from '../../src/protocol/decode.js';
import { PreparedAnswers } from '../../src/pool/prepared-answers.js';
import { buildBindHeader, buildParse, readBind, readParse, readTarget } from '../../src/pool/prepared-messages.js';
import { PreparedStatementRewriter } from '../../src/pool/prepared-rewriter.js';
import { ClientStatements, ServerStatementCache } from '../../src/pool/prepared-statements.js';
import { messagesOf, serialize, server } from '../helpers/messages.js';

/** One client's side of the renaming: its statements, its answer queue, its rewriter. */
function client() {
  const statements = new ClientStatements();
  const answers = new PreparedAnswers();
  const rewriter = new PreparedStatementRewriter(statements, answers);
  /** Rewrites each message; returns what reached the server and what txproxy answered at once. */
  const send = (cache: ServerStatementCache, ...messages: Buffer[]) => {
    const toServer: Buffer[] = [];
    const toClient: Buffer[] = [];
    for (const m of messages) {
      const out = rewriter.rewrite(cache, m, 0, m.length);
      toServer.push(...out.toServer);
      toClient.push(...out.toClient);
    }
    return { server: Buffer.concat(toServer), client: Buffer.concat(toClient) };
  };
  /** Feeds server messages; returns what the client gets. */
  const reply = (cache: ServerStatementCache, ...messages: Buffer[]) => {
    const all = Buffer.concat(messages);
    const out: Buffer[] = [];
    for (const [, buf, start, end] of messagesOf(all)) out.push(...(answers.answer(cache, buf, start, end) ?? [buf.subarray(start, end)]));
    return Buffer.concat(out);
  };
  return { statements, answers, rewriter, send, reply };
}

const types = (buf: Buffer) => messagesOf(buf).map(([type]) => String.fromCharCode(type)).join('');
/** Names carried by the Parse/Bind/Describe/Close messages of a buffer, in order. */
const names = (buf: Buffer) =>
  messagesOf(buf).flatMap(([type, b, s, e]) => {
    if (type === 0x50) return [readParse(b, s, e).name];
    if (type === 0x42) return [readBind(b, s, e).statement];
    if (type === 0x44 || type === 0x43) return [readTarget(b, s, e).name];
    return [];
  });
const errorOf = (buf: Buffer) => {
  const [[, b, s, e]] = messagesOf(buf).filter(([type]) => type === 0x45);
  return decodeErrorFields(b, s, e);
};

const parse = (name: string, text: string, types: number[] = []) => serialize.parse({ name, text, types });
const bind = (statement: string, values: unknown[] = [], portal = '') => serialize.bind({ portal, statement, values: values as string[] });
const execute = () => serialize.execute({ portal: '', rows: 0 });
const sync = () => serialize.sync();

t.test('message bytes: a Bind is renamed by a new header and the original parameter bytes, not copied', async (t) => {
  const original = bind('s1', ['x'.repeat(1000)], 'p1');
  const parts = readBind(original, 0, original.length);
  t.equal(parts.statement, 's1');
  t.equal(parts.portal.toString(), 'p1');
  t.equal(parts.rest.buffer, original.buffer, 'the rest is a view on the client buffer');
  const renamed = Buffer.concat([buildBindHeader(parts.portal, 'txp_12', parts.rest.length), parts.rest]);
  t.same(renamed, bind('txp_12', ['x'.repeat(1000)], 'p1'), 'same bytes as a Bind of txp_12 built from scratch');
  const p = parse('s1', 'SELECT $1::int', [23]);
  const { name, content } = readParse(p, 0, p.length);
  t.equal(name, 's1');
  t.same(buildParse('txp_1', content), parse('txp_1', 'SELECT $1::int', [23]));
});

t.test('a named Parse goes to the server under its server name; Bind uses it; unnamed ones pass untouched', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  const unnamed = Buffer.concat([parse('', 'SELECT 1'), bind(''), execute(), sync()]);
  const first = c.send(cache, ...messagesOf(unnamed).map(([, b, s, e]) => b.subarray(s, e)));
  t.same(first.server, unnamed, 'unnamed statements: bytes unchanged');
  t.same(c.reply(cache, server.parseComplete(), server.bindComplete(), server.complete('SELECT 1'), server.ready('I')), Buffer.concat([server.parseComplete(), server.bindComplete(), server.complete('SELECT 1'), server.ready('I')]));

  const out = c.send(cache, parse('s1', 'SELECT $1::int', [23]), bind('s1', ['7']), execute(), sync());
  t.equal(types(out.server), 'PBES');
  t.same(names(out.server), ['txp_1', 'txp_1']);
  t.equal(out.client.length, 0, 'nothing owed yet');
  const answers = [server.parseComplete(), server.bindComplete(), server.dataRow(), server.complete('SELECT 1'), server.ready('I')];
  t.same(c.reply(cache, ...answers), Buffer.concat(answers), 'every answer relayed');
  t.equal(c.answers.pending, 0);
});

t.test('a statement the server already has: nothing sent, ParseComplete by txproxy in its place', async (t) => {
  const cache = new ServerStatementCache(10);
  const a = client();
  const b = client();
  a.send(cache, parse('a1', 'SELECT 1'), sync());
  a.reply(cache, server.parseComplete(), server.ready('I'));

  const alone = b.send(cache, parse('b1', 'SELECT 1'));
  t.equal(alone.server.length, 0, 'the server already has it under txp_1');
  t.same(alone.client, server.parseComplete(), 'answered at once: nothing before it is pending');

  const batch = b.send(cache, bind('b1'), execute(), parse('b2', 'SELECT 1'), sync());
  t.equal(types(batch.server), 'BES');
  t.same(names(batch.server), ['txp_1']);
  t.equal(batch.client.length, 0, 'the synthesized ParseComplete waits for the Execute before it');
  const got = b.reply(cache, server.bindComplete(), server.dataRow(), server.complete('SELECT 1'), server.ready('I'));
  t.equal(types(got), '2DC1Z', 'ParseComplete comes right after the Execute it follows');
});

t.test('re-preparation on another link: an injected Parse whose ParseComplete the client never sees', async (t) => {
  const link1 = new ServerStatementCache(10);
  const link2 = new ServerStatementCache(10);
  const c = client();
  c.send(link1, parse('s1', 'SELECT $1::text', [25]), sync());
  c.reply(link1, server.parseComplete(), server.ready('I'));

  const out = c.send(link2, bind('s1', ['x']), execute(), serialize.describe({ type: 'S', name: 's1' }), sync());
  t.equal(types(out.server), 'PBEDS', 'Parse injected before the Bind only, once');
  t.same(names(out.server), ['txp_1', 'txp_1', 'txp_1'], "link2's own name");
  t.same(out.server.subarray(0, messagesOf(out.server)[0][3]), parse('txp_1', 'SELECT $1::text', [25]), 'same text and types');
  const got = c.reply(link2, server.parseComplete(), server.bindComplete(), server.dataRow(), server.complete('SELECT 1'), Buffer.from([0x74, 0, 0, 0, 6, 0, 0]), server.rowDescription(), server.ready('I'));
  t.equal(types(got), '2DCtTZ', 'the injected ParseComplete is swallowed');
  t.ok(link2.has(c.statements.get('s1')!));
});

t.test('Close of a statement: CloseComplete by txproxy, the server copy stays cached', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('s1', 'SELECT 1'), sync());
  c.reply(cache, server.parseComplete(), server.ready('I'));
  const out = c.send(cache, serialize.close({ type: 'S', name: 's1' }), sync());
  t.equal(types(out.server), 'S', 'only the Sync reaches the server');
  t.same(out.client, server.closeComplete(), 'answered at once');
  t.same(c.reply(cache, server.ready('I')), server.ready('I'));
  t.notOk(c.statements.has('s1'));
  t.equal(cache.size, 1);
  t.same(c.send(cache, serialize.close({ type: 'S', name: 'never' })).client, server.closeComplete(), 'closing an unknown name is no error, as in PostgreSQL');
  const portal = c.send(cache, serialize.close({ type: 'P', name: 'p' }));
  t.same(portal.server, serialize.close({ type: 'P', name: 'p' }), 'portals pass through');

  const again = c.send(cache, parse('s1', 'SELECT 2'), sync());
  t.same(names(again.server), ['txp_2'], 'the name is free again for other text');
});

t.test('eviction: the least recently used statement is closed first, its CloseComplete swallowed', async (t) => {
  const cache = new ServerStatementCache(2);
  const c = client();
  for (const [i, text] of ['SELECT 1', 'SELECT 2'].entries()) {
    c.send(cache, parse(`s${i}`, text), sync());
    c.reply(cache, server.parseComplete(), server.ready('I'));
  }
  c.send(cache, bind('s0'), sync()); // s0 is now the most recent
  c.reply(cache, server.bindComplete(), server.ready('I'));
  const out = c.send(cache, parse('s2', 'SELECT 3'), sync());
  t.equal(types(out.server), 'CPS');
  t.same(names(out.server), ['txp_2', 'txp_3'], 'txp_2 (SELECT 2) was the least recently used');
  t.equal(types(c.reply(cache, server.closeComplete(), server.parseComplete(), server.ready('I'))), '1Z');
  t.same(cache.serverNames(), ['txp_1', 'txp_3']);

  const back = c.send(cache, bind('s1'), sync());
  t.equal(types(back.server), 'CPBS', 's1 is prepared again, evicting txp_1');
  t.same(names(back.server), ['txp_1', 'txp_4', 'txp_4']);
  t.same(cache.stats, { hits: 1, misses: 4, evictions: 2 }, 'one Bind found its statement; four prepared; two evicted');
});

t.test('no eviction of a statement the open transaction used: its portals would close with it', async (t) => {
  const cache = new ServerStatementCache(1);
  const c = client();
  const out = c.send(cache, parse('a', 'SELECT 1'), bind('a', [], 'pa'), parse('b', 'SELECT 2'), bind('b', [], 'pb'), sync());
  t.equal(types(out.server), 'PBPBS', 'no Close inside the transaction');
  c.reply(cache, server.parseComplete(), server.bindComplete(), server.parseComplete(), server.bindComplete(), server.ready('T'));
  t.equal(cache.size, 2, 'over capacity while the transaction lasts');
  const next = c.send(cache, parse('c', 'SELECT 3'), sync());
  t.equal(types(next.server), 'PS', 'still in the transaction (status T)');
  c.reply(cache, server.parseComplete(), server.ready('I'));
  const after = c.send(cache, parse('d', 'SELECT 4'), sync());
  t.equal(types(after.server), 'CCCPS', 'after ReadyForQuery I the cache shrinks back to its capacity');
});

t.test('an error mid-batch: answers after it are dropped and their effects undone', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('known', 'SELECT 0'), parse('gone', 'SELECT 9'), sync());
  c.reply(cache, server.parseComplete(), server.parseComplete(), server.ready('I'));

  const out = c.send(cache, parse('s1', 'SELECT 1'), bind('s1'), execute(), parse('s2', 'SELECT 0'), serialize.close({ type: 'S', name: 'gone' }), parse('s3', 'SELECT 3'), sync());
  t.equal(types(out.server), 'PBEPS', 's2 is not sent (cached), the Close is not sent');
  t.equal(out.client.length, 0);
  const got = c.reply(cache, server.parseComplete(), server.bindComplete(), server.error('22012', 'division by zero'), server.ready('I'));
  t.equal(types(got), '12EZ', 'no ParseComplete nor CloseComplete after the error: PostgreSQL skipped those messages');
  t.ok(c.statements.has('s1'), 's1 was parsed before the error');
  t.notOk(c.statements.has('s2'), 'the Parse of s2 was skipped');
  t.ok(c.statements.has('gone'), 'the Close of gone was skipped: it still exists');
  t.notOk(c.statements.has('s3'));
  t.notOk(cache.has(readParse(parse('', 'SELECT 3'), 0, 16).content), 'the server never prepared SELECT 3');
  t.equal(c.answers.pending, 0);
});

t.test('a failed Parse leaves neither the client name nor the cache entry', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('bad', 'SELEKT 1'), bind('bad'), sync());
  const got = c.reply(cache, server.error('42601', 'syntax error'), server.ready('I'));
  t.equal(types(got), 'EZ');
  t.notOk(c.statements.has('bad'));
  t.equal(cache.size, 0);
  const again = c.send(cache, parse('bad', 'SELECT 1'), sync());
  t.same(names(again.server), ['txp_2'], 'the name can be prepared again');
});

t.test('an injected Parse that fails: its error reaches the client in the place of the Bind', async (t) => {
  const link1 = new ServerStatementCache(10);
  const link2 = new ServerStatementCache(10);
  const c = client();
  c.send(link1, parse('s', 'SELECT * FROM t'), sync());
  c.reply(link1, server.parseComplete(), server.ready('I'));
  c.send(link2, bind('s'), execute(), sync());
  const got = c.reply(link2, server.error('42P01', 'relation "t" does not exist'), server.ready('I'));
  t.equal(types(got), 'EZ');
  t.equal(link2.size, 0, 'link2 does not have it');
  t.ok(c.statements.has('s'), 'the client still has its statement');
});

t.test('errors PostgreSQL raises on names come at their place, and the server fails there too', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('s1', 'SELECT 1'), sync());
  c.reply(cache, server.parseComplete(), server.ready('I'));

  const dup = c.send(cache, parse('s1', 'SELECT 2'), bind('s1'), sync());
  t.equal(types(dup.server), 'DBS', 'a failing Describe stands in for the Parse');
  const [standIn, renamed] = names(dup.server);
  t.ok(standIn.length > 63, 'a name SQL PREPARE cannot create');
  t.equal(renamed, 'txp_1');
  const got = c.reply(cache, server.error('26000', 'prepared statement "txp_0" does not exist'), server.ready('E'));
  t.equal(types(got), 'EZ');
  t.equal(errorOf(got).code, '42P05');
  t.match(errorOf(got).message, 'prepared statement "s1" already exists');

  const missing = c.send(cache, bind('nope'), execute(), sync());
  t.equal(types(missing.server), 'DES');
  const got2 = c.reply(cache, server.error('26000', 'prepared statement "txp_0" does not exist'), server.ready('I'));
  t.equal(errorOf(got2).code, '26000');
  t.match(errorOf(got2).message, 'prepared statement "nope" does not exist');
  t.same(names(c.send(cache, serialize.describe({ type: 'S', name: 'nope' })).server), [standIn], 'Describe of an unknown name: the same stand-in');
});

t.test('after an error with no Sync sent yet, what the client sends until Sync gets no answer', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('s1', 'SELECT 1/0'), bind('s1'), execute(), serialize.flush());
  t.equal(types(c.reply(cache, server.parseComplete(), server.bindComplete(), server.error('22012'))), '12E');
  const more = c.send(cache, serialize.close({ type: 'S', name: 's1' }), parse('s2', 'SELECT 1/0'), serialize.flush());
  t.equal(more.client.length, 0, 'no CloseComplete nor ParseComplete: PostgreSQL skips to Sync');
  t.ok(c.statements.has('s1'));
  t.notOk(c.statements.has('s2'));
  c.send(cache, sync());
  t.same(c.reply(cache, server.ready('I')), server.ready('I'));
  t.same(c.send(cache, serialize.close({ type: 'S', name: 's1' })).client, server.closeComplete(), 'answered again after the Sync');
});

t.test('a skipped Close of an evicted statement is sent again with the next eviction', async (t) => {
  const cache = new ServerStatementCache(1);
  const c = client();
  c.send(cache, parse('a', 'SELECT 1'), sync());
  c.reply(cache, server.parseComplete(), server.ready('I'));
  c.send(cache, parse('x', 'SELEKT'), parse('b', 'SELECT 2'), sync());
  // x failed: the Close of txp_1 (evicted by x) and b's Parse were skipped.
  t.equal(types(c.reply(cache, server.error('42601'), server.ready('I'))), 'EZ');
  t.same(cache.pendingCloses, ['txp_1']);
  const out = c.send(cache, parse('b', 'SELECT 2'), sync());
  t.same(names(out.server), ['txp_1', 'txp_4'], 'the stray is closed first');
  t.equal(types(c.reply(cache, server.closeComplete(), server.parseComplete(), server.ready('I'))), '1Z');
});

t.test('DISCARD ALL and DEALLOCATE ALL: the server has none left, nor the client', async (t) => {
  for (const tag of ['DISCARD ALL', 'DEALLOCATE ALL']) {
    const cache = new ServerStatementCache(10);
    const c = client();
    c.answers.onDeallocateAll = () => c.statements.clear();
    c.send(cache, parse('s1', 'SELECT 1'), sync());
    c.reply(cache, server.parseComplete(), server.ready('I'));
    c.send(cache, serialize.query(tag));
    t.equal(types(c.reply(cache, server.complete(tag), server.ready('I'))), 'CZ');
    t.equal(cache.size, 0, `${tag}: cache emptied`);
    t.equal(c.statements.size, 0, `${tag}: client statements gone`);
  }
});

t.test('a simple Query error does not skip: its ReadyForQuery ends it', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, serialize.query('SELECT 1/0'));
  c.send(cache, parse('s1', 'SELECT 1'), sync());
  const got = c.reply(cache, server.error('22012'), server.ready('I'), server.parseComplete(), server.ready('I'));
  t.equal(types(got), 'EZ1Z');
  t.ok(c.statements.has('s1'));
});

t.test('in a failed transaction a Parse the server has goes to the server unnamed, for it to refuse', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('s1', 'SELECT 1'), sync());
  c.reply(cache, server.parseComplete(), server.ready('T'));
  c.send(cache, bind('s1'), execute(), sync());
  c.reply(cache, server.error('22012'), server.ready('E'));
  t.equal(cache.status, 'E');
  const out = c.send(cache, parse('s2', 'SELECT 1'), sync());
  t.same(out.server, Buffer.concat([parse('', 'SELECT 1'), sync()]));
  t.equal(out.client.length, 0, 'no ParseComplete of txproxy: the server answers');
  t.equal(types(c.reply(cache, server.error('25P02'), server.ready('E'))), 'EZ');
  t.notOk(c.statements.has('s2'), 'refused: the client has no s2, as with PostgreSQL');
  t.equal(cache.size, 1, 'the server copy stays');
  c.send(cache, serialize.query('ROLLBACK'));
  c.reply(cache, server.complete('ROLLBACK'), server.ready('I'));
  t.equal(c.send(cache, parse('s2', 'SELECT 1')).client.length, 5, 'after the transaction: ParseComplete by txproxy again');
});

t.test('a Bind renamed by the rewriter reuses the client buffer for its parameters', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  c.send(cache, parse('big', 'SELECT $1::text'), sync());
  c.reply(cache, server.parseComplete(), server.ready('I'));
  const original = bind('big', ['v'.repeat(100_000)]);
  const out = c.rewriter.rewrite(cache, original, 0, original.length);
  t.equal(out.toServer.length, 2, 'a new header, then the rest');
  t.ok(out.toServer[0].length < 20, 'the header is small');
  t.equal(out.toServer[1].buffer, original.buffer, 'the rest is a view on the client bytes');
  t.same(Buffer.concat(out.toServer), bind('txp_1', ['v'.repeat(100_000)]));
});

t.test('a malformed message is refused with a protocol decode error, for the caller to answer 08P01', async (t) => {
  const cache = new ServerStatementCache(10);
  const c = client();
  const truncated = Buffer.from('P\0\0\0\x08abc', 'latin1');
  t.throws(() => c.rewriter.rewrite(cache, truncated, 0, truncated.length), { name: 'ProtocolDecodeError' });
  const shortClose = Buffer.from('C\0\0\0\x04', 'latin1');
  t.throws(() => c.rewriter.rewrite(cache, shortClose, 0, shortClose.length), { name: 'ProtocolDecodeError' });
});

t.test('a cache needs room for one statement', async (t) => {
  t.throws(() => new ServerStatementCache(0), RangeError);
});

t.test('a refused Query: the server runs a stand-in that fails, the client gets the refusal and the ReadyForQuery', async (t) => {
  const c = client();
  const cache = new ServerStatementCache(10);
  const query = serialize.query('LISTEN events');
  const report = { severity: 'ERROR' as const, code: '0A000', message: 'LISTEN is not allowed', hint: 'Use a session-mode pool.' };
  const out = c.rewriter.refuse(query, 0, report);
  const sent = Buffer.concat(out.toServer);
  t.equal(types(sent), 'Q');
  t.notMatch(sent.toString('latin1'), /LISTEN/, 'the statement never reaches the server');
  const answered = c.reply(cache, server.error('22012', 'division by zero'), server.ready('E'));
  t.equal(types(answered), 'EZ');
  t.match(errorOf(answered), { code: '0A000', message: 'LISTEN is not allowed', hint: 'Use a session-mode pool.' });
  t.equal(c.answers.pending, 0);
});

t.test('a refused Parse: the batch skips to Sync as after a failed Parse', async (t) => {
  const c = client();
  const cache = new ServerStatementCache(10);
  const report = { severity: 'ERROR' as const, code: '0A000', message: 'LISTEN is not allowed' };
  const refused = c.rewriter.refuse(parse('s1', 'LISTEN events'), 0, report);
  const rest = c.send(cache, bind('s1'), execute(), sync());
  t.equal(types(Buffer.concat(refused.toServer)), 'D', 'a Describe of a statement that cannot exist stands in');
  t.equal(types(rest.server), 'DES', 'the Bind of the statement never prepared fails in place too (the server skips it)');
  t.notOk(c.statements.has('s1'), 'the refused statement is not the client’s');
  const answered = c.reply(cache, server.error('26000', 'prepared statement does not exist'), server.ready('I'));
  t.equal(types(answered), 'EZ', 'one error, the refusal: the rest was skipped');
  t.match(errorOf(answered), { code: '0A000' });
});
