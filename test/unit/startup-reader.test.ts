import t from 'tap';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { decodeStartupPacket } from '../../src/protocol/decode.js';
import { StartupLengthError, StartupReader } from '../../src/protocol/startup-reader.js';

function protocol32Startup(params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(k + '\0'), Buffer.from(v + '\0')]), Buffer.from([0])]);
  const packet = Buffer.alloc(8 + body.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(196610, 4);
  body.copy(packet, 8);
  return packet;
}

const ssl = serialize.requestSsl();
const startup = serialize.startup({ user: 'alice', database: 'shop', application_name: 'web' });
const cancel = serialize.cancel(4242, 77);
const gss = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);

t.test('packets decode to what they are', async (t) => {
  t.same(decodeStartupPacket(ssl), { kind: 'ssl' });
  t.same(decodeStartupPacket(gss), { kind: 'gssenc' });
  const c = decodeStartupPacket(cancel);
  t.equal(c.kind, 'cancel');
  if (c.kind === 'cancel') {
    t.equal(c.pid, 4242);
    t.equal(c.key.readInt32BE(0), 77);
  }
  t.same(decodeStartupPacket(startup), { kind: 'startup', major: 3, minor: 0, params: { user: 'alice', database: 'shop', application_name: 'web', client_encoding: 'UTF8' } });
  t.same(decodeStartupPacket(protocol32Startup({ user: 'bob' })), { kind: 'startup', major: 3, minor: 2, params: { user: 'bob' } });
  const v4 = Buffer.from([0, 0, 0, 8, 0, 4, 0, 0]);
  t.same(decodeStartupPacket(v4), { kind: 'unknown', code: 4 << 16 });
});

t.test('SSLRequest then StartupMessage, split at every offset', async (t) => {
  const stream = Buffer.concat([ssl, startup]);
  for (let i = 0; i <= stream.length; i++) {
    const reader = new StartupReader();
    const packets: Buffer[] = [];
    for (const chunk of [stream.subarray(0, i), stream.subarray(i)]) {
      let read = reader.push(Buffer.from(chunk));
      while (read.kind === 'packet') {
        packets.push(read.packet);
        read = reader.next();
      }
    }
    if (packets.length !== 2 || !packets[0].equals(ssl) || !packets[1].equals(startup)) t.fail(`split at ${i}`);
  }
  t.pass('all splits give SSLRequest then StartupMessage');
});

t.test('bytes after the StartupMessage stay pending', async (t) => {
  const query = serialize.query('SELECT 1');
  const reader = new StartupReader();
  const read = reader.push(Buffer.concat([startup, query]));
  t.equal(read.kind, 'packet');
  t.same(reader.takeRest(), query);
});

t.test('a TLS ClientHello is recognised by its first byte', async (t) => {
  const reader = new StartupReader();
  const read = reader.push(Buffer.from([0x16, 0x03, 0x01, 0x00]));
  t.equal(read.kind, 'tls');
});

t.test('nonsense lengths are refused with the length, as PostgreSQL reads them', async (t) => {
  const lengthWord = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeInt32BE(n, 0);
    b.writeInt32BE(196608, 4);
    return b;
  };
  for (const length of [0, 4, 7, 10005, 0x58000000, -1]) {
    t.throws(() => new StartupReader().push(lengthWord(length)), new StartupLengthError(length), `length ${length}`);
  }
  t.throws(() => new StartupReader().push(Buffer.from('GET / HTTP/1.1\r\n')), StartupLengthError, 'an HTTP request');
  // PostgreSQL's cap of 10000 bytes leaves out the length word: 10004 is a length to wait for.
  t.same(new StartupReader().push(lengthWord(10004)), { kind: 'incomplete' });
  t.same(new StartupReader().push(lengthWord(8)).kind, 'packet');
});
