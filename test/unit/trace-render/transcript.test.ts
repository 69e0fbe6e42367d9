import t from 'tap';
import { Transcript } from '../../../src/trace-render/transcript.js';
import type { TraceEvent } from '../../../src/trace-render/record-types.js';
import { decodeRecord } from '../../../src/trace-render/records.js';
import { blocksOf, render, session, statement, transaction, transactionBlocks } from './fixtures.js';

const ev = (r: Record<string, unknown>): TraceEvent => {
  const d = decodeRecord(r);
  if (!d.ok || d.event === null) throw new Error('bad fixture');
  return d.event;
};

t.test('an explicit transaction is complete only with its COMMIT, which the tracker writes after the transaction record', async (t) => {
  const transcript = new Transcript();
  t.same(transcript.push(ev(statement('1', '1.t1', 1, 'BEGIN'))), []);
  t.same(transcript.push(ev(statement('1', '1.t1', 2, "INSERT INTO t VALUES (1)"))), []);
  t.same(transcript.push(ev(transaction('1', '1.t1', { implicit: false, statements: 3, writes: 1 }))), [], 'held for its COMMIT');
  t.equal(transcript.holding, true);
  const items = transcript.push(ev(statement('1', '1.t1', 3, 'COMMIT')));
  t.equal(items.length, 1);
  t.match(items[0], { type: 'transaction', block: { id: '1.t1', tx: { outcome: 'commit' } } });
  t.same(items[0].type === 'transaction' && items[0].block.statements.map((s) => s.seq), [1, 2, 3]);
  t.equal(transcript.holding, false);
});

t.test('a held transaction is released by the next record that cannot be its closing statement, or when asked', async (t) => {
  const transcript = new Transcript();
  transcript.push(ev(statement('1', '1.t1', 1, 'BEGIN')));
  transcript.push(ev(transaction('1', '1.t1', { implicit: false, statements: 2 })));
  const next = transcript.push(ev(statement('2', '2.t1', 1, 'SELECT 1')));
  t.same(next.map((i) => i.type), ['transaction'], 'a statement of another session releases it');

  transcript.push(ev(statement('1', '1.t2', 3, 'BEGIN')));
  transcript.push(ev(transaction('1', '1.t2', { implicit: false, statements: 2 })));
  t.same(transcript.releaseHeld().map((i) => i.type === 'transaction' && i.block.id), ['1.t2'], 'the reader says the stream went quiet');
  const late = transcript.push(ev(statement('1', '1.t2', 4, 'COMMIT')));
  t.match(late, [{ type: 'statement', late: true, statement: { seq: 4 } }], 'a record after its block was shown is marked late');
});

t.test('implicit transactions and the not-atomic finding', async (t) => {
  const { text } = render([
    session('7', 'start'),
    statement('7', '7.t1', 1, "INSERT INTO orders VALUES (1)", { 'pg.command_tag': 'INSERT 0 1', 'http.route': '/checkout' }),
    transaction('7', '7.t1', { writes: 1, 'http.route': '/checkout' }),
    statement('7', '7.t2', 2, 'SELECT 1', { 'pg.command_tag': 'SELECT 1' }),
    transaction('7', '7.t2'),
    statement('7', '7.t3', 3, "INSERT INTO addresses VALUES (1)", { 'pg.command_tag': 'INSERT 0 1' }),
    transaction('7', '7.t3', { writes: 1 }),
    // A failed autocommit write left nothing behind: it is no half of anything.
    statement('7', '7.t4', 4, "INSERT INTO addresses VALUES (1)", { 'db.response.status_code': '23505', 'pg.command_tag': null, 'error.message': 'duplicate key' }),
    transaction('7', '7.t4', { outcome: 'failed', writes: 0, first_error: { code: '23505', message: 'duplicate key' } }),
    session('7', 'end'),
  ]);
  const blocks = blocksOf(text);
  t.same(blocks.map((b) => b.title.split(' · ')[0]), ['── session 7 started', '── tx 7.t1', '── tx 7.t2', '── tx 7.t3', '── tx 7.t4', '── request 7.r1', '── session 7 ended']);
  const [, t1, t2, t3, t4, request] = blocks;
  t.match(t1.title, /implicit \(autocommit\) · commit · 2\.00 ms · 1 statement · 1 write$/);
  t.notMatch(t1.lines.join('\n'), /not atomic/);
  t.notMatch(t2.lines.join('\n'), /not atomic/);
  t.match(t3.lines.join('\n'), /WARNING not atomic: autocommit transaction 2 with writes in request 7\.r1 \(after 7\.t1\)/);
  t.match(t4.title, /· failed ·/);
  t.same(t4.statements[0].details, ['ERROR 23505: duplicate key']);
  t.notMatch(t4.lines.join('\n'), /not atomic/);
  t.match(request.lines.join('\n'), /route \/checkout[\s\S]*WARNING not atomic: 2 separate autocommit transactions wrote \(7\.t1, 7\.t3\)/);
});

