/**
 * PostgreSQL's md5 password method: the server stores `md5` + hex(MD5(password
 * + user)) and sends a 4-byte salt; the client answers `md5` +
 * hex(MD5(hex(MD5(password + user)) + salt)). Knowing the stored hash is
 * therefore enough to check a client and to log in to the server — which is
 * why PostgreSQL deprecates md5 in favour of SCRAM.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Secret } from './userlist.js';

const md5Hex = (data: string | Buffer): string => createHash('md5').update(data).digest('hex');

/** The hash PostgreSQL stores for `password` of `user`. */
export function md5Hash(user: string, password: string): string {
  return `md5${md5Hex(password + user)}`;
}

/** The answer to an AuthenticationMD5Password with `salt`, from the stored hash. */
export function md5Response(storedHash: string, salt: Buffer): string {
  return `md5${md5Hex(Buffer.concat([Buffer.from(storedHash.slice(3)), salt]))}`;
}

/** The stored md5 hash a secret yields, or null (a SCRAM verifier cannot answer md5). */
export function md5HashOf(user: string, secret: Secret): string | null {
  if (secret.kind === 'md5') return secret.hash;
  if (secret.kind === 'plain') return md5Hash(user, secret.password);
  return null;
}

/** Checks a client's md5 answer, timing-safe. */
export function md5Matches(storedHash: string, salt: Buffer, answer: string): boolean {
  const expected = Buffer.from(md5Response(storedHash, salt));
  const given = Buffer.from(answer);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
