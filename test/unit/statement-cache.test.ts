import t from 'tap';
import { splitStatements } from '../../src/sql/classify.js';
import { literalSpans, numberShape, Shape, shapeKey, shapeKeyOfBytes } from '../../src/sql/number-shape.js';
import { classifyStatementCached, knownShapeOf, splitStatementsCached } from '../../src/sql/statement-cache.js';

t.test('numberShape zeroes number literals and nothing that can name something', async (t) => {
  t.equal(numberShape('SELECT abalance FROM pgbench_accounts WHERE aid = 48213;'), 'SELECT abalance FROM pgbench_accounts WHERE aid = 00000;');
  t.equal(numberShape('SELECT 1.5e10, .25, 7::int, -3'), 'SELECT 0.0e10, .00, 0::int, -0');
  t.equal(numberShape('SELECT t1.c2 FROM t1 LIMIT 10 OFFSET 20'), 'SELECT t1.c2 FROM t1 LIMIT 00 OFFSET 00');
  t.equal(numberShape('SAVEPOINT "s1403_x1"; SELECT 5'), 'SAVEPOINT "s1403_x1"; SELECT 0', 'quoted identifiers keep their digits');
  t.equal(numberShape(`SELECT 'it''s 2024', 3`), `SELECT 'it''s 2024', 0`, 'strings keep their digits');
  t.equal(numberShape('UPDATE é1 SET x = 2'), 'UPDATE é1 SET x = 0', 'identifiers beyond ASCII keep their digits');
  t.equal(numberShape('SELECT abalance FROM pgbench_accounts'), null, 'no number literal');
  for (const unsafe of ['SELECT 1 -- note', 'SELECT /* 1 */ 2', 'SELECT $1, 2', 'SELECT $$ 1 $$', `SELECT E'\\'' , 1`]) t.equal(numberShape(unsafe), null, unsafe);
});

