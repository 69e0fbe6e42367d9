/**
 * Logs a client in on txproxy's side when it pools, speaking to the client
 * as PostgreSQL would: the same messages, the same order, and the same
 * `FATAL 28P01 password authentication failed for user "…"` for a wrong
 * password and for a user nobody knows — which also goes through a whole
 * exchange (a mock SCRAM salt that is stable per user name, as PostgreSQL's
 * scram_mock_salt), so the answer does not tell which users exist.
 *
 * Sockets are the caller's: this takes the bodies of the client's password
 * messages and says what to send back. On success it hands over what the
 * server login can use: the password, the md5 hash, or the SCRAM keys the
 * client's proof revealed (pass-through).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { AuthCode, Backend } from '../protocol/codes.js';
import { errorResponse, authenticationSasl, type Report } from '../protocol/encode.js';
import { md5HashOf, md5Matches } from './md5.js';
import { ScramError, scramKeysFor, ScramServerExchange, type ScramKeys } from './scram.js';
import type { Secret } from './userlist.js';

export type AuthMethod = 'trust' | 'md5' | 'scram-sha-256';

/** What a logged-in client leaves txproxy to log in to the server with. */
export type ServerCredentials =
  | { kind: 'none' }
  | { kind: 'password'; password: string }
  | { kind: 'md5'; hash: string }
  | { kind: 'scram-keys'; clientKey: Buffer; serverKey: Buffer; salt: Buffer; iterations: number };

export interface AuthStep {
  /** Messages for the client, in order. */
  send: Buffer[];
  /** Set once the client is logged in (AuthenticationOk is in `send`). */
  loggedIn?: ServerCredentials;
  /** Set when the client is refused (the ErrorResponse is in `send`; close after it). */
  refused?: Report;
}

/** The key of the mock salts: one per process, as PostgreSQL's mock authentication nonce is per cluster. */
const MOCK_KEY = randomBytes(32);
/** SCRAM keys computed once per secret: PBKDF2 is too slow to repeat at every login. */
const derivedKeys = new WeakMap<Secret, ScramKeys>();

function authentication(code: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out[0] = Backend.Authentication;
  out.writeInt32BE(8 + payload.length, 1);
  out.writeInt32BE(code, 5);
  payload.copy(out, 9);
  return out;
}

