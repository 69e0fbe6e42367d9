import t from 'tap';
import { md5Hash, md5HashOf, md5Matches, md5Response } from '../../src/auth/md5.js';

const SALT = Buffer.from([1, 2, 3, 4]);

t.test('the stored hash is the one PostgreSQL computes', async (t) => {
  // SELECT 'md5' || md5('s3cret' || 'alice') in PostgreSQL.
  t.equal(md5Hash('alice', 's3cret'), 'md58213e4d0d5792b064442db7988e9f4c4');
});

t.test('an answer made from the password matches one made from the stored hash', async (t) => {
  const stored = md5Hash('alice', 's3cret');
  t.ok(md5Matches(stored, SALT, md5Response(md5Hash('alice', 's3cret'), SALT)));
  t.notOk(md5Matches(stored, SALT, md5Response(md5Hash('alice', 'wrong'), SALT)));
  t.notOk(md5Matches(stored, Buffer.from([9, 9, 9, 9]), md5Response(stored, SALT)), 'another salt, another answer');
  t.notOk(md5Matches(stored, SALT, 'short'), 'a malformed answer is refused, not thrown on');
});

t.test('which secrets can answer md5', async (t) => {
  t.equal(md5HashOf('alice', { kind: 'plain', password: 's3cret' }), md5Hash('alice', 's3cret'));
  t.equal(md5HashOf('alice', { kind: 'md5', hash: 'md5' + 'a'.repeat(32) }), 'md5' + 'a'.repeat(32));
  t.equal(md5HashOf('alice', { kind: 'scram-sha-256', iterations: 1, salt: SALT, storedKey: Buffer.alloc(32), serverKey: Buffer.alloc(32) }), null);
});