t.test('texts found through their shape split and classify as they do on their own', async (t) => {
  const templates = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = #;',
    'UPDATE pgbench_accounts SET abalance = abalance + # WHERE aid = #;',
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (#, #, #, #, CURRENT_TIMESTAMP);',
    'BEGIN; UPDATE t SET n = n + # WHERE id = #; COMMIT',
    '  SELECT #  ;  ; DELETE FROM t WHERE id IN (#, #)  ',
    'SAVEPOINT "s#_x1"; SELECT #; RELEASE SAVEPOINT "s#_x1"',
    'SAVEPOINT s1; ROLLBACK TO SAVEPOINT s1; SELECT # FOR UPDATE',
    `SELECT * FROM "t#" WHERE name = 'n#' AND id = #`,
    'SELECT #.#e#, -#, (#)',
    'CREATE TABLE t# (id int DEFAULT #)',
    'VALUES (#), (#)',
    '#',
    '(#)',
    'COMMIT AND CHAIN; SELECT #',
  ];
  let hits = 0;
  for (const template of templates) {
    for (let round = 0; round < 3; round++) {
      let n = 0;
      const sql = template.replace(/#/g, () => String((round * 7919 + n++ * 104729) % (10 ** (1 + ((round + n) % 6)))));
      const expected = splitStatements(sql);
      t.same(splitStatementsCached(sql), expected, sql);
      t.same(classifyStatementCached(sql).text, expected.length === 1 ? expected[0].text : sql.trim(), `${sql} as one statement`);
      if (numberShape(sql) !== null) hits++;
    }
  }
  t.ok(hits >= 30, `${hits} texts went through the shape cache`);
});

t.test('a text matches a shape only where it has digits in the literals and the shape elsewhere', async (t) => {
  const base = 'SELECT * FROM t1 WHERE id = 42 LIMIT 7';
  const shape = new Shape(base, literalSpans(base)!);
  t.equal(shape.text, 'SELECT * FROM t1 WHERE id = 00 LIMIT 0');
  t.ok(shape.matches('SELECT * FROM t1 WHERE id = 99 LIMIT 3'), 'other numbers');
  t.notOk(shape.matches('SELECT * FROM t2 WHERE id = 99 LIMIT 3'), 'digits that name a table stay');
  t.notOk(shape.matches('SELECT * FROM t1 WHERE id = 9x LIMIT 3'), 'a literal must stay digits');
  t.notOk(shape.matches('SELECT * FROM t1 WHERE id = 123 LIMIT 3'), 'a longer literal is another shape');
  t.notOk(shape.matches('SELECT * FROM t1 WHERE id = 12 LIMIT 34'), 'same length, literals elsewhere');
  t.notOk(shape.matches('SELECT * FROM t1 WHERE id = 42 LIMIT 7;'), 'a longer text');
  t.notOk(shape.matches('select * FROM t1 WHERE id = 42 LIMIT 7'), 'letters compare exactly');
});

t.test('every text of a shape has its key, and each text is looked up correctly among shapes sharing one', async (t) => {
  // The key reads the length and four characters: these differ only elsewhere.
  const texts = ['SELECT a FROM t WHERE x = 1 AND y = 2', 'SELECT b FROM t WHERE x = 1 AND y = 2', 'SELECT a FROM t WHERE x = 1 AND z = 2'];
  for (const text of texts) {
    const spans = literalSpans(text)!;
    const shape = new Shape(text, spans);
    t.equal(shapeKey(text.replace(/\d/g, '7')), shapeKey(text), `${text}: numbers do not change the key`);
    t.equal(shapeKey(shape.text), shapeKey(text), `${text}: its shape has its key`);
  }
  t.equal(new Set(texts.map(shapeKey)).size, 1, 'the three share a key');
  for (let round = 0; round < 3; round++) {
    for (const template of texts) {
      const sql = template.replace(/\d/g, String(round + 3));
      t.same(splitStatementsCached(sql), splitStatements(sql), sql);
    }
  }
});

t.test('a text with digits and no number literal is split as it is, and remembered whole', async (t) => {
  for (const sql of ['SAVEPOINT s1', 'SELECT * FROM t1', 'RELEASE SAVEPOINT "2"']) {
    t.equal(literalSpans(sql), null, sql);
    t.same(splitStatementsCached(sql), splitStatements(sql), sql);
    t.equal(splitStatementsCached(sql), splitStatementsCached(sql), `${sql}: the second lookup answers from the cache`);
  }
});

t.test('a key with many shapes keeps them all, and the shape sent most comes to be tried first', async (t) => {
  // Literals of every length in a text of one length, as pgbench's TPC-B sends them:
  // `+ 7 WHERE aid = 123456789` and `+ 7654321 WHERE aid = 123` share a key.
  // (The literals lie between the characters the key reads.)
  const text = (delta: number) =>
    `UPDATE shapes_many SET v = v + ${'7'.repeat(delta)} WHERE id = ${'4'.repeat(12 - delta)} AND note IS DISTINCT FROM 'a tail long enough to leave them be';`;
  const lengths = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  t.equal(new Set(lengths.map((delta) => shapeKey(text(delta)))).size, 1, 'eleven shapes share a key');
  for (const delta of lengths) t.same(splitStatementsCached(text(delta)), splitStatements(text(delta)), `shape ${delta}`);

  const matches = Shape.prototype.matches;
  let tried = 0;
  Shape.prototype.matches = function (this: Shape, sql: string) {
    tried++;
    return matches.call(this, sql);
  };
  t.teardown(() => {
    Shape.prototype.matches = matches;
  });
  // Every shape is still known: none is read afresh, and each answers as a split would.
  for (const delta of lengths) {
    const sql = text(delta).replace(/4/g, '5');
    t.same(splitStatementsCached(sql), splitStatements(sql), `shape ${delta} again`);
  }
  // A shape from the middle of the list, sent again and again, moves to the front.
  const often = text(6).replace(/7/g, '8');
  for (let i = 0; i < lengths.length; i++) splitStatementsCached(often);
  tried = 0;
  t.same(splitStatementsCached(often), splitStatements(often));
  t.equal(tried, 1, 'found at the first shape tried');
});

/** `sql` as a Query's text sits in a read buffer: bytes around it that are not its own. */
function inBuffer(sql: string): { buf: Buffer; start: number; end: number } {
  const text = Buffer.from(sql);
  const buf = Buffer.concat([Buffer.from('Q\0\0\0\0'), text, Buffer.from('\0SELECT 99')]);
  return { buf, start: 5, end: 5 + text.length };
}

t.test('a text in bytes matches a shape exactly where its string would', async (t) => {
  const base = 'SELECT * FROM t1 WHERE id = 42 LIMIT 7';
  const shape = new Shape(base, literalSpans(base)!);
  const texts = [
    'SELECT * FROM t1 WHERE id = 99 LIMIT 3',
    'SELECT * FROM t2 WHERE id = 99 LIMIT 3',
    'SELECT * FROM t1 WHERE id = 9x LIMIT 3',
    'SELECT * FROM t1 WHERE id = 123 LIMIT 3',
    'SELECT * FROM t1 WHERE id = 12 LIMIT 34',
    'SELECT * FROM t1 WHERE id = 42 LIMIT 7;',
    'select * FROM t1 WHERE id = 42 LIMIT 7',
    'SELECT * FROM t1 WHERE id = 4\0 LIMIT 7',
  ];
  for (const sql of texts) {
    const { buf, start, end } = inBuffer(sql);
    // JSON: a test's name must not put a NUL in the TAP output.
    t.equal(shape.matchesBytes(buf, start, end), shape.matches(sql), JSON.stringify(sql));
    t.equal(shapeKeyOfBytes(buf, start, end), shapeKey(sql), `${JSON.stringify(sql)}: the key of its string`);
  }
  t.ok(shape.matchesBytes(inBuffer(texts[0]).buf, 5, 5 + texts[0].length), 'a match at all');

  const wide = 'UPDATE é1 SET x = 2';
  const wideShape = new Shape(wide, literalSpans(wide)!);
  const { buf, start, end } = inBuffer('UPDATE é1 SET x = 3');
  t.notOk(wideShape.matchesBytes(buf, start, end), 'a shape beyond ASCII is matched as a string only');
  t.ok(wideShape.matches('UPDATE é1 SET x = 3'));
});

t.test('a Query of a known shape is split from its bytes, and its texts made from its literals', async (t) => {
  const sql = (a: string, b: string) => `UPDATE bytes_path SET v = v + ${a} WHERE id = ${b}; SELECT v FROM bytes_path WHERE id = ${b}`;
  const known = (text: string) => {
    const { buf, start, end } = inBuffer(text);
    return knownShapeOf(buf, start, end);
  };
  t.equal(known(sql('5', '17')), null, 'a shape not seen yet is not known');
  splitStatementsCached(sql('5', '17'));
  for (const [a, b] of [['6', '18'], ['8', '40'], ['0', '00'], ['1', '07']]) {
    const shaped = known(sql(a, b));
    const expected = splitStatements(sql(a, b));
    t.ok(shaped, sql(a, b));
    t.same(
      shaped!.statements.map((info) => ({ ...info, text: '', sentText: '' })),
      expected.map((info) => ({ ...info, text: '', sentText: '' })),
      'classified as its text is',
    );
    t.same([0, 1].map((i) => shaped!.statementText(i)), expected.map((info) => info.text), 'texts as sent, leading zeros and all');
    t.same([0, 1].map((i) => shaped!.statementLength(i)), expected.map((info) => info.text.length));
  }
  t.equal(known(sql('123', '4567')), null, 'literals of other lengths are another shape');
  t.equal(known(`${sql('5', '17')} /*traceparent='00-1-2-01'*/`), null, 'no shape has a comment');

  const long = (n: string) => `SELECT * FROM bytes_path WHERE id = ${n}`;
  splitStatementsCached(long('1234567890123456'));
  t.equal(known(long('9999999999999999')), null, 'a literal of 16 digits is not kept as a number');
  t.equal(known(long('999999999999999')), null, 'nor one of 15 digits, until its shape is seen');
  splitStatementsCached(long('123456789012345'));
  t.equal(known(long('999999999999999'))?.statementText(0), long('999999999999999'), '15 digits are exact');

  splitStatementsCached('SET statement_timeout = 5000');
  t.equal(known('SET statement_timeout = 6000'), null, "a SET's text is read for its value: it is decoded");
});