t.test('requests: a new request id on the session closes the one before; one write per request is fine', async (t) => {
  const records = [];
  let seq = 0;
  for (const r of ['1', '1', '2', '3', '3']) {
    seq++;
    const id = `5.t${seq}`;
    records.push(statement('5', id, seq, 'UPDATE carts SET n = n + 1', { 'pg.command_tag': 'UPDATE 1', 'request.id': `5.r${r}` }));
    records.push(transaction('5', id, { writes: 1, 'request.id': `5.r${r}` }));
  }
  const { text } = render(records);
  const titles = blocksOf(text).map((b) => b.title.split(' · ')[0]);
  t.same(titles, ['── tx 5.t1', '── tx 5.t2', '── request 5.r1', '── tx 5.t3', '── tx 5.t4', '── tx 5.t5', '── request 5.r3']);
});

t.test('the savepoint tree from depths alone (SQL not traced)', async (t) => {
  const s = (seq: number, op: string, depth: number, fields: Record<string, unknown> = {}) =>
    statement('3', '3.t1', seq, op, { 'db.query.text': undefined, 'db.operation.name': op, 'pg.savepoint_depth': depth, ...fields });
  const { text } = render([
    s(1, 'BEGIN', 0),
    s(2, 'SAVEPOINT', 1),
    s(3, 'UPDATE', 1),
    s(4, 'SAVEPOINT', 2),
    s(5, 'SAVEPOINT', 3),
    s(6, 'DELETE', 3),
    s(7, 'ROLLBACK TO SAVEPOINT', 2), // to the second: undoes #5 and #6
    s(8, 'INSERT', 2),
    s(9, 'ROLLBACK TO SAVEPOINT', 2), // again: undoes only #8
    s(10, 'RELEASE SAVEPOINT', 0),
    s(11, 'COMMIT', 0),
    transaction('3', '3.t1', { implicit: false, statements: 11, writes: 2 }),
  ]);
  const [block] = transactionBlocks(text);
  t.same(block.statements.map((x) => x.indent), [0, 0, 1, 1, 2, 3, 1, 2, 1, 0, 0]);
  t.same(block.statements.map((x) => x.sql), [
    '(BEGIN; SQL not traced)',
    '(SAVEPOINT; SQL not traced)',
    '(UPDATE; SQL not traced)',
    '(SAVEPOINT; SQL not traced)',
    '(SAVEPOINT; SQL not traced)',
    '(DELETE; SQL not traced)',
    '(ROLLBACK TO SAVEPOINT; SQL not traced)',
    '(INSERT; SQL not traced)',
    '(ROLLBACK TO SAVEPOINT; SQL not traced)',
    '(RELEASE SAVEPOINT; SQL not traced)',
    '(COMMIT; SQL not traced)',
  ]);
  const bySeq = new Map(block.statements.map((x) => [x.seq, x]));
  t.equal(bySeq.get(5)!.suffix, '↶ rolled back by #7');
  t.equal(bySeq.get(6)!.suffix, '↶ rolled back by #7');
  t.equal(bySeq.get(6)!.gutter, '│││'.slice(0, 1) + '╎╎', 'levels from the rewound one on are drawn as undone');
  t.equal(bySeq.get(7)!.suffix, '↶ undid #5, #6 (2 statements)');
  t.equal(bySeq.get(8)!.suffix, '↶ rolled back by #9');
  t.equal(bySeq.get(9)!.suffix, '↶ undid #8 (1 statement)');
  t.equal(bySeq.get(3)!.suffix, '', 'statements the rollbacks did not reach stay');
  t.equal(bySeq.get(4)!.suffix, '', 'the savepoint rolled back to survives');
});

