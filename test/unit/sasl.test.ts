/**
 * Byte fixtures for the SCRAM channel-binding rewrite: AuthenticationSASL
 * without SCRAM-SHA-256-PLUS, and the gs2 flag of SASLInitialResponse.
 */
import t from 'tap';
import { decodeSaslInitialResponse, withoutChannelBinding } from '../../src/protocol/sasl.js';

/** Concatenates hex strings and ASCII strings (written as 'text'). */
function bytes(...parts: string[]): Buffer {
  return Buffer.concat(parts.map((p) => (p.startsWith("'") ? Buffer.from(p.slice(1, -1), 'latin1') : Buffer.from(p.replace(/\s+/g, ''), 'hex'))));
}

// What PostgreSQL sends over TLS: R, length 42, code 10, two mechanisms, terminator.
const SASL_WITH_PLUS = bytes('52 0000002a 0000000a', "'SCRAM-SHA-256-PLUS'", '00', "'SCRAM-SHA-256'", '00', '00');
// Without TLS it offers only the plain mechanism: R, length 23.
const SASL_PLAIN = bytes('52 00000017 0000000a', "'SCRAM-SHA-256'", '00', '00');

t.test('fixtures are well-formed messages', async (t) => {
  t.equal(SASL_WITH_PLUS.readInt32BE(1), SASL_WITH_PLUS.length - 1);
  t.equal(SASL_PLAIN.readInt32BE(1), SASL_PLAIN.length - 1);
});

t.test('SCRAM-SHA-256-PLUS is removed and the length rewritten', async (t) => {
  const out = withoutChannelBinding(SASL_WITH_PLUS, 0, SASL_WITH_PLUS.length);
  t.ok(out !== null);
  t.same(out!.toString('hex'), SASL_PLAIN.toString('hex'));
});

t.test('the message is read in place, inside a larger chunk', async (t) => {
  const chunk = Buffer.concat([bytes('5a 00000005 49'), SASL_WITH_PLUS, bytes('5a 00000005 49')]);
  const out = withoutChannelBinding(chunk, 6, 6 + SASL_WITH_PLUS.length);
  t.same(out!.toString('hex'), SASL_PLAIN.toString('hex'));
});

t.test('order does not matter; every -PLUS mechanism goes', async (t) => {
  const reversed = bytes('52 0000002a 0000000a', "'SCRAM-SHA-256'", '00', "'SCRAM-SHA-256-PLUS'", '00', '00');
  t.same(withoutChannelBinding(reversed, 0, reversed.length)!.toString('hex'), SASL_PLAIN.toString('hex'));
  const onlyPlus = bytes('52 0000001c 0000000a', "'SCRAM-SHA-256-PLUS'", '00', '00');
  t.equal(onlyPlus.readInt32BE(1), onlyPlus.length - 1);
  t.same(withoutChannelBinding(onlyPlus, 0, onlyPlus.length)!.toString('hex'), '52000000090000000a00', 'an empty list, as a server with nothing left to offer would send');
});

t.test('nothing to strip: null, so the original bytes are forwarded', async (t) => {
  t.equal(withoutChannelBinding(SASL_PLAIN, 0, SASL_PLAIN.length), null);
});

/** A SASLInitialResponse: p, length, mechanism, int32 data length (-1: none), data. */
function initialResponse(mechanism: string, data: string | null): Buffer {
  const mech = Buffer.from(mechanism + '\0');
  const payload = data === null ? Buffer.alloc(0) : Buffer.from(data);
  const out = Buffer.alloc(1 + 4 + mech.length + 4 + payload.length);
  out[0] = 0x70;
  out.writeInt32BE(out.length - 1, 1);
  mech.copy(out, 5);
  out.writeInt32BE(data === null ? -1 : payload.length, 5 + mech.length);
  payload.copy(out, 9 + mech.length);
  return out;
}

t.test('the gs2 channel-binding flag of SASLInitialResponse', async (t) => {
  const cases: [string, string | null, string, string | null][] = [
    ['SCRAM-SHA-256', 'n,,n=*,r=rOprNGfwEbeRWgbNEkqO', 'SCRAM-SHA-256', 'n'],
    ['SCRAM-SHA-256', 'y,,n=*,r=rOprNGfwEbeRWgbNEkqO', 'SCRAM-SHA-256', 'y'],
    ['SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=*,r=rOprNGfwEbeRWgbNEkqO', 'SCRAM-SHA-256-PLUS', 'p'],
    ['SCRAM-SHA-256', null, 'SCRAM-SHA-256', null],
    ['SCRAM-SHA-256', 'x,,', 'SCRAM-SHA-256', null],
  ];
  for (const [mechanism, data, wantMechanism, wantFlag] of cases) {
    const message = initialResponse(mechanism, data);
    t.same(decodeSaslInitialResponse(message, 0, message.length), { mechanism: wantMechanism, flag: wantFlag }, `${mechanism} ${data}`);
  }
  // The fixture builder matches a hand-written message byte for byte.
  t.same(initialResponse('SCRAM-SHA-256', 'y,,').toString('hex'), bytes('70 00000019', "'SCRAM-SHA-256'", '00', '00000003', "'y,,'").toString('hex'));
});
