import t from 'tap';
import { parseSecret, parseUserlist, UserlistError } from '../../src/auth/userlist.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
const VERIFIER = `SCRAM-SHA-256$4096:c2FsdHNhbHQ=$${KEY}:${KEY}`;

t.test('the three kinds of secret, told apart by their shape', async (t) => {
  const users = parseUserlist(['"alice" "s3cret"', '"bob" "md5d2f1c8e7a7b0a9c4b8a4e0f5c3b2a1d0"', `"carol" "${VERIFIER}"`].join('\n'));
  t.same(users.get('alice'), { kind: 'plain', password: 's3cret' });
  t.same(users.get('bob'), { kind: 'md5', hash: 'md5d2f1c8e7a7b0a9c4b8a4e0f5c3b2a1d0' });
  t.match(users.get('carol'), { kind: 'scram-sha-256', iterations: 4096 });
  const carol = users.get('carol');
  if (carol?.kind === 'scram-sha-256') {
    t.equal(carol.salt.toString(), 'saltsalt');
    t.equal(carol.storedKey.length, 32);
  }
});

t.test('doubled quotes, comments, trailing fields and blank lines as PgBouncer reads them', async (t) => {
  const users = parseUserlist(['; a comment', '# another', '', '  "we""ird" "pa""ss" "ignored column"', '"dup" "first"', '"dup" "second"', 'not quoted "x"'].join('\r\n'));
  t.same([...users.keys()], ['we"ird', 'dup']);
  t.same(users.get('we"ird'), { kind: 'plain', password: 'pa"ss' });
  t.same(users.get('dup'), { kind: 'plain', password: 'second' }, 'a later line wins');
});

t.test('a secret that only looks like a hash is a plain password', async (t) => {
  t.equal(parseSecret('md5xyz').kind, 'plain');
  t.equal(parseSecret('md5D2F1C8E7A7B0A9C4B8A4E0F5C3B2A1D0').kind, 'plain', 'PostgreSQL writes md5 hashes in lower case');
  t.equal(parseSecret('SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:c2hvcnQ=').kind, 'plain', 'keys must be 32 bytes');
  t.equal(parseSecret('').kind, 'plain');
});

t.test('a broken line names its number and what is wrong', async (t) => {
  t.throws(() => parseUserlist('"ok" "x"\n"alice s3cret'), new UserlistError(2, 'the user name has no closing double quote'));
  t.throws(() => parseUserlist('"alice" s3cret'), /line 1: expected "user" "secret"; user "alice" has no quoted secret/);
  t.throws(() => parseUserlist('"alice" "s3cret'), /line 1: the secret of user "alice" has no closing double quote/);
});