t.test('a failed savepoint statement changes no level', async (t) => {
  const { text } = render([
    statement('4', '4.t1', 1, 'BEGIN'),
    statement('4', '4.t1', 2, 'SAVEPOINT a', { 'pg.savepoint_depth': 1 }),
    statement('4', '4.t1', 3, 'RELEASE SAVEPOINT nope', { 'db.operation.name': 'RELEASE SAVEPOINT', 'pg.savepoint_depth': 1, 'db.response.status_code': '3B001', 'pg.command_tag': null, 'error.message': 'savepoint "nope" does not exist' }),
    statement('4', '4.t1', 4, 'ROLLBACK TO SAVEPOINT a', { 'db.operation.name': 'ROLLBACK TO SAVEPOINT', 'pg.savepoint_depth': 1, 'pg.command_tag': 'ROLLBACK' }),
    statement('4', '4.t1', 5, 'ROLLBACK'),
    transaction('4', '4.t1', { implicit: false, outcome: 'rollback', statements: 5 }),
  ]);
  const [block] = transactionBlocks(text);
  t.same(block.statements.map((x) => x.indent), [0, 0, 1, 0, 0]);
  t.same(block.statements[2].details, ['ERROR 3B001: savepoint "nope" does not exist']);
  t.equal(block.statements[2].tag, 'ERROR 3B001');
  t.equal(block.statements[2].suffix, '↶ rolled back by #4');
});

