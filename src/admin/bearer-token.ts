/**
 * The admin endpoint's bearer token (RFC 6750): `Authorization: Bearer
 * <token>`. Both sides are hashed before a constant-time comparison, so
 * neither the content nor the length of the token leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { json } from './json-answer.js';

/** What a request's Authorization header proves. */
export type Credentials = 'valid' | 'missing' | 'invalid';

const BEARER = /^Bearer +(\S+) *$/i;

export class BearerToken {
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = sha256(token);
  }

  check(authorization: string | undefined): Credentials {
    if (authorization === undefined || authorization === '') return 'missing';
    const match = BEARER.exec(authorization);
    if (match === null) return 'invalid';
    return timingSafeEqual(sha256(match[1]), this.digest) ? 'valid' : 'invalid';
  }
}

/** `401` with the challenge a client needs: which scheme, and whether the token it sent was wrong. */
export function refuse(res: http.ServerResponse, credentials: Exclude<Credentials, 'valid'>): void {
  const challenge = credentials === 'missing' ? 'Bearer realm="txproxy"' : 'Bearer realm="txproxy", error="invalid_token"';
  const message =
    credentials === 'missing'
      ? 'this endpoint requires the header Authorization: Bearer <token>, the token set in admin.token'
      : 'the bearer token is not the one set in admin.token';
  json(res, 401, { error: 'unauthorized', message }, { 'WWW-Authenticate': challenge });
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
