import t from 'tap';
import { decodeCommandComplete } from '../../src/protocol/decode.js';
import { commandComplete } from '../../src/protocol/encode.js';
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