export function passwordFailed(user: string): Report {
  return { severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${user}"` };
}

function protocolViolation(message: string): Report {
  return { severity: 'FATAL', code: '08P01', message };
}

/** The SCRAM keys a secret yields; null for an md5 hash or an unknown user, whose exchange can only fail. */
function scramKeysOf(secret: Secret | null): ScramKeys | null {
  if (secret?.kind === 'scram-sha-256') return secret;
  if (secret?.kind === 'plain') {
    let keys = derivedKeys.get(secret);
    if (keys === undefined) {
      keys = scramKeysFor(secret.password);
      derivedKeys.set(secret, keys);
    }
    return keys;
  }
  return null;
}

/** Keys for an exchange that can only fail, with a salt that looks real and stays the same for this name. */
function mockKeys(user: string): ScramKeys {
  const salt = createHmac('sha256', MOCK_KEY).update(user).digest().subarray(0, 16);
  return { salt, iterations: 4096, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

export class ClientAuthenticator {
  private scram: ScramServerExchange | null = null;
  private scramKeys: ScramKeys | null = null;
  private md5Salt: Buffer | null = null;
  /** The SASLInitialResponse has been answered; the next message is the client-final-message. */
  private scramStarted = false;
  private canSucceed = true;
  private finished = false;

  /**
   * `secret` is the user's stored secret, null when the user is unknown.
   * As in PostgreSQL, `md5` becomes SCRAM for a user whose secret is a SCRAM
   * verifier, and `scram-sha-256` cannot succeed with an md5 hash.
   */
  constructor(
    private readonly method: AuthMethod,
    private readonly user: string,
    private readonly secret: Secret | null,
  ) {}

  /** The first messages, right after the startup packet. */
  begin(): AuthStep {
    if (this.method === 'trust') return this.succeed(this.passwordCredentials());
    const useScram = this.method === 'scram-sha-256' || this.secret?.kind === 'scram-sha-256';
    if (useScram) {
      const keys = scramKeysOf(this.secret);
      this.canSucceed = keys !== null;
      this.scramKeys = keys ?? mockKeys(this.user);
      this.scram = new ScramServerExchange(this.scramKeys);
      return { send: [authenticationSasl(['SCRAM-SHA-256'])] };
    }
    this.canSucceed = this.secret !== null;
    this.md5Salt = randomBytes(4);
    return { send: [authentication(AuthCode.MD5Password, this.md5Salt)] };
  }

  /** The body of a client's password message ('p'), after its 5-byte header. */
  onPassword(body: Buffer): AuthStep {
    if (this.finished) return this.refuse(protocolViolation('unexpected password message after authentication'));
    try {
      if (this.md5Salt !== null) return this.checkMd5(body);
      if (this.scram !== null) return this.stepScram(body);
    } catch (err) {
      if (err instanceof ScramError) return this.refuse(protocolViolation(err.message));
      throw err;
    }
    return this.refuse(protocolViolation('unexpected password message'));
  }

  private checkMd5(body: Buffer): AuthStep {
    // A plain password is handed on as such, so the server may use any method.
    const end = body.indexOf(0);
    const answer = body.toString('utf8', 0, end === -1 ? body.length : end);
    const hash = this.secret === null ? null : md5HashOf(this.user, this.secret);
    if (!this.canSucceed || hash === null || !md5Matches(hash, this.md5Salt!, answer)) return this.refuse(passwordFailed(this.user));
    return this.succeed(this.secret?.kind === 'plain' ? { kind: 'password', password: this.secret.password } : { kind: 'md5', hash });
  }

  private stepScram(body: Buffer): AuthStep {
    const exchange = this.scram!;
    if (this.scramStarted) {
      const result = exchange.finish(body.toString('utf8'));
      if (result === null || !this.canSucceed) return this.refuse(passwordFailed(this.user));
      const keys = this.scramKeys!;
      const credentials: ServerCredentials =
        this.secret?.kind === 'plain'
          ? { kind: 'password', password: this.secret.password }
          : { kind: 'scram-keys', clientKey: result.clientKey, serverKey: keys.serverKey, salt: keys.salt, iterations: keys.iterations };
      const step = this.succeed(credentials);
      step.send.unshift(authentication(AuthCode.SASLFinal, Buffer.from(result.serverFinal)));
      return step;
    }
    // SASLInitialResponse: mechanism, then the length of the client-first-message and the message.
    const nul = body.indexOf(0);
    if (nul === -1 || body.length < nul + 5) throw new ScramError('malformed SASLInitialResponse');
    const mechanism = body.toString('utf8', 0, nul);
    if (mechanism !== 'SCRAM-SHA-256') return this.refuse(protocolViolation(`client selected an invalid SASL authentication mechanism`));
    const length = body.readInt32BE(nul + 1);
    const first = body.subarray(nul + 5, length < 0 ? nul + 5 : nul + 5 + length).toString('utf8');
    this.scramStarted = true;
    return { send: [authentication(AuthCode.SASLContinue, Buffer.from(exchange.start(first)))] };
  }

  private passwordCredentials(): ServerCredentials {
    if (this.secret?.kind === 'plain') return { kind: 'password', password: this.secret.password };
    if (this.secret?.kind === 'md5') return { kind: 'md5', hash: this.secret.hash };
    return { kind: 'none' };
  }

  private succeed(credentials: ServerCredentials): AuthStep {
    this.finished = true;
    return { send: [authentication(AuthCode.Ok)], loggedIn: credentials };
  }

  private refuse(report: Report): AuthStep {
    this.finished = true;
    return { send: [errorResponse(report)], refused: report };
  }
}