t.test('read-only transactions: flagged only when nothing needed the transaction', async (t) => {
  const readOnly = (statements: string[], fields: Record<string, unknown> = {}) => {
    const records: Record<string, unknown>[] = statements.map((sql, i) => statement('9', '9.t1', i + 1, sql, { 'db.operation.name': sql.split(' ')[0] === 'START' ? 'START TRANSACTION' : sql.split(' ')[0].toUpperCase() }));
    records.push(transaction('9', '9.t1', { implicit: false, statements: statements.length, ...fields }));
    return /NOTICE read-only/.test(render(records).text);
  };
  t.equal(readOnly(['BEGIN', 'SELECT * FROM items', 'SELECT count(*) FROM orders', 'COMMIT']), true);
  t.equal(readOnly(['BEGIN', 'SELECT 1', 'ROLLBACK'], { outcome: 'rollback' }), true);
  t.equal(readOnly(['BEGIN', 'WITH x AS (SELECT 1) SELECT * FROM x', 'COMMIT']), true);
  t.equal(readOnly(['BEGIN', 'SELECT * FROM items FOR UPDATE', 'COMMIT']), false, 'row locks need the transaction');
  t.equal(readOnly(['BEGIN ISOLATION LEVEL REPEATABLE READ', 'SELECT 1', 'SELECT 2', 'COMMIT']), false, 'one snapshot for several reads');
  t.equal(readOnly(['START TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'SELECT 1', 'COMMIT']), false);
  t.equal(readOnly(['BEGIN', 'SET LOCAL statement_timeout = 1000', 'SELECT 1', 'COMMIT']), false);
  t.equal(readOnly(['BEGIN', 'DECLARE c CURSOR FOR SELECT 1', 'FETCH 10 FROM c', 'COMMIT']), false, 'cursors live in a transaction');
  t.equal(readOnly(['BEGIN', 'SELECT 1', 'COMMIT'], { writes: 1 }), false);
  t.equal(readOnly(['BEGIN', 'SELECT 1', 'COMMIT'], { statements: 5 }), false, 'statements missing from the trace: cannot tell');
  // Implicit transactions are never flagged: there is no BEGIN to drop.
  t.notMatch(render([statement('9', '9.t2', 1, 'SELECT 1'), transaction('9', '9.t2')]).text, /read-only/);
});

t.test('lock waits inline at their statement, with who blocked whom', async (t) => {
  const { text } = render([
    statement('2', '2.t1', 1, 'BEGIN'),
    // Written when the wait ends: before the statement that waited finishes.
    {
      kind: 'lock_wait',
      time: '2026-01-02T03:04:06.000Z',
      end: '2026-01-02T03:04:07.012Z',
      duration_ms: 1012,
      'session.id': '2',
      'transaction.id': '2.t1',
      'statement.seq': 2,
      'db.namespace': 'app',
      'pg.backend_pid': 4002,
      'db.query.text': 'SELECT * FROM items WHERE id = 1 FOR UPDATE',
      'lock.type': 'transactionid',
      'lock.mode': 'ShareLock',
      'lock.relation': 'public.items',
      blocked_by: [
        {
          'pg.backend_pid': 4001,
          'session.id': '1',
          'transaction.id': '1.t1',
          'http.route': '/pay',
          statements: [
            { seq: 1, text: 'BEGIN' },
            { seq: 2, text: 'SELECT * FROM items\n  WHERE id = 1 FOR UPDATE' },
          ],
          'application.name': null,
          state: null,
          query: null,
        },
        { 'pg.backend_pid': 777, 'session.id': null, 'transaction.id': null, 'http.route': null, statements: null, 'application.name': 'psql', state: 'idle in transaction', query: 'UPDATE items SET n = 1' },
      ],
      'request.id': '2.r1',
    },
    statement('2', '2.t1', 2, 'SELECT * FROM items WHERE id = 1 FOR UPDATE', { duration_ms: 1013.2, 'pg.lock_wait_ms': 1012, 'pg.command_tag': 'SELECT 1' }),
    statement('2', '2.t1', 3, 'COMMIT'),
    transaction('2', '2.t1', { implicit: false, statements: 3, lock_wait_ms: 1012 }),
  ]);
  const [block] = transactionBlocks(text);
  t.match(block.lines[1], /waited on locks 1\.01 s/);
  const waited = block.statements.find((s) => s.seq === 2)!;
  t.equal(waited.tag, 'SELECT 1');
  t.same(waited.details, [
    'LOCK WAIT 1.01 s for ShareLock on transactionid of public.items, blocked by:',
    'pid 4001 · session 1 · tx 1.t1 · route /pay',
    '#1 BEGIN',
    '#2 SELECT * FROM items WHERE id = 1 FOR UPDATE',
    'pid 777 · outside txproxy · application psql · idle in transaction',
    'UPDATE items SET n = 1',
  ]);
  t.same(block.statements.find((s) => s.seq === 3)!.details, [], 'nothing hangs at the other statements');
});

t.test('a deadlock hangs at the statement that got 40P01, naming every process of the cycle', async (t) => {
  const { text } = render([
    statement('1', '1.t1', 1, 'BEGIN'),
    statement('1', '1.t1', 2, 'UPDATE a SET n = 1 WHERE id = 1', { 'pg.command_tag': 'UPDATE 1' }),
    statement('1', '1.t1', 3, 'UPDATE a SET n = 1 WHERE id = 2', { 'db.response.status_code': '40P01', 'pg.command_tag': null, 'error.message': 'deadlock detected' }),
    {
      kind: 'deadlock',
      time: '2026-01-02T03:04:08.000Z',
      'session.id': '1',
      'transaction.id': '1.t1',
      'db.namespace': 'app',
      'pg.backend_pid': 4001,
      processes: [
        { 'pg.backend_pid': 4001, waits_for: 'ShareLock on transaction 901', blocked_by_pid: 4002, 'session.id': '1', 'transaction.id': '1.t1', 'http.route': null, last_statement: 'UPDATE a SET n = 1 WHERE id = 2', victim: true },
        { 'pg.backend_pid': 4002, waits_for: 'ShareLock on transaction 900', blocked_by_pid: 4001, 'session.id': '2', 'transaction.id': '2.t1', 'http.route': '/x', last_statement: 'UPDATE a SET n = 2 WHERE id = 1', victim: false },
      ],
    },
    statement('1', '1.t1', 4, 'ROLLBACK'),
    transaction('1', '1.t1', { implicit: false, outcome: 'failed', statements: 4, first_error: { code: '40P01', message: 'deadlock detected' } }),
  ]);
  const [block] = transactionBlocks(text);
  t.match(block.title, /· failed ·/);
  t.same(block.statements.find((s) => s.seq === 3)!.details, [
    'ERROR 40P01: deadlock detected',
    'DEADLOCK among 2 processes; victim pid 4001:',
    'pid 4001 (victim) · session 1 · tx 1.t1 · waits for ShareLock on transaction 901 · blocked by pid 4002',
    'last: UPDATE a SET n = 1 WHERE id = 2',
    'pid 4002 · session 2 · tx 2.t1 · route /x · waits for ShareLock on transaction 900 · blocked by pid 4001',
    'last: UPDATE a SET n = 2 WHERE id = 1',
  ]);
});

t.test('policy decisions inline, before the statement they were about; outside a transaction on their own', async (t) => {
  const policy = (tx: string | null, fields: Record<string, unknown> = {}) => ({
    kind: 'policy',
    time: '2026-01-02T03:04:09.000Z',
    'session.id': '6',
    'transaction.id': tx,
    'request.id': '6.r1',
    rule: 'checkout-atomic',
    mode: 'atomic',
    action: 'warn',
    decision: 'warned',
    sqlstate: null,
    message: 'write outside a transaction block',
    ...fields,
  });
  const { text } = render([
    statement('6', '6.t1', 1, 'BEGIN'),
    policy('6.t1', { decision: 'limit', action: 'enforce', sqlstate: '25P04', message: 'transaction longer than 5 s' }),
    statement('6', '6.t1', 2, 'SELECT pg_sleep(6)', { 'db.response.status_code': '25P04', 'pg.command_tag': null }),
    transaction('6', '6.t1', { implicit: false, outcome: 'failed', statements: 2 }),
    policy(null, { 'db.query.text': 'INSERT INTO orders VALUES (1)' }),
  ]);
  const blocks = blocksOf(text);
  t.equal(blocks.length, 2);
  t.same(blocks[0].statements[0].details, ['POLICY checkout-atomic (atomic, enforce): limit 25P04: transaction longer than 5 s'], 'hangs after the statement before the one it was about');
  t.same(blocks[1].lines, [
    '── policy outside any transaction · session 6 · request 6.r1 · 2026-01-02 03:04:09.000 UTC',
    '    POLICY checkout-atomic (atomic, warn): warned: write outside a transaction block',
    '      INSERT INTO orders VALUES (1)',
  ]);
});

t.test('dry-run reports', async (t) => {
  const { text } = render([
    {
      kind: 'dry_run',
      time: '2026-01-02T03:04:10.000Z',
      'session.id': '8',
      'request.id': '8.r1',
      'http.route': '/import',
      changes: [
        { command: 'INSERT', rows: 2, statement: 'INSERT INTO items (name) VALUES ($1), ($2)' },
        { command: 'DELETE', rows: 1, statement: 'DELETE FROM items WHERE id = $1' },
      ],
      rows_total: 3,
      rolled_back: true,
    },
  ]);
  t.same(blocksOf(text)[0].lines, [
    '── dry run · session 8 · request 8.r1 · route /import · 3 rows would have changed · rolled back · 2026-01-02 03:04:10.000 UTC',
    '    INSERT       2 rows  INSERT INTO items (name) VALUES ($1), ($2)',
    '    DELETE        1 row  DELETE FROM items WHERE id = $1',
  ]);
});

t.test('end of input: unfinished transactions and statements outside any transaction are still shown', async (t) => {
  const { text } = render([
    statement('1', null, 1, 'COMMIT'),
    statement('1', '1.t1', 2, 'BEGIN'),
    statement('1', '1.t1', 3, 'UPDATE items SET n = 2', { 'pg.command_tag': 'UPDATE 1', duration_ms: 40 }),
  ]);
  const blocks = blocksOf(text);
  t.match(blocks[0].title, /^── outside any transaction · session 1/);
  t.equal(blocks[0].statements[0].sql, 'COMMIT');
  t.match(blocks[1].title, /^── tx 1\.t1 · unfinished · no transaction record .* · 2 statements seen$/);
  t.same(blocks[1].statements.map((s) => s.seq), [2, 3]);
});

t.test('filters: session, route, minimum duration', async (t) => {
  const records = [
    session('1', 'start'),
    statement('1', '1.t1', 1, 'SELECT 1', { 'http.route': '/a' }),
    transaction('1', '1.t1', { duration_ms: 5, 'http.route': '/a' }),
    statement('2', '2.t1', 1, 'SELECT 2', { 'http.route': '/b' }),
    transaction('2', '2.t1', { duration_ms: 50, 'http.route': '/b' }),
    statement('2', '2.t2', 2, 'SELECT 3'),
    transaction('2', '2.t2', { duration_ms: 500 }),
    session('1', 'end'),
  ];
  const titles = (filter: Parameters<typeof render>[1]) => blocksOf(render(records, filter).text).map((b) => b.title.split(' · ')[0]);
  t.same(titles({ sessionId: null, route: null, minMs: null }), ['── session 1 started', '── tx 1.t1', '── tx 2.t1', '── tx 2.t2', '── session 1 ended']);
  t.same(titles({ sessionId: '2', route: null, minMs: null }), ['── tx 2.t1', '── tx 2.t2']);
  t.same(titles({ sessionId: '1', route: null, minMs: null }), ['── session 1 started', '── tx 1.t1', '── session 1 ended']);
  t.same(titles({ sessionId: null, route: '/b', minMs: null }), ['── tx 2.t1']);
  t.same(titles({ sessionId: null, route: null, minMs: 50 }), ['── tx 2.t1', '── tx 2.t2']);
  t.same(titles({ sessionId: '2', route: null, minMs: 100 }), ['── tx 2.t2']);
  t.same(titles({ sessionId: null, route: '/nowhere', minMs: null }), []);
});

t.test('malformed lines are reported with their line number and skipped; the rest still renders', async (t) => {
  const { text, problems } = render([
    statement('1', '1.t1', 1, 'SELECT 1'),
    '{"kind":"statement", "session.id": "1"',
    '',
    'plain text from something else',
    '[]',
    transaction('1', '1.t1'),
  ]);
  // The JSON parser's own words differ between Node versions: match their shape.
  t.match(problems, [/^line 2: not valid JSON \(.+\)$/, /^line 4: not valid JSON \(.+\)$/, /^line 5: not a JSON object$/]);
  t.equal(problems.length, 3, 'the empty line 3 is no problem');
  t.equal(transactionBlocks(text).length, 1);
});
