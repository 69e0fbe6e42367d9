import t from 'tap';
import { decodeCommandComplete, decodeQuery } from '../../src/protocol/decode.js';
import { commandComplete } from '../../src/protocol/encode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { RecentStrings } from '../../src/protocol/recent-strings.js';

t.test('a string read again comes back without being decoded', async (t) => {
  let decoded = 0;
  const recent = new RecentStrings((buf, start, end) => {
    decoded++;
    return Buffer.from(buf.subarray(start, end)).toString('utf8');
  });
  const buf = Buffer.from('xxUPDATE 1yy');
  t.equal(recent.find(buf, 2, 10), null, 'not read yet');
  const first = recent.add(buf, 2, 10);
  t.equal(first, 'UPDATE 1');
  t.equal(recent.find(Buffer.from('UPDATE 1'), 0, 8), 'UPDATE 1', 'the same bytes elsewhere');
  t.equal(decoded, 1);
  t.equal(recent.find(Buffer.from('UPDATE 2'), 0, 8), null, 'other bytes');
  t.equal(recent.find(Buffer.from('UPDATE 10'), 0, 9), null, 'more bytes');

  // The read buffer is filled again by the next read: what was remembered is a copy.
  buf.write('DELETE 1', 2);
  t.equal(recent.find(buf, 2, 10), null, 'the bytes now in the buffer are not the ones read');
  t.equal(recent.find(Buffer.from('UPDATE 1'), 0, 8), 'UPDATE 1');
  t.equal(recent.find(Buffer.alloc(0), 0, 0), null, 'nothing to find in no bytes');
});

t.test('CommandComplete tags read alike from a recent tag and from the bytes', async (t) => {
  for (const tag of ['SELECT 1', 'SELECT 1', 'INSERT 0 1', 'BEGIN', 'COMMIT', 'UPDATE 1', 'UPDATE 12', 'SELECT 1', '', 'CREATE TABLE']) {
    const message = commandComplete(tag);
    t.equal(decodeCommandComplete(message, 0, message.length), tag, JSON.stringify(tag));
  }
  // A NUL inside: the server would never send it, and the tag ends there, as a C string does.
  const inner = Buffer.from([0x43, 0, 0, 0, 14, ...Buffer.from('SELECT\0 1'), 0]);
  t.equal(decodeCommandComplete(inner, 0, inner.length), 'SELECT');
  t.equal(decodeCommandComplete(inner, 0, inner.length), 'SELECT', 'and again, with SELECT recent');
  const unterminated = Buffer.from([0x43, 0, 0, 0, 12, ...Buffer.from('SELECT 1')]);
  t.throws(() => decodeCommandComplete(unterminated, 0, unterminated.length), /NUL-terminated/);
});

t.test('short Query texts read alike from a recent one and from the bytes', async (t) => {
  for (const sql of ['BEGIN', 'COMMIT', 'BEGIN', 'SELECT 1', 'END;', 'COMMIT', '', 'SELECT ' + 'x'.repeat(40)]) {
    const message = serialize.query(sql);
    t.equal(decodeQuery(message, 0, message.length), sql, JSON.stringify(sql));
  }
  const inner = Buffer.from([0x51, 0, 0, 0, 11, ...Buffer.from('BEGIN\0 x'), 0]);
  t.equal(decodeQuery(inner, 0, inner.length), 'BEGIN', 'a NUL inside ends the text, as the server reads it');
});

t.test('the strings a workload repeats keep their own slots', async (t) => {
  const common = {
    tags: ['SELECT 1', 'UPDATE 1', 'INSERT 0 1', 'DELETE 1', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'SET', 'START TRANSACTION', 'DISCARD ALL', 'SELECT 0', 'UPDATE 0'],
    queries: ['BEGIN', 'BEGIN;', 'COMMIT', 'COMMIT;', 'END', 'END;', 'ROLLBACK', 'ROLLBACK;', 'SELECT 1', 'START TRANSACTION', 'DISCARD ALL', 'BEGIN READ ONLY'],
  };
  for (const [kind, strings] of Object.entries(common)) {
    let decoded = 0;
    const recent = new RecentStrings((buf, start, end) => {
      decoded++;
      return Buffer.from(buf.subarray(start, end)).toString('utf8');
    });
    for (const text of strings) recent.add(Buffer.from(text), 0, text.length);
    const missed = strings.filter((text) => recent.find(Buffer.from(text), 0, text.length) !== text);
    t.same(missed, [], `${kind}: each is found again`);
    t.equal(decoded, strings.length, `${kind}: each was decoded once`);
  }
});
