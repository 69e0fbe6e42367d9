import t from 'tap';
import { MessageReader } from '../../src/server-link/message-reader.js';

function message(type: string, body: string): Buffer {
  const b = Buffer.from(body);
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

const stream = Buffer.concat([message('S', 'TimeZone\0UTC\0'), message('K', '\0\0\0\x07abcd'), message('Z', 'I')]);

t.test('the same messages whatever the split, at every offset', async (t) => {
  for (let at = 0; at <= stream.length; at++) {
    const reader = new MessageReader();
    const got = [...reader.push(stream.subarray(0, at)), ...reader.push(stream.subarray(at))];
    t.same(
      got.map((m) => [m.type, m.body.toString('latin1')]),
      [
        ['S', 'TimeZone\0UTC\0'],
        ['K', '\0\0\0\x07abcd'],
        ['Z', 'I'],
      ],
      `split at ${at}`,
    );
  }
});

t.test('one byte at a time', async (t) => {
  const reader = new MessageReader();
  const got = [];
  for (const byte of stream) got.push(...reader.push(Buffer.from([byte])));
  t.same(got.map((m) => m.type), ['S', 'K', 'Z']);
});

t.test('a message is a copy: later chunks do not change it', async (t) => {
  const reader = new MessageReader();
  const chunk = Buffer.from(message('C', 'SELECT 1\0'));
  const [m] = reader.push(chunk);
  chunk.fill(0);
  t.equal(m.body.toString(), 'SELECT 1\0');
});
