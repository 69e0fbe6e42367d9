import t from 'tap';
import { decodeCommandComplete, decodeParse, decodeQuery, ProtocolDecodeError, readCString } from '../../src/protocol/decode.js';
import { commandComplete } from '../../src/protocol/encode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';

t.test('a Query decodes to its text, in UTF-8', async (t) => {
  for (const sql of ['SELECT 1', "SELECT 'héllo wörld', '日本語', '🐘'", '']) {
    const message = serialize.query(sql);
    t.equal(decodeQuery(message, 0, message.length), sql, JSON.stringify(sql));
  }
});

t.test('a message inside a larger buffer decodes from its own bytes only', async (t) => {
  const query = serialize.query("SELECT 'é'");
  const tag = commandComplete('INSERT 0 3');
  const buf = Buffer.concat([Buffer.from('junk'), query, tag, Buffer.from('more')]);
  t.equal(decodeQuery(buf, 4, 4 + query.length), "SELECT 'é'");
  t.equal(decodeCommandComplete(buf, 4 + query.length, 4 + query.length + tag.length), 'INSERT 0 3');
});

t.test('a string ends at its first NUL, as the server reads it', async (t) => {
  // 'Q', length, "SELECT 1", NUL, "; COMMIT", NUL: the server reads "SELECT 1" (and then refuses the extra bytes).
  const body = Buffer.from('SELECT 1\0; COMMIT\0');
  const message = Buffer.concat([Buffer.from([0x51, 0, 0, 0, body.length + 4]), body]);
  t.equal(decodeQuery(message, 0, message.length), 'SELECT 1');
});

t.test('a string without its NUL inside the message is a decode error', async (t) => {
  const message = serialize.query('SELECT 1');
  // Cut before the NUL: the string runs past the message's end.
  t.throws(() => decodeQuery(message, 0, message.length - 1), ProtocolDecodeError);
  t.throws(() => readCString(Buffer.from('abc'), 0, 3), ProtocolDecodeError);
});

t.test('Parse decodes its name and text', async (t) => {
  const message = serialize.parse({ name: 's1', text: 'SELECT $1::text', types: [] });
  t.same(decodeParse(message, 0, message.length), { name: 's1', sql: 'SELECT $1::text' });
});
