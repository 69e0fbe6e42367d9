/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, on both of
 * txproxy's sides when it pools: as the server that checks a client's proof
 * against a stored verifier, and as the client that logs in to PostgreSQL.
 *
 * The client's proof reveals its ClientKey (proof XOR ClientSignature). With
 * the ServerKey of the same verifier, that is all a later login to the server
 * needs — PgBouncer's SCRAM pass-through: no plaintext password anywhere in
 * the configuration, provided txproxy's verifier is the server's own (the
 * server's salt and iteration count must match).
 *
 * Channel binding is not offered (gs2 header `n,,` or `y,,` only): txproxy
 * terminates the client's TLS itself.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ScramKeys {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/**
 * PostgreSQL applies SASLprep to the password; for the ASCII passwords of
 * nearly every deployment that is the identity, and PostgreSQL itself uses
 * the raw bytes when SASLprep fails. NFKC covers most of the rest.
 */
function normalisePassword(password: string): Buffer {
  return Buffer.from(password.normalize('NFKC'), 'utf8');
}

function clientAndServerKeys(password: string, salt: Buffer, iterations: number): { clientKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(normalisePassword(password), salt, iterations, 32, 'sha256');
  return { clientKey: hmac(salted, 'Client Key'), serverKey: hmac(salted, 'Server Key') };
}

/** The verifier PostgreSQL would store for `password`. */
export function scramKeysFor(password: string, salt = randomBytes(16), iterations = 4096): ScramKeys {
  const { clientKey, serverKey } = clientAndServerKeys(password, salt, iterations);
  return { salt, iterations, storedKey: sha256(clientKey), serverKey };
}

/** `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`, pg_authid's format. */
export function formatVerifier(keys: ScramKeys): string {
  return `SCRAM-SHA-256$${keys.iterations}:${keys.salt.toString('base64')}$${keys.storedKey.toString('base64')}:${keys.serverKey.toString('base64')}`;
}

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

/** `a=1,b=2` → { a: '1', b: '2' } (values may contain `=`). */
function attributes(message: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) map.set(part[0], part.slice(2));
  }
  return map;
}

const PRINTABLE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

/** txproxy as the SCRAM server: checks a client's proof against stored keys. */
export class ScramServerExchange {
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private gs2Header = '';

  constructor(private readonly keys: ScramKeys) {}

  /** The client-first-message → the server-first-message. */
  start(clientFirst: string): string {
    const match = /^([ny]),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (match === null) throw new ScramError(clientFirst.startsWith('p') ? 'channel binding is not supported' : 'malformed SCRAM client-first-message');
    this.gs2Header = `${match[1]},${match[2] ?? ''},`;
    this.clientFirstBare = match[3];
    const clientNonce = attributes(this.clientFirstBare).get('r');
    if (clientNonce === undefined || !PRINTABLE_NONCE.test(clientNonce)) throw new ScramError('malformed SCRAM client nonce');
    this.nonce = clientNonce + randomBytes(18).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.keys.salt.toString('base64')},i=${this.keys.iterations}`;
    return this.serverFirst;
  }

  /**
   * The client-final-message → the server-final-message and the client's
   * ClientKey, or null when the proof is wrong (the caller answers 28P01).
   */
  finish(clientFinal: string): { serverFinal: string; clientKey: Buffer } | null {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt === -1) throw new ScramError('malformed SCRAM client-final-message');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) throw new ScramError('SCRAM channel binding does not match');
    if (attrs.get('r') !== this.nonce) throw new ScramError('SCRAM nonce does not match');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.keys.storedKey, authMessage);
    if (proof.length !== clientSignature.length) return null;
    const clientKey = xor(proof, clientSignature);
    // Timing-safe: the comparison takes as long whatever the proof.
    if (!timingSafeEqual(sha256(clientKey), this.keys.storedKey)) return null;
    return { serverFinal: `v=${hmac(this.keys.serverKey, authMessage).toString('base64')}`, clientKey };
  }
}

/** What txproxy logs in to PostgreSQL with: a password, or keys taken from a client's proof. */
export type ScramCredentials = { password: string } | { clientKey: Buffer; serverKey: Buffer; salt: Buffer; iterations: number };

/** txproxy as the SCRAM client of PostgreSQL. */
export class ScramClientExchange {
  private readonly clientNonce = randomBytes(18).toString('base64');
  private readonly clientFirstBare = `n=,r=${this.clientNonce}`;
  private authMessage = '';
  private serverKey: Buffer | null = null;

  constructor(private readonly credentials: ScramCredentials) {}

  /** The client-first-message (no channel binding; the user name is the startup packet's, as libpq sends it). */
  start(): string {
    return `n,,${this.clientFirstBare}`;
  }

  /** The server-first-message → the client-final-message. */
  respond(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (nonce === undefined || !nonce.startsWith(this.clientNonce) || salt === undefined || !Number.isInteger(iterations) || iterations < 1) {
      throw new ScramError('the server sent a malformed SCRAM server-first-message');
    }
    const saltBytes = Buffer.from(salt, 'base64');
    let clientKey: Buffer;
    if ('password' in this.credentials) {
      const keys = clientAndServerKeys(this.credentials.password, saltBytes, iterations);
      clientKey = keys.clientKey;
      this.serverKey = keys.serverKey;
    } else {
      if (!saltBytes.equals(this.credentials.salt) || iterations !== this.credentials.iterations) {
        throw new ScramError("the server's SCRAM verifier is not the one txproxy checked the client against (salt or iteration count differ)");
      }
      clientKey = this.credentials.clientKey;
      this.serverKey = this.credentials.serverKey;
    }
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
    this.authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), this.authMessage));
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks the server-final-message: the server proves it knows the verifier too. */
  verify(serverFinal: string): void {
    const signature = attributes(serverFinal).get('v');
    if (signature === undefined || this.serverKey === null) throw new ScramError('the server sent a malformed SCRAM server-final-message');
    const expected = hmac(this.serverKey, this.authMessage);
    const given = Buffer.from(signature, 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new ScramError('the server failed to prove it knows the SCRAM verifier');
  }
}
